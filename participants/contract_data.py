"""A site's records under the trial's data contract: read, checked, split, and turned into model input.

:func:`read_contract_table` reads the site's table through its connector and encodes it
(:mod:`participants.contract_encoding`), then applies the ``drop-row`` rules and the target's
(rows whose value or target is missing go). :func:`load_contract_data` refuses with every problem
at once (file, column, row count, rule) or returns :class:`ContractSiteData`, split into the
site's own train and test parts with the same seeded, stratified split as every source.

The model input needs the statistics in force (:class:`~trialcore.feature_statistics.FeatureStatistics`):
the federation's (contract ``normalisation: federated``) or the site's own train part's
(``per-site``); see :meth:`ContractSiteData.prepared`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from participants.contract_encoding import EncodedTable, IssueLog, encode_table
from participants.contract_features import design_matrix
from participants.errors import DataSourceError
from participants.site_config import (
    CsvSource,
    DataSource,
    EmbeddedSource,
    LoadedSiteConfig,
    PackagedSource,
    TableSource,
)
from participants.site_data import SiteData, load_site_data, split_records
from participants.site_mapping import ContractMapping
from participants.table_connectors import CONNECTORS
from trialcore.data_contract import DataContract
from trialcore.errors import Problem
from trialcore.feature_statistics import FeatureStatistics, own_statistics, release_rows


@dataclass(frozen=True)
class ReadTable:
    """What reading the site's table found: the kept rows (if every column was there) and every problem."""

    shown_as: str
    table: EncodedTable | None
    log: IssueLog
    dropped: dict[str, int]
    """Contract feature -> rows dropped because its value was missing and its rule is drop-row."""

    def problems(self) -> list[Problem]:
        """Every problem: unreadable rows, missing columns, bad values, and a site left with no row."""
        problems = self.log.problems(self.shown_as)
        if self.table is not None and not problems and self.table.labels.size == 0:
            problems.append(
                Problem(
                    self.shown_as,
                    "",
                    f"{self.table.rows_read} row(s) read, none left after the contract's drop-row rules",
                    "rows with a target and a value for every drop-row feature (see data.contract)",
                )
            )
        return problems


def source_name(site: LoadedSiteConfig, source: TableSource) -> tuple[str, Path | str]:
    """How the source is shown in messages, and what its connector opens (a path, or a packaged data set)."""
    if isinstance(source, PackagedSource):
        return f"{source.package}:{source.dataset}", source.dataset
    return source.path, site.resolve(source.path)


def read_contract_table(site: LoadedSiteConfig, source: TableSource, contract: DataContract) -> ReadTable:
    """Read and encode the site's table, then drop the rows the contract's rules drop (never raises on values)."""
    shown_as, target = source_name(site, source)
    connector = CONNECTORS[source.kind](target, shown_as)
    table, log = encode_table(connector, contract, source.contract, source.rows, batch_rows=source.batch_rows)
    dropped: dict[str, int] = {}
    if table is not None:
        keep = np.ones(table.labels.size, dtype=bool)
        for j, feature in enumerate(contract.features):
            if feature.missing == "drop-row":
                missing = np.isnan(table.values[:, j])
                dropped[feature.name] = int((missing & keep).sum())
                keep &= ~missing
        table = EncodedTable(
            values=table.values[keep],
            labels=table.labels[keep],
            rows_read=table.rows_read,
            target_missing=table.target_missing,
            columns=table.columns,
        )
    return ReadTable(shown_as=shown_as, table=table, log=log, dropped=dropped)


@dataclass(frozen=True)
class ContractSiteData:
    """A site's contract-encoded train and test parts (NaN = missing), before imputation and scaling."""

    contract: DataContract
    train_values: npt.NDArray[np.float64]
    y_train: npt.NDArray[np.float32]
    test_values: npt.NDArray[np.float64]
    y_test: npt.NDArray[np.float32]

    @property
    def num_features(self) -> int:
        """Model input columns (the contract's width)."""
        return self.contract.input_width

    @property
    def num_train(self) -> int:
        return int(self.y_train.shape[0])

    @property
    def num_test(self) -> int:
        return int(self.y_test.shape[0])

    def release_rows(self) -> npt.NDArray[np.float64]:
        """The train part's rows of the feature-statistics release (exact; the release clips, sums and noises them)."""
        return release_rows(self.contract, self.train_values)

    def own_statistics(self) -> FeatureStatistics:
        """The statistics of the site's own train part (per-site normalisation; nothing leaves the site)."""
        return own_statistics(self.contract, self.train_values)

    def prepared(self, statistics: FeatureStatistics) -> SiteData:
        """The model input of both parts under ``statistics`` (imputed, scaled, one-hot, indicators)."""
        return SiteData(
            x_train=design_matrix(self.contract, self.train_values, statistics),
            y_train=self.y_train,
            x_test=design_matrix(self.contract, self.test_values, statistics),
            y_test=self.y_test,
        )


