"""Federated preprocessing statistics from per-site sums equal the pooled statistics (no noise); what one record can move."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from trialcore.data_contract import DataContract
from trialcore.feature_statistics import (
    HISTOGRAM_BINS,
    MIN_SPREAD_FRACTION,
    FeatureStatistics,
    combine,
    release_layout,
    release_rows,
    statistics_problem,
)

CONTRACT = DataContract.model_validate(
    {
        "target": {"column": "y", "threshold": 1},
        "spread": "estimated",
        "features": [
            {"name": "age", "kind": "numeric", "unit": "years", "range": [18, 100], "missing": "impute-median"},
            {"name": "clinic", "kind": "categorical", "categories": ["a", "b"]},
            {"name": "bmi", "kind": "numeric", "unit": "kg/m2", "range": [10, 70], "missing": "indicator"},
        ],
    }
)


def _site(rng: np.random.Generator, rows: int, missing_share: float) -> np.ndarray:
    values = np.column_stack(
        [rng.uniform(18, 100, rows), rng.integers(0, 2, rows).astype(float), rng.normal(30, 6, rows).clip(10, 70)]
    )
    values[rng.random(rows) < missing_share, 0] = np.nan
    values[rng.random(rows) < missing_share, 2] = np.nan
    return values


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), sizes=st.lists(st.integers(1, 60), min_size=1, max_size=5))
def test_federated_statistics_equal_pooled_statistics_without_noise(seed: int, sizes: list[int]) -> None:
    """Mean and std from the summed site rows equal those of the pooled rows; the median is within one bin."""
    rng = np.random.default_rng(seed)
    sites = [_site(rng, n, missing_share=0.2) for n in sizes]
    sums = np.sum([release_rows(CONTRACT, values).sum(axis=0) for values in sites], axis=0)
    stats = combine(CONTRACT, sums.tolist(), count=sum(sizes))
    pooled = np.concatenate(sites)
    for i, (column, half) in enumerate(((0, 41.0), (2, 30.0))):
        observed = pooled[:, column][~np.isnan(pooled[:, column])]
        if observed.size == 0:
            continue
        assert math.isclose(stats.mean[i], float(observed.mean()), rel_tol=1e-9, abs_tol=1e-9)
        expected_std = max(float(observed.std()), half * MIN_SPREAD_FRACTION)
        assert math.isclose(stats.std[i], expected_std, rel_tol=1e-6, abs_tol=1e-6)
    age = pooled[:, 0][~np.isnan(pooled[:, 0])]
    if age.size:  # any value between the two middle values is a median of an even count
        ordered, width = np.sort(age), (100 - 18) / HISTOGRAM_BINS
        assert ordered[(age.size - 1) // 2] - width <= stats.median[0] <= ordered[age.size // 2] + width
    assert stats.median[1] == stats.mean[1]  # bmi has no median rule: its imputation value is the mean


def test_one_record_moves_the_sums_by_at_most_the_stated_sensitivity() -> None:
    """Sums, observed counts, squares and one histogram: the row of any record is within the layout's L2 sensitivity."""
    layout = release_layout(CONTRACT)
    assert layout.length == 2 + 2 + 2 + HISTOGRAM_BINS  # sums, observed (both may be missing), squares, age histogram
    assert layout.l2_sensitivity == math.sqrt(2 + 2 + 2 + 1)
    extreme = np.array([[1e9, 1.0, -1e9], [np.nan, 0.0, np.nan], [18.0, 1.0, 70.0]])
    norms = np.linalg.norm(release_rows(CONTRACT, extreme), axis=1)
    assert norms.max() <= layout.l2_sensitivity + 1e-12
    assert norms[0] == layout.l2_sensitivity  # clipped to the range's ends: every entry at its bound


def test_numeric_drop_row_contract_releases_exactly_the_clipped_sums() -> None:
    """The demo's kind of contract (numeric, drop-row, assumed spread): the release is the sums, sensitivity sqrt(d)."""
    contract = DataContract.model_validate(
        {
            "target": {"column": "y", "threshold": 1},
            "features": [{"name": f"f{i}", "kind": "numeric", "unit": "1", "range": [0, 10]} for i in range(3)],
        }
    )
    layout = release_layout(contract)
    assert (layout.length, layout.l2_sensitivity) == (3, math.sqrt(3))
    rows = release_rows(contract, np.array([[0.0, 5.0, 12.0]]))
    assert rows.tolist() == [[-1.0, 0.0, 1.0]]
    stats = combine(contract, [-10.0, 0.0, 10.0], count=20)  # means from sums over the released count
    assert stats.mean == [2.5, 5.0, 7.5] and stats.std == [0.75, 0.75, 0.75]  # 0.15 of the half-range


def test_noised_sums_stay_usable() -> None:
    """Negative noised counts, variances and histogram bins never give a non-finite, out-of-range or zero scale."""
    layout = release_layout(CONTRACT)
    bad = [3.0, -9.0, -5.0, 0.2, -1.0, 0.0, *([-1.0] * HISTOGRAM_BINS)]
    assert len(bad) == layout.length
    stats = combine(CONTRACT, bad, count=0)
    assert statistics_problem(CONTRACT, stats) is None
    assert stats.mean[0] == 59.0 and stats.median[0] == 59.0  # no observed age: the range's centre


def test_a_site_refuses_statistics_outside_the_contract() -> None:
    """Statistics from the coordinator are checked: lengths, finiteness, means and medians in range, std > 0."""
    good = FeatureStatistics([50.0, 30.0], [10.0, 5.0], [48.0, 30.0])
    assert statistics_problem(CONTRACT, good) is None
    for bad in (
        FeatureStatistics([50.0], [10.0], [48.0]),
        FeatureStatistics([50.0, math.nan], [10.0, 5.0], [48.0, 30.0]),
        FeatureStatistics([500.0, 30.0], [10.0, 5.0], [48.0, 30.0]),
        FeatureStatistics([50.0, 30.0], [10.0, 5.0], [48.0, 9.0]),
        FeatureStatistics([50.0, 30.0], [0.0, 5.0], [48.0, 30.0]),
    ):
        assert statistics_problem(CONTRACT, bad) is not None
