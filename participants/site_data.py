"""A site's records, split into its own train and test parts, loaded from its own source.

Only the participant process calls this: records never leave the site. The coordinator sees
counts and aggregate metrics, never rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.model_selection import train_test_split

from participants.content_cache import ContentCache
from participants.csv_connector import parse_csv_records, read_csv_bytes
from participants.embedded_data import embedded_partition
from participants.errors import DataSourceError
from participants.site_config import CsvSource, EmbeddedSource, LoadedSiteConfig
from trialcore.errors import Problem

FloatArray = npt.NDArray[np.float32]

SPLIT_SEED = 20_240_601
"""Seed of each site's train/test split: a fact of the site's data, not of any trial."""


@dataclass(frozen=True)
class SiteData:
    """One site's raw features (float32) and 0/1 labels, train and test parts.

    Without a data contract the site scales them by its own train part's statistics
    (:meth:`own_scaling`, :meth:`standardised`); under a contract its records are read as
    :class:`participants.contract_data.ContractSiteData` and prepared with the statistics in force
    (:mod:`trialcore.feature_statistics`).
    """

    x_train: FloatArray
    y_train: FloatArray
    x_test: FloatArray
    y_test: FloatArray

    def own_scaling(self) -> tuple[list[float], list[float]]:
        """The train part's own mean and standard deviation per feature (std 0 becomes 1): per-site scaling."""
        x = self.x_train.astype(np.float64)
        std = x.std(axis=0)
        return x.mean(axis=0).tolist(), np.where(std > 0, std, 1.0).tolist()

    def standardised(self, mean: list[float], std: list[float]) -> SiteData:
        """The same records with features scaled as ``(x - mean) / std`` (federation-wide statistics)."""
        mu = np.asarray(mean, dtype=np.float32)
        sigma = np.asarray(std, dtype=np.float32)
        return SiteData(
            x_train=((self.x_train - mu) / sigma).astype(np.float32),
            y_train=self.y_train,
            x_test=((self.x_test - mu) / sigma).astype(np.float32),
            y_test=self.y_test,
        )

    def copy(self) -> SiteData:
        """The same records in arrays of their own."""
        return SiteData(
            x_train=self.x_train.copy(),
            y_train=self.y_train.copy(),
            x_test=self.x_test.copy(),
            y_test=self.y_test.copy(),
        )

    @property
    def num_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def num_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def num_test(self) -> int:
        return int(self.x_test.shape[0])


_SPLITS: ContentCache[SiteData] = ContentCache(max_entries=2048)
"""Splits of CSV files this process parsed, by file, columns, test fraction and exact bytes."""


def load_site_data(site: LoadedSiteConfig) -> SiteData:
    """Load the site's records from its configured source and split them (seeded, stratified).

    A CSV file is read every time; bytes this process already parsed and split (same columns and
    test fraction) are not parsed again (:mod:`participants.content_cache`), and the caller gets
    its own copy of the arrays.
    """
    source = site.config.data
    if isinstance(source, CsvSource) and source.target_column is not None and source.rows is None:
        path = site.resolve(source.path)
        raw = read_csv_bytes(path, source.path)
        test_fraction = site.config.test_fraction
        target_column = source.target_column

        def parse() -> SiteData:
            features, labels = parse_csv_records(
                raw, shown_as=source.path, target_column=target_column, feature_columns=source.feature_columns
            )
            return split_records(features, labels, test_fraction=test_fraction, shown_as=source.path)

        key = (str(path), source.path, source.target_column, source.feature_columns, test_fraction)
        return _SPLITS.get_or_make(key, raw, parse).copy()
    if isinstance(source, EmbeddedSource):
        features, labels = embedded_partition(source.partition)
        shown_as = f"embedded partition {source.partition}"
    else:
        if isinstance(source, CsvSource):
            found = "a csv source with rows:" if source.rows is not None else "a csv source without target_column"
        else:
            found = f"a {source.kind} source"
        raise DataSourceError(
            f"Site {site.config.site_id} has no data for a trial without a data contract",
            [
                Problem(
                    site.shown_as,
                    "data",
                    found,
                    "a csv source with target_column (numeric features, 0/1 target), or a trial with a data: contract",
                )
            ],
        )
    return split_records(features, labels, test_fraction=site.config.test_fraction, shown_as=shown_as)


def split_records(
    features: npt.NDArray[np.float64],
    labels: npt.NDArray[np.float64],
    *,
    test_fraction: float,
    shown_as: str = "the site's records",
) -> SiteData:
    """Stratified, seeded split of a site's records into its train and test parts.

    Raises
    ------
    DataSourceError
        When there are too few records for a non-empty train and test part.
    """
    count = int(labels.shape[0])
    num_test = math.ceil(test_fraction * count)
    if num_test < 1 or count - num_test < 1:
        raise DataSourceError(
            f"Too few records in '{shown_as}' to split",
            [
                Problem(
                    shown_as,
                    "",
                    f"{count} record(s)",
                    f"enough records for a non-empty train and test part (test_fraction {test_fraction})",
                )
            ],
        )
    classes = int(np.unique(labels).size)
    stratifiable = (
        classes > 1 and np.bincount(labels.astype(int)).min() >= 2 and min(num_test, count - num_test) >= classes
    )
    stratify = labels if stratifiable else None
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=test_fraction, random_state=SPLIT_SEED, stratify=stratify
    )
    return SiteData(
        x_train=x_train.astype(np.float32),
        y_train=y_train.astype(np.float32),
        x_test=x_test.astype(np.float32),
        y_test=y_test.astype(np.float32),
    )
