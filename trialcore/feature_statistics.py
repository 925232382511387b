"""Federated preprocessing statistics of a data contract: what each site releases, and what the coordinator makes of it.

Before round 1, under ``normalisation: federated``, each site releases **once per trial** the sums
over its train part of one row per record (:func:`release_rows`), through the accounted Gaussian
mechanism (:mod:`participants.accounted_release`, release kind ``feature-statistics``, statistic
:data:`SUMS_STATISTIC`, noise multiplier ``privacy.feature_statistics_noise_multiplier``). The row
of a record has, in this order (:class:`ReleaseLayout`):

1. per numeric feature, ``u = (clip(x) - centre) / half_width`` in [-1, 1] over the contract's
   **public** range (a missing value counts as 0, the centre);
2. per numeric feature whose missing rule is not ``drop-row``: 1 if the value was observed, else 0
   (its observed count; a ``drop-row`` feature is observed in every kept row, so its count is the
   site's released record count);
3. with ``spread: estimated``: per numeric feature ``u²`` in [0, 1] (for the standard deviation);
4. per ``impute-median`` feature: a one-hot of :data:`HISTOGRAM_BINS` equal bins over its range.

Invariants
----------
- One record's row has L2 norm at most :attr:`ReleaseLayout.l2_sensitivity` =
  ``sqrt(numeric + observed + squares + medians)``: it follows from the contract, never from a
  patient. A contract of numeric ``drop-row`` features with the default ``spread: assumed`` (the
  demo) releases exactly the clipped sums, sensitivity ``sqrt(d)``.
- :func:`combine` of the exact (noise-free) sums of the sites gives the statistics of their
  pooled train parts: the mean to floating point (for ``drop-row`` features, over the sum of the
  released, rounded-down counts), the standard deviation under ``spread: estimated`` to floating
  point, the median to within one bin width.
- Noised sums are made usable, never trusted: means are clamped into the range, a variance below
  0 counts as 0 and a spread is at least :data:`MIN_SPREAD_FRACTION` of the half-range, histogram
  bins below 0 count as 0; a feature no site observed takes the range's centre.
- ``spread: assumed`` (default): the federation does not estimate standard deviations; each
  numeric feature is scaled by :data:`ASSUMED_SPREAD_FRACTION` of its public half-range. An
  estimate from noised sums of squares was too unreliable at affordable noise on the demo (3
  seeds, noise multipliers 3 and 5: pooled test accuracy 0.89-0.92 against 0.92-0.95 with the
  assumed spread, which was insensitive to the fraction between 0.1 and 0.25).

Binary, categorical and indicator columns enter the model as 0/1 and need no statistic.
Without a contract, or with ``normalisation: per-site``, nothing is released: each site uses its
own train part's statistics (:func:`own_statistics`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from trialcore.data_contract import DataContract, NumericFeature
from trialcore.spec import TrialSpec

HISTOGRAM_BINS = 32
"""Bins of the histogram a median is read from (equal bins over the contract's range)."""
ASSUMED_SPREAD_FRACTION = 0.15
"""Under ``spread: assumed``, a feature's standard deviation is this fraction of its public half-range."""
MIN_SPREAD_FRACTION = 0.01
"""A standard deviation is never below this fraction of the half-range (noise can make a variance vanish)."""
SUMS_STATISTIC = "sums"
"""The ledger's ``statistic`` for the feature-statistics release."""

FloatArray = npt.NDArray[np.float64]


def federated_scaling(spec: TrialSpec) -> bool:
    """True if the trial standardises with the federation's statistics (a contract with ``federated`` normalisation)."""
    return spec.data is not None and spec.data.normalisation == "federated"


def column_ranges(contract: DataContract) -> tuple[FloatArray, FloatArray]:
    """(low, high) of each numeric feature, in contract order."""
    ranges = [feature.range for feature in contract.numeric_features]
    return np.asarray([r[0] for r in ranges], dtype=np.float64), np.asarray([r[1] for r in ranges], dtype=np.float64)


def normalised_rows(x: npt.ArrayLike, low: FloatArray, high: FloatArray) -> FloatArray:
    """Each record's values clipped to ``[low, high]`` and scaled to [-1, 1] (a non-finite value counts as the centre)."""
    values = np.asarray(x, dtype=np.float64)
    centre, half_width = (low + high) / 2, (high - low) / 2
    values = np.where(np.isfinite(values), values, centre)
    return np.asarray((np.clip(values, low, high) - centre) / half_width, dtype=np.float64)


def sum_sensitivity(num_columns: int) -> float:
    """L2 sensitivity of the sums of :func:`normalised_rows` over ``num_columns`` columns: ``sqrt(d)``."""
    return math.sqrt(num_columns)


@dataclass(frozen=True)
class ReleaseLayout:
    """Which blocks a contract's release row has (see the module docstring); positions among the numeric features."""

    numeric: int
    observed: tuple[int, ...]
    squares: bool
    medians: tuple[int, ...]

    @property
    def length(self) -> int:
        """Values in the released vector."""
        return self.numeric * (2 if self.squares else 1) + len(self.observed) + HISTOGRAM_BINS * len(self.medians)

    @property
    def l2_sensitivity(self) -> float:
        """Largest L2 norm of one record's row (the Gaussian mechanism's sensitivity)."""
        return math.sqrt(self.numeric * (2 if self.squares else 1) + len(self.observed) + len(self.medians))


def release_layout(contract: DataContract) -> ReleaseLayout:
    """The layout of ``contract``'s feature-statistics release."""
    numeric = contract.numeric_features
    return ReleaseLayout(
        numeric=len(numeric),
        observed=tuple(i for i, f in enumerate(numeric) if f.missing != "drop-row"),
        squares=contract.spread == "estimated",
        medians=tuple(i for i, f in enumerate(numeric) if f.missing == "impute-median"),
    )


def numeric_values(contract: DataContract, values: npt.ArrayLike) -> FloatArray:
    """The numeric features' columns of contract-encoded ``values`` (rows x contract features, NaN = missing)."""
    matrix = np.asarray(values, dtype=np.float64)
    positions = [j for j, f in enumerate(contract.features) if isinstance(f, NumericFeature)]
    return matrix[:, positions]


def release_rows(contract: DataContract, values: npt.ArrayLike) -> FloatArray:
    """One row per record (rows x :attr:`ReleaseLayout.length`): what the site's release sums; see the module docstring."""
    layout = release_layout(contract)
    raw = numeric_values(contract, values)
    low, high = column_ranges(contract)
    observed = np.isfinite(raw)
    u = normalised_rows(raw, low, high)
    blocks = [u, observed[:, list(layout.observed)].astype(np.float64)]
    if layout.squares:
        blocks.append(np.where(observed, u * u, 0.0))
    for i in layout.medians:
        bins = np.clip(((u[:, i] + 1.0) / 2.0 * HISTOGRAM_BINS).astype(int), 0, HISTOGRAM_BINS - 1)
        onehot = np.zeros((raw.shape[0], HISTOGRAM_BINS), dtype=np.float64)
        onehot[np.flatnonzero(observed[:, i]), bins[observed[:, i]]] = 1.0
        blocks.append(onehot)
    return np.concatenate(blocks, axis=1) if blocks else np.zeros((raw.shape[0], 0))


@dataclass(frozen=True)
class FeatureStatistics:
    """Per numeric feature (contract order): the mean and standard deviation (> 0) to scale by, the median to impute."""

    mean: list[float]
    std: list[float]
    median: list[float]

    def as_json(self) -> dict[str, list[float]]:
        return {"mean": self.mean, "std": self.std, "median": self.median}


def combine(contract: DataContract, sums: Sequence[float], count: int) -> FeatureStatistics:
    """The federation's statistics from the pooled (noised) sums of every site's rows over ``count`` records.

    ``count`` is the sum of the sites' released (rounded-down) record counts: the denominator of a
    ``drop-row`` feature's mean. Raises ValueError if ``sums`` does not have the layout's length.
    """
    layout = release_layout(contract)
    vector = np.asarray(sums, dtype=np.float64)
    if vector.shape != (layout.length,):
        raise ValueError(f"{vector.size} sums for a contract whose release has {layout.length}")
    n = layout.numeric
    sum_u = vector[:n]
    observed = dict(zip(layout.observed, vector[n : n + len(layout.observed)]))
    offset = n + len(layout.observed)
    squares = vector[offset : offset + n] if layout.squares else None
    offset += n if layout.squares else 0
    histograms = {
        i: vector[offset + k * HISTOGRAM_BINS : offset + (k + 1) * HISTOGRAM_BINS] for k, i in enumerate(layout.medians)
    }
    mean, std, median = [], [], []
    for i, feature in enumerate(contract.numeric_features):
        low, high = feature.range
        centre, half = (low + high) / 2.0, (high - low) / 2.0
        seen = float(observed.get(i, count))
        if seen < 0.5:  # no site observed it (or noise hid it): the range's centre
            mu, spread = 0.0, ASSUMED_SPREAD_FRACTION
        else:
            mu = min(max(float(sum_u[i]) / seen, -1.0), 1.0)
            if squares is None:
                spread = ASSUMED_SPREAD_FRACTION
            else:
                spread = math.sqrt(max(float(squares[i]) / seen - mu * mu, 0.0))
        mean.append(centre + half * mu)
        std.append(half * max(spread, MIN_SPREAD_FRACTION))
        median.append(_histogram_median(feature, histograms[i]) if i in histograms and seen >= 0.5 else mean[-1])
    return FeatureStatistics(mean, std, median)


def own_statistics(contract: DataContract, values: npt.ArrayLike) -> FeatureStatistics:
    """A site's own statistics of its train part (``per-site`` normalisation; nothing leaves the site).

    The exact mean, standard deviation and median of each numeric feature's observed values
    (clipped to the range); a feature with no observed value takes the range's centre and the
    assumed spread; a constant one the smallest spread.
    """
    raw = numeric_values(contract, values)
    mean, std, median = [], [], []
    for i, feature in enumerate(contract.numeric_features):
        low, high = feature.range
        half = (high - low) / 2.0
        column = raw[:, i]
        seen = np.clip(column[np.isfinite(column)], low, high)
        if seen.size == 0:
            mean.append((low + high) / 2.0)
            std.append(half * ASSUMED_SPREAD_FRACTION)
            median.append((low + high) / 2.0)
            continue
        mean.append(float(seen.mean()))
        std.append(max(float(seen.std()), half * MIN_SPREAD_FRACTION))
        median.append(float(np.median(seen)))
    return FeatureStatistics(mean, std, median)


def statistics_problem(contract: DataContract, statistics: FeatureStatistics) -> str | None:
    """Why statistics a site received cannot be used under ``contract`` (None: usable).

    One finite mean, standard deviation and median per numeric feature; means and medians within
    the feature's range; standard deviations > 0. A site checks this before it first uses
    statistics a coordinator sent (the coordinator is not trusted), then pins them for the trial.
    A standard deviation has no upper bound: a large one only shrinks a feature's values.
    """
    n = len(contract.numeric_features)
    lengths = (len(statistics.mean), len(statistics.std), len(statistics.median))
    if lengths != (n, n, n):
        return f"{lengths[0]} means, {lengths[1]} standard deviations and {lengths[2]} medians for {n} numeric features"
    for i, feature in enumerate(contract.numeric_features):
        low, high = feature.range
        m, s, med = statistics.mean[i], statistics.std[i], statistics.median[i]
        if not all(math.isfinite(v) for v in (m, s, med)):
            return f"feature {feature.name}: statistics are not finite"
        if not (low <= m <= high and low <= med <= high):
            return (
                f"feature {feature.name}: mean {m:g} or median {med:g} outside the contract's range [{low:g}, {high:g}]"
            )
        if not s > 0:
            return f"feature {feature.name}: standard deviation {s:g} must be > 0"
    return None


def _histogram_median(feature: NumericFeature, histogram: npt.ArrayLike) -> float:
    """The median read from a histogram over the feature's range (linear within the bin)."""
    low, high = feature.range
    counts = [max(float(v), 0.0) for v in np.asarray(histogram, dtype=np.float64)]
    total = sum(counts)
    if total <= 0:
        return (low + high) / 2.0
    width = (high - low) / len(counts)
    half, below = total / 2.0, 0.0
    for k, count in enumerate(counts):
        if count > 0 and below + count >= half:
            return low + width * (k + (half - below) / count)
        below += count
    return high
