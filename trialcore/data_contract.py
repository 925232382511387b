"""The data contract of a trial: which columns every site provides, in which units and ranges.

A trial spec may carry a ``data:`` section. It is the one description of the model's input that
every site and the coordinator share:

- each **feature** has a kind: ``numeric`` (a unit and a plausible, public ``range``), ``categorical``
  (its full category list, so every site one-hot encodes the same columns in the same order) or
  ``binary`` (0/1, written as two codes, ``0``/``1`` unless the contract names others such as ``No``/``Yes``);
- the **target** is a column and how a row becomes positive (a set of codes, or a threshold);
- the **missing-value tokens** of the extracts (``?``, blank, ...) and, per feature, sentinel values
  that mean "missing" (a 0 in a column where 0 is not a real value);
- per feature, the **rule for a missing value**: drop the row, impute the federation's mean or
  median, or impute and add an indicator column.

Invariants: feature names are unique and none is the target column; a numeric range has
``low < high`` and both finite; a category list has at least two distinct entries; the model's
input width is :meth:`DataContract.input_width` (numeric and binary 1 column each, categorical one
per category, plus one indicator column per feature whose rule is ``indicator``). The ranges are
public by construction: they are written in the trial, never measured at a site, so a statistic
clipped to them has a sensitivity that does not depend on any patient.

Sites map their own column names onto the contract in their node config; the trial never names a
site's columns.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MissingRule = Literal["drop-row", "impute-mean", "impute-median", "indicator"]
"""What a site does with a missing value of one feature (the federation's statistics, never its own)."""
NUMERIC_ONLY_RULES = frozenset({"impute-mean", "impute-median"})
"""Rules that need a numeric value to average; a categorical or binary feature uses drop-row or indicator."""

ColumnName = Annotated[str, Field(min_length=1, max_length=128)]
MAX_FEATURES = 10_000
MAX_CATEGORIES = 1_000


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)


class NumericFeature(_Frozen):
    """A measured quantity with a unit and a public plausible range ``[low, high]``."""

    name: ColumnName
    kind: Literal["numeric"]
    unit: str = Field(min_length=1, max_length=40, description="Unit of the values, e.g. 'mm' or 'years'.")
    range: tuple[float, float] = Field(description="Plausible [low, high]; values outside are data errors.")
    missing: MissingRule = "drop-row"
    sentinels: tuple[float, ...] = Field(default=(), max_length=20, description="Values that mean 'missing'.")

    @field_validator("range")
    @classmethod
    def _ordered_finite(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
            raise ValueError(f"range must be two finite numbers [low, high] with low < high (got {list(value)})")
        return value

    @property
    def width(self) -> int:
        """Model input columns: the value, plus its indicator when the rule is ``indicator``."""
        return 1 + (self.missing == "indicator")


class CategoricalFeature(_Frozen):
    """A coded value with its full, ordered category list (one-hot encoded in that order)."""

    name: ColumnName
    kind: Literal["categorical"]
    categories: tuple[str, ...] = Field(min_length=2, max_length=MAX_CATEGORIES)
    missing: MissingRule = "drop-row"
    sentinels: tuple[str, ...] = Field(default=(), max_length=20, description="Codes that mean 'missing'.")

    @field_validator("categories")
    @classmethod
    def _distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("categories must be distinct")
        return value

    @property
    def width(self) -> int:
        """One column per category, plus the indicator when the rule is ``indicator``."""
        return len(self.categories) + (self.missing == "indicator")


class BinaryFeature(_Frozen):
    """A 0/1 value, written in the extracts as one of two codes (``codes``: the 0 code, then the 1 code)."""

    name: ColumnName
    kind: Literal["binary"]
    codes: tuple[str, str] = Field(
        default=("0", "1"), description="The code read as 0, then the code read as 1 (e.g. [No, Yes])."
    )
    missing: MissingRule = "drop-row"
    sentinels: tuple[str, ...] = Field(default=(), max_length=20, description="Codes that mean 'missing'.")

    @field_validator("codes")
    @classmethod
    def _two_codes(cls, value: tuple[str, str]) -> tuple[str, str]:
        if value[0] == value[1]:
            raise ValueError("the two codes of a binary feature must differ")
        return value

    @property
    def width(self) -> int:
        """One column, plus the indicator when the rule is ``indicator``."""
        return 1 + (self.missing == "indicator")


Feature = Annotated[NumericFeature | CategoricalFeature | BinaryFeature, Field(discriminator="kind")]


class TargetRule(_Frozen):
    """How a site's outcome column becomes the 0/1 label: exactly one of a code set or a threshold."""

    column: ColumnName
    positive_codes: tuple[str, ...] | None = Field(
        default=None, min_length=1, max_length=100, description="Codes that mean positive (compared as text)."
    )
    threshold: float | None = Field(default=None, description="A value at or above it is positive (see positive_when).")
    positive_when: Literal["at-or-above", "below"] = Field(
        default="at-or-above",
        description="With a threshold: which side is positive (below: e.g. low birth weight under 2500 g).",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> TargetRule:
        if (self.positive_codes is None) == (self.threshold is None):
            raise ValueError("give exactly one of positive_codes (a list of codes) or threshold (a number)")
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise ValueError(f"threshold must be a finite number (got {self.threshold})")
        if self.threshold is None and self.positive_when != "at-or-above":
            raise ValueError("positive_when applies to a threshold only")
        return self


class DataContract(_Frozen):
    """The shared description of every site's input; see the module docstring for its invariants."""

    features: tuple[Feature, ...] = Field(max_length=MAX_FEATURES)
    target: TargetRule
    missing_tokens: tuple[str, ...] = Field(default=("", "?"), max_length=20)
    normalisation: Literal["federated", "per-site"] = Field(
        default="federated",
        description="federated: every site scales with the federation's mean and std (computed from noised, "
        "clipped per-site sums); per-site: each site scales with its own statistics (an explicit choice).",
    )

    spread: Literal["assumed", "estimated"] = Field(
        default="assumed",
        description="assumed: each numeric feature's standard deviation is a fixed fraction of its public half-range "
        "(nothing released for it); estimated: from the sites' noised, clipped sums of squares "
        "(trialcore.feature_statistics).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> DataContract:
        if not self.features:
            raise ValueError("list at least one feature under features")
        names = [feature.name for feature in self.features]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"feature names must be unique; repeated: {repeated}")
        if self.target.column in names:
            raise ValueError(f"the target column {self.target.column!r} is also listed as a feature")
        for feature in self.features:
            if feature.kind != "numeric" and feature.missing in NUMERIC_ONLY_RULES:
                raise ValueError(
                    f"feature {feature.name!r} is {feature.kind}: its missing rule must be drop-row or indicator "
                    f"(got {feature.missing})"
                )
        return self

    @property
    def input_width(self) -> int:
        """Number of model input columns the contract produces (see the module docstring)."""
        return sum(feature.width for feature in self.features)

    @property
    def numeric_features(self) -> tuple[NumericFeature, ...]:
        """The numeric features, in contract order."""
        return tuple(feature for feature in self.features if isinstance(feature, NumericFeature))
