"""The demo's four simulated sites: a seeded, visibly non-IID split of the breast-cancer set."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer

from participants import embedded_data
from participants.embedded_data import embedded_partition
from participants.site_config import load_site_config
from participants.site_data import load_site_data

DEMO_SITES = Path(__file__).resolve().parents[2] / "examples" / "demo-sites"
PARTITIONS = range(4)


def _records(features: np.ndarray, labels: np.ndarray) -> list[tuple[float, ...]]:
    return sorted((*tuple(row), float(label)) for row, label in zip(features.tolist(), labels.tolist()))


def test_partitions_cover_every_record_exactly_once() -> None:
    """The four sites together hold all 569 records, none twice, labels flipped so 1 = malignant."""
    bundle = load_breast_cancer()
    expected = _records(np.asarray(bundle.data), 1.0 - np.asarray(bundle.target))
    assert len(expected) == 569 and len(set(expected)) == 569
    parts = [embedded_partition(p) for p in PARTITIONS]
    combined = [record for features, labels in parts for record in _records(features, labels)]
    assert sorted(combined) == expected


def test_partitions_are_visibly_non_iid() -> None:
    """Sites differ in size and in malignant share (by more than 0.3 between some two), as hospitals would."""
    sizes = [embedded_partition(p)[1].size for p in PARTITIONS]
    shares = [float(embedded_partition(p)[1].mean()) for p in PARTITIONS]
    assert len(set(sizes)) > 1
    assert max(shares) - min(shares) > 0.3


def test_partitions_are_the_same_on_every_build() -> None:
    """Rebuilding the split gives the same records per site, so every run of the demo sees the same data."""
    before = [tuple(a.copy() for a in embedded_partition(p)) for p in PARTITIONS]
    embedded_data._partitions.cache_clear()
    after = [embedded_partition(p) for p in PARTITIONS]
    for (x0, y0), (x1, y1) in zip(before, after):
        np.testing.assert_array_equal(x0, x1)
        np.testing.assert_array_equal(y0, y1)


def test_each_site_split_is_stratified_and_seeded() -> None:
    """Each demo site's test part keeps the site's class balance, and loading twice gives the same split."""
    for config in sorted(DEMO_SITES.glob("*.yaml")):
        site = load_site_config(config)
        first, second = load_site_data(site), load_site_data(site)
        for name in ("x_train", "y_train", "x_test", "y_test"):
            np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
        overall = float(np.concatenate([first.y_train, first.y_test]).mean())
        assert abs(float(first.y_test.mean()) - overall) <= 1.0 / first.num_test, config.name
        assert abs(float(first.y_train.mean()) - overall) <= 1.0 / first.num_train, config.name
        assert first.num_test == math.ceil(0.25 * (first.num_train + first.num_test)), config.name
