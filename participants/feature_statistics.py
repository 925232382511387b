"""Feature statistics for federated standardisation: clipped to the data contract's public ranges, released noised.

Before round 1 each site releases, once per trial, the per-column sums of its train part's values
**clipped to the contract's public range and scaled to [-1, 1]** (``u = (clip(x) - centre) /
half_width``), with Gaussian noise (:mod:`participants.accounted_release`, release kind
``feature-statistics``, statistic ``sums``). The coordinator pools the sums into the federation's
mean per column (:func:`federated_scaling_from_sums`); every site then scales ``(x - mean) / std``.

* **Sensitivity.** One record contributes one vector ``u`` with every entry in [-1, 1], so adding
  or removing a record moves the sums by at most ``sqrt(d)`` in L2 norm (``d`` columns):
  :func:`sum_sensitivity`. It comes from the contract, never from the data.
* **Spread.** The federation does not estimate standard deviations: each column is scaled by
  :data:`ASSUMED_SPREAD_FRACTION` of its public half-range. An estimate from noised sums of squares
  (sensitivity ``sqrt(2d)``) was too unreliable at affordable noise: on the demo (3 seeds, noise
  multipliers 3 and 5) pooled test accuracy fell to 0.89-0.92, against 0.92-0.95 with the
  assumed spread, which was insensitive to the fraction between 0.1 and 0.25 (measured by hand
  with the demo's sites, DP-SGD and FedAvg; see the README's "Privacy").
* **Columns.** Model input columns follow the contract in order: a numeric feature's value (its
  range), then its missing-value indicator if its rule is ``indicator`` ([0, 1]); a binary feature
  [0, 1]; a categorical feature one [0, 1] column per category.
* **Without a contract**, or with ``normalisation: per-site``, nothing is released: each site scales
  by its own train part's mean and standard deviation (:func:`federated_scaling` is False). Sites
  then scale differently, which a trial accepts by choosing it; the public ranges that federated
  standardisation needs exist only in a contract.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from trialcore.data_contract import BinaryFeature, CategoricalFeature, DataContract, NumericFeature
from trialcore.spec import TrialSpec

ASSUMED_SPREAD_FRACTION = 0.15
"""A column's standard deviation is taken as this fraction of its public half-range (see the module docstring)."""
SUMS_STATISTIC = "sums"
"""The ledger's ``statistic`` for the feature-sums release."""


def federated_scaling(spec: TrialSpec) -> bool:
    """True if the trial standardises with the federation's statistics (a contract with ``federated`` normalisation)."""
    return spec.data is not None and spec.data.normalisation == "federated"


def column_ranges(contract: DataContract) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(low, high) per model input column, in input order (see the module docstring); ``len == input_width``."""
    low: list[float] = []
    high: list[float] = []
    for feature in contract.features:
        if isinstance(feature, NumericFeature):
            low.append(feature.range[0])
            high.append(feature.range[1])
        elif isinstance(feature, BinaryFeature):
            low.append(0.0)
            high.append(1.0)
        elif isinstance(feature, CategoricalFeature):
            low.extend([0.0] * len(feature.categories))
            high.extend([1.0] * len(feature.categories))
        if feature.missing == "indicator":
            low.append(0.0)
            high.append(1.0)
    return np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)


def normalised_rows(
    x: npt.ArrayLike, low: npt.NDArray[np.float64], high: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Each record's values clipped to ``[low, high]`` and scaled to [-1, 1] (a non-finite value counts as the centre)."""
    values = np.asarray(x, dtype=np.float64)
    centre, half_width = (low + high) / 2, (high - low) / 2
    values = np.where(np.isfinite(values), values, centre)
    return np.asarray((np.clip(values, low, high) - centre) / half_width, dtype=np.float64)


def sum_sensitivity(num_columns: int) -> float:
    """L2 sensitivity of the sums of :func:`normalised_rows` over ``num_columns`` columns: ``sqrt(d)``."""
    return math.sqrt(num_columns)


def federated_scaling_from_sums(
    sums: npt.ArrayLike, count: int, low: npt.NDArray[np.float64], high: npt.NDArray[np.float64]
) -> tuple[list[float], list[float]]:
    """The federation's (mean, std) per column from pooled noised sums of normalised values over ``count`` records.

    The mean is clamped into the column's range (noise can push it out); the std is
    :data:`ASSUMED_SPREAD_FRACTION` of the half-range. ``count`` is the sum of the sites' released
    (rounded down) counts, so the mean is biased away from the centre by at most the rounding.
    """
    centre, half_width = (low + high) / 2, (high - low) / 2
    mean_u = np.clip(np.asarray(sums, dtype=np.float64) / max(count, 1), -1.0, 1.0)
    mean = centre + half_width * mean_u
    std = half_width * ASSUMED_SPREAD_FRACTION
    return mean.tolist(), std.tolist()
