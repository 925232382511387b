"""Turn a site's table into the trial contract's columns, batch by batch, collecting every problem.

For each of the site's rows (those its row filter keeps) and each contract feature, a cell is:

1. **missing** if it is null, NaN, one of the contract's or the site's missing tokens (compared
   after trimming spaces), or one of the feature's sentinels (the site's, on the raw value, then
   the contract's, after the site's code mapping);
2. otherwise read by kind: a **numeric** value must be a finite number inside the contract's
   range; a **categorical** code (after the site's code mapping) must be one of the contract's
   categories (kept as its index); a **binary** code must be one of the contract's two codes
   (kept as 0 or 1). Anything else is a data error.

The target becomes 1 when its code is one of the positive codes (or its value lies on the
threshold's positive side: at or above it, or below it) and 0 otherwise; a row whose target is missing is dropped (counted).

Invariants: every problem names the file, the column, how many rows and the rule broken, and
all of them are collected before anything is refused; the encoded table holds only the
contract's columns as float64 (NaN = missing), never the extract's other columns.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from participants.site_mapping import ContractMapping, RowFilter
from participants.table_connectors import Batch, Cell, TableConnector
from trialcore.data_contract import BinaryFeature, CategoricalFeature, DataContract, NumericFeature
from trialcore.errors import Problem, show_text, show_value

_SHOWN_ROWS = 5


@dataclass
class _Issue:
    count: int = 0
    rows: list[int] = field(default_factory=list)
    example: Cell = None


@dataclass
class IssueLog:
    """Problems grouped by (column, rule): a count, the first few rows and one example value."""

    issues: dict[tuple[str, str], _Issue] = field(default_factory=dict)
    extra: list[Problem] = field(default_factory=list)

    def add(self, column: str, rule: str, row: int, value: Cell) -> None:
        issue = self.issues.setdefault((column, rule), _Issue(example=value))
        issue.count += 1
        if len(issue.rows) < _SHOWN_ROWS:
            issue.rows.append(row)

    def problems(self, shown_as: str) -> list[Problem]:
        """One problem per (column, rule), then the others (missing columns, unreadable rows)."""
        lines = []
        for (column, rule), issue in self.issues.items():
            shown_rows = ", ".join(str(r) for r in issue.rows) + (", ..." if issue.count > len(issue.rows) else "")
            lines.append(
                Problem(
                    shown_as,
                    f"column {show_text(column)}: {issue.count} row(s) (rows {shown_rows})",
                    show_value(issue.example),
                    rule,
                )
            )
        return [*self.extra, *lines]


@dataclass(frozen=True)
class EncodedTable:
    """The site's rows in contract columns: ``values[i, j]`` is feature ``j`` of row ``i`` (NaN = missing).

    A numeric feature holds its value, a categorical one its category's index, a binary one 0 or 1.
    """

    values: npt.NDArray[np.float64]
    labels: npt.NDArray[np.float64]
    rows_read: int
    """Rows of the site (after its row filter), before any was dropped."""
    target_missing: int
    """Rows dropped because their target was missing."""
    columns: dict[str, str | None]
    """Contract name -> the extract's column it was read from (None: not collected at this site)."""


def _text(cell: Cell) -> str | None:
    """The cell as trimmed text (None for a null or NaN); an integral number prints without '.0'."""
    if cell is None:
        return None
    if isinstance(cell, bool):
        return "1" if cell else "0"
    if isinstance(cell, float):
        if math.isnan(cell):
            return None
        return str(int(cell)) if cell.is_integer() else repr(cell)
    return str(cell).strip()


def _number(cell: Cell) -> float | None:
    if isinstance(cell, bool):
        return None
    if isinstance(cell, (int, float)):
        return float(cell)
    try:
        return float(str(cell))
    except ValueError:
        return None


def _is_sentinel(text: str, sentinels: Iterable[float | str], numeric: bool) -> bool:
    value = _number(text) if numeric else None
    for sentinel in sentinels:
        if isinstance(sentinel, (int, float)) and value is not None and value == float(sentinel):
            return True
        if str(sentinel).strip() == text:
            return True
    return False