def load_contract_data(site: LoadedSiteConfig, source: TableSource, contract: DataContract) -> ContractSiteData:
    """The site's records under ``contract``, split into its train and test parts.

    Raises
    ------
    DataSourceError
        Listing every problem at once: a missing column, an unreadable row, a value out of the
        contract's range, an unknown code, or no row left.
    """
    read = read_contract_table(site, source, contract)
    problems = read.problems()
    if problems or read.table is None:
        raise DataSourceError(f"Data of site {site.config.site_id} do not meet the trial's data contract", problems)
    table = read.table
    # The split shuffles row indices: the encoded values travel as "features" through the same split.
    index = np.arange(table.labels.size, dtype=np.float64)[:, None]
    parts = split_records(index, table.labels, test_fraction=site.config.test_fraction, shown_as=read.shown_as)
    train_rows, test_rows = parts.x_train[:, 0].astype(int), parts.x_test[:, 0].astype(int)
    return ContractSiteData(
        contract=contract,
        train_values=table.values[train_rows],
        y_train=parts.y_train,
        test_values=table.values[test_rows],
        y_test=parts.y_test,
    )


def load_site_records(site: LoadedSiteConfig, contract: DataContract | None) -> SiteData | ContractSiteData:
    """The site's records for a trial: under its data contract if it has one, else as plain numeric columns.

    Raises
    ------
    DataSourceError
        When the data cannot be read, break the contract, or the source cannot serve this trial
        (the embedded demo share under a contract; a Parquet or packaged source without one).
    """
    source = site.config.data
    if contract is None:
        return load_site_data(site)
    table = mapped_source(source)
    if table is None:
        return positional_contract_data(site, contract)
    return load_contract_data(site, table, contract)


def mapped_source(source: DataSource) -> TableSource | None:
    """The table read through the site's contract mapping; None for a source read by position under a contract.

    Read by position: the embedded share, and a plain CSV (numeric columns and a 0/1
    ``target_column``, no contract mapping and no row filter), as without a contract.
    """
    if isinstance(source, EmbeddedSource):
        return None
    plain = isinstance(source, CsvSource) and source.target_column is not None and source.rows is None
    return None if plain and source.contract == ContractMapping() else source


def positional_contract_data(site: LoadedSiteConfig, contract: DataContract) -> ContractSiteData:
    """Numeric columns by position under a contract of exactly as many numeric features, in order.

    The embedded demo share (30 numeric features) and a plain CSV (numeric columns and a 0/1
    ``target_column``, no contract mapping) have no column names to map: the contract must list
    exactly their numeric features, in order; a value outside a feature's range is a data error,
    as for any site.
    """
    source = site.config.data
    plain = load_site_data(site)  # its own seeded, stratified split, as without a contract
    features = np.concatenate([plain.x_train, plain.x_test]).astype(np.float64)
    shown_as = f"embedded partition {source.partition}" if isinstance(source, EmbeddedSource) else site.shown_as
    width = features.shape[1]
    if len(contract.features) != width or len(contract.numeric_features) != width:
        raise DataSourceError(
            f"Site {site.config.site_id} cannot map its data onto the trial's data contract",
            [
                Problem(
                    site.shown_as,
                    "data.kind",
                    source.kind,
                    f"a contract of exactly the share's {width} numeric features, or a csv, parquet or "
                    "packaged source with a contract mapping",
                )
            ],
        )
    problems = []
    for j, feature in enumerate(contract.numeric_features):
        low, high = feature.range
        outside = np.flatnonzero((features[:, j] < low) | (features[:, j] > high))
        if outside.size:
            problems.append(
                Problem(
                    shown_as,
                    f"column {j + 1} ({feature.name}): {outside.size} row(s)",
                    f"{features[outside[0], j]:g}",
                    f"a value within the contract's range [{low:g}, {high:g}] {feature.unit}",
                )
            )
    if problems:
        raise DataSourceError(f"Data of site {site.config.site_id} do not meet the trial's data contract", problems)
    return ContractSiteData(
        contract=contract,
        train_values=plain.x_train.astype(np.float64),
        y_train=plain.y_train,
        test_values=plain.x_test.astype(np.float64),
        y_test=plain.y_test,
    )
