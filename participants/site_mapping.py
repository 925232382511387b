"""How a site's own extract maps onto the trial's data contract (part of the site's node config).

The trial's data contract (:mod:`trialcore.data_contract`) names features and a target; a site's
extract has its own column names, its own codes, its own missing-value tokens and sentinels, and
may hold several centres' rows. The site says, in its node config only:

- ``columns``: contract name -> the extract's column (``null`` = the site does not collect it: every
  value is missing and the contract's rule for missing values applies); a contract name not listed
  is read from the column of the same name;
- ``codes``: contract name -> {the site's code: the contract's code} (categories, binary values as
  ``0``/``1``, target codes);
- ``missing_tokens`` and ``sentinels``: added to the contract's, never replacing them;
- ``rows``: which rows are this site's (a column and the values it must hold), so a site whose
  extract holds several centres reads only its own.

Invariant: the trial never names a site's columns, and a site never edits the trial.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Name = Annotated[str, Field(min_length=1, max_length=128)]
Code = Annotated[str, Field(max_length=128)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RowFilter(_Frozen):
    """Rows whose ``column`` holds one of ``equals`` (compared as trimmed text) are the site's."""

    column: Name
    equals: tuple[Code, ...] = Field(min_length=1, max_length=100)


class ContractMapping(_Frozen):
    """The site's own columns, codes and missing markers for the trial's data contract."""

    columns: dict[Name, Name | None] = Field(
        default_factory=dict, description="Contract name -> this extract's column; null = not collected here."
    )
    codes: dict[Name, dict[Code, Code]] = Field(
        default_factory=dict, description="Contract name -> {this site's code: the contract's code}."
    )
    missing_tokens: tuple[Code, ...] = Field(default=(), max_length=20, description="Added to the contract's tokens.")
    sentinels: dict[Name, tuple[float | str, ...]] = Field(
        default_factory=dict, description="Contract name -> values that mean 'missing' at this site."
    )

    def column_of(self, name: str) -> str | None:
        """The extract's column for contract name ``name`` (None: the site does not collect it)."""
        return self.columns.get(name, name)