_CACHE_LIMIT = 100_000
"""Distinct cells a feature reader remembers (codes and repeated values are read once)."""


class _FeatureReader:
    """Reads one feature's cells (see the module docstring): a float (NaN = missing) or the rule a cell breaks."""

    def __init__(
        self, feature: NumericFeature | CategoricalFeature | BinaryFeature, mapping: ContractMapping, tokens: set[str]
    ) -> None:
        self.feature = feature
        self.tokens = tokens
        self.codes = mapping.codes.get(feature.name, {})
        self.site_sentinels = tuple(mapping.sentinels.get(feature.name, ()))
        self.numeric = isinstance(feature, NumericFeature)
        self.cache: dict[Cell, float | str] = {}
        if isinstance(feature, NumericFeature):
            low, high = feature.range
            self.not_a_number = f"a number in {feature.unit} (contract {feature.name})"
            self.out_of_range = (
                f"a value within the contract's range [{low:g}, {high:g}] {feature.unit} "
                f"(contract {feature.name}); out-of-range values are data errors"
            )
        elif isinstance(feature, CategoricalFeature):
            self.index = {code: float(k) for k, code in enumerate(feature.categories)}
            allowed = ", ".join(feature.categories[:10]) + (", ..." if len(feature.categories) > 10 else "")
            self.unknown = f"one of the categories of {feature.name}: {allowed} (or map the code)"
        else:
            self.index = {code: float(k) for k, code in enumerate(feature.codes)}
            self.unknown = f"one of the codes of {feature.name}: {', '.join(feature.codes)} (or map the code)"

    def read(self, cell: Cell) -> float | str:
        try:
            return self.cache[cell]
        except (KeyError, TypeError):
            pass
        value = self._read(cell)
        if len(self.cache) < _CACHE_LIMIT:
            self.cache[cell] = value
        return value

    def _read(self, cell: Cell) -> float | str:
        text = _text(cell)
        if text is None or text in self.tokens or _is_sentinel(text, self.site_sentinels, self.numeric):
            return math.nan
        code = self.codes.get(text, text)
        if _is_sentinel(code, self.feature.sentinels, self.numeric):
            return math.nan
        feature = self.feature
        if isinstance(feature, NumericFeature):
            value = _number(cell) if not isinstance(cell, str) else _number(code)
            if value is None or not math.isfinite(value):
                return self.not_a_number
            low, high = feature.range
            return value if low <= value <= high else self.out_of_range
        found = self.index.get(code)
        return self.unknown if found is None else found


