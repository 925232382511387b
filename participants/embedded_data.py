"""The demo's embedded data: scikit-learn's bundled breast-cancer set, split into 4 simulated sites.

The split is seeded and visibly non-IID: sites differ in size and in class balance, as hospitals
in different countries would. The sites are simulated; no real institution holds these shares.
The label is 1 for malignant, 0 for benign (scikit-learn codes malignant as 0; we flip it so the
positive class is the disease).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt
from sklearn.datasets import load_breast_cancer

PARTITION_SEED = 7
MALIGNANT_SHARES = (0.40, 0.30, 0.20, 0.10)
"""Share of all malignant records each simulated site holds."""
BENIGN_SHARES = (0.10, 0.20, 0.30, 0.40)
"""Share of all benign records each simulated site holds."""


@lru_cache(maxsize=1)
def _partitions() -> tuple[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]], ...]:
    bundle = load_breast_cancer()
    features = np.asarray(bundle.data, dtype=np.float64)
    labels = 1.0 - np.asarray(bundle.target, dtype=np.float64)
    rng = np.random.default_rng(PARTITION_SEED)
    parts: list[list[int]] = [[] for _ in MALIGNANT_SHARES]
    for label, shares in ((1.0, MALIGNANT_SHARES), (0.0, BENIGN_SHARES)):
        indices = rng.permutation(np.flatnonzero(labels == label))
        cuts = np.round(np.cumsum(shares)[:-1] * indices.size).astype(int)
        for part, chunk in zip(parts, np.split(indices, cuts)):
            part.extend(chunk.tolist())
    return tuple((features[idx], labels[idx]) for idx in (np.array(sorted(p)) for p in parts))


def embedded_partition(partition: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Features (30 columns) and 0/1 labels of one simulated site's share."""
    return _partitions()[partition]
