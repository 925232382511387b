"""The model's input columns from contract-encoded rows and the statistics in force (federated or the site's own).

Column order follows the contract, feature by feature (:meth:`DataContract.input_width` columns):

- numeric: ``(x - mean) / std``; a missing value is first imputed with the median (rule
  ``impute-median``) or the mean (``impute-mean``, ``indicator``), so an imputed mean becomes 0;
- categorical: one column per category in the contract's order (one-hot; a missing value is all
  zeros);
- binary: 0 or 1 (a missing value is 0);
- then, for a feature whose rule is ``indicator``, one column that is 1 where the value was missing.

A ``drop-row`` feature has no missing value left here: such rows were dropped before the split.
Invariant: every site given the same statistics produces the same columns for the same values.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from trialcore.data_contract import CategoricalFeature, DataContract, NumericFeature
from trialcore.feature_statistics import FeatureStatistics


def design_matrix(
    contract: DataContract, values: npt.NDArray[np.float64], statistics: FeatureStatistics
) -> npt.NDArray[np.float32]:
    """The model input (rows × ``contract.input_width``, float32) of contract-encoded ``values``."""
    rows = values.shape[0]
    out = np.zeros((rows, contract.input_width), dtype=np.float32)
    column = 0
    numeric = 0
    for j, feature in enumerate(contract.features):
        raw = values[:, j]
        missing = np.isnan(raw)
        if isinstance(feature, NumericFeature):
            mean, std = statistics.mean[numeric], statistics.std[numeric]
            fill = statistics.median[numeric] if feature.missing == "impute-median" else mean
            # In float32, as the plain feature scaling (the demo's share gives the same bytes either way).
            filled = np.where(missing, fill, raw).astype(np.float32)
            out[:, column] = (filled - np.float32(mean)) / np.float32(std)
            column += 1
            numeric += 1
        elif isinstance(feature, CategoricalFeature):
            known = ~missing
            out[np.flatnonzero(known), column + raw[known].astype(int)] = 1.0
            column += len(feature.categories)
        else:
            out[:, column] = np.where(missing, 0.0, raw)
            column += 1
        if feature.missing == "indicator":
            out[:, column] = missing.astype(np.float64)
            column += 1
    return out