class ContractEncoder:
    """Encodes batches of one site's table under one contract and mapping (see the module docstring)."""

    def __init__(self, contract: DataContract, mapping: ContractMapping, rows: RowFilter | None) -> None:
        self.contract = contract
        self.mapping = mapping
        self.rows = rows
        self.tokens = {t.strip() for t in (*contract.missing_tokens, *mapping.missing_tokens)}
        self.log = IssueLog()
        self._readers: dict[str, _FeatureReader] = {}

    def read_columns(self, header: list[str], shown_as: str) -> list[str] | None:
        """The extract's columns to read, or None after logging every mapping problem."""
        known = {f.name for f in self.contract.features} | {self.contract.target.column}
        for section, names in (("columns", self.mapping.columns), ("codes", self.mapping.codes)):
            for name in names:
                if name not in known:
                    self.log.extra.append(
                        Problem(shown_as, f"contract.{section}.{name}", show_text(name), "a feature or the target")
                    )
        wanted: list[str] = []
        for name in [*(f.name for f in self.contract.features), self.contract.target.column]:
            column = self.mapping.column_of(name)
            if column is None:
                if name == self.contract.target.column:
                    self.log.extra.append(Problem(shown_as, f"contract.columns.{name}", "null", "the target's column"))
                continue
            if column not in header:
                self.log.extra.append(
                    Problem(
                        shown_as,
                        f"column {show_text(column)} (contract {name})",
                        "no such column",
                        "a column of the extract, or map it under data.contract.columns (null: not collected here)",
                    )
                )
            elif column not in wanted:
                wanted.append(column)
        if self.rows is not None:
            if self.rows.column not in header:
                self.log.extra.append(
                    Problem(shown_as, f"rows.column {show_text(self.rows.column)}", "no such column", "a column")
                )
            elif self.rows.column not in wanted:
                wanted.append(self.rows.column)
        return None if self.log.extra else wanted

    def encode(self, batch: Batch) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], int]:
        """(values, labels with NaN = target missing, rows kept by the filter) of one batch."""
        self.log.extra.extend(batch.problems)
        keep = list(range(batch.size))
        if self.rows is not None:
            wanted = {code.strip() for code in self.rows.equals}
            column = batch.columns[self.rows.column]
            keep = [i for i in keep if _text(column[i]) in wanted]
        rows = [batch.row_numbers[i] for i in keep]
        values = np.full((len(keep), len(self.contract.features)), np.nan)
        for j, feature in enumerate(self.contract.features):
            column_name = self.mapping.column_of(feature.name)
            if column_name is None:
                continue
            reader = self._readers.setdefault(feature.name, _FeatureReader(feature, self.mapping, self.tokens))
            cells = batch.columns[column_name]
            for out, (i, row) in enumerate(zip(keep, rows)):
                value = reader.read(cells[i])
                if isinstance(value, str):
                    self.log.add(column_name, value, row, cells[i])
                else:
                    values[out, j] = value
        target_column = self.mapping.column_of(self.contract.target.column)
        labels = np.full(len(keep), np.nan)
        if target_column is not None:
            cells = batch.columns[target_column]
            for out, (i, row) in enumerate(zip(keep, rows)):
                labels[out] = self._target_value(target_column, cells[i], row)
        return values, labels, len(keep)

    def _target_value(self, column: str, cell: Cell, row: int) -> float:
        target = self.contract.target
        text = _text(cell)
        if text is None or text in self.tokens:
            return math.nan
        code = self.mapping.codes.get(target.column, {}).get(text, text)
        if target.positive_codes is not None:
            return 1.0 if code in target.positive_codes else 0.0
        value = _number(cell) if not isinstance(cell, str) else _number(code)
        if value is None or not math.isfinite(value):
            self.log.add(column, f"a number to compare with the threshold {target.threshold:g} (target)", row, cell)
            return math.nan
        at_or_above = value >= float(target.threshold or 0.0)
        return 1.0 if at_or_above == (target.positive_when == "at-or-above") else 0.0


def encode_table(
    connector: TableConnector,
    contract: DataContract,
    mapping: ContractMapping,
    rows: RowFilter | None,
    *,
    batch_rows: int,
) -> tuple[EncodedTable | None, IssueLog]:
    """Read ``connector`` batch by batch into contract columns; the table is None if a column is missing."""
    encoder = ContractEncoder(contract, mapping, rows)
    columns = encoder.read_columns(connector.header(), connector.shown_as)
    if columns is None:
        return None, encoder.log
    parts_values: list[npt.NDArray[np.float64]] = []
    parts_labels: list[npt.NDArray[np.float64]] = []
    rows_read = 0
    for batch in connector.batches(columns, batch_rows):
        values, labels, kept = encoder.encode(batch)
        parts_values.append(values)
        parts_labels.append(labels)
        rows_read += kept
    values = np.concatenate(parts_values) if parts_values else np.empty((0, len(contract.features)))
    labels = np.concatenate(parts_labels) if parts_labels else np.empty(0)
    known = ~np.isnan(labels)
    table = EncodedTable(
        values=values[known],
        labels=labels[known],
        rows_read=rows_read,
        target_missing=int((~known).sum()),
        columns={f.name: mapping.column_of(f.name) for f in contract.features},
    )
    return table, encoder.log
