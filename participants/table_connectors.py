"""Connectors that read a site's table in row batches, one per kind of source (a small registry).

Each connector answers two questions: which columns the table has (:meth:`TableConnector.header`)
and, for the columns asked for, their cells batch by batch (:meth:`TableConnector.batches`). A
cell is text, a number, a boolean or ``None`` (a null); the contract encoder
(:mod:`participants.contract_encoding`) decides what each means. Invariant: no connector holds
more than ``batch_rows`` rows of the table in memory at once, and only the columns asked for, so
a file larger than memory is read whole only in the sense that every row passes once.

Add a kind by registering a factory in :data:`CONNECTORS` (as Opacus registers accountants), not
with an ``isinstance`` chain at the call site.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from participants.csv_connector import _check_header, open_csv_text
from participants.errors import DataSourceError
from trialcore.errors import Problem, show_value

Cell = str | float | int | bool | None
"""One value as a connector reads it; ``None`` is a null (Parquet, a packaged data frame's NA)."""


@dataclass(frozen=True)
class Batch:
    """Some consecutive rows of the table: ``columns[name][i]`` is row ``row_numbers[i]``'s cell."""

    row_numbers: Sequence[int]
    columns: dict[str, list[Cell]]
    problems: list[Problem] = field(default_factory=list)
    """Rows the connector could not read (e.g. a CSV row with too many cells); they are not in the batch."""

    @property
    def size(self) -> int:
        return len(self.row_numbers)


class TableConnector(Protocol):
    """A site's table, read in batches (see the module docstring)."""

    shown_as: str

    def header(self) -> list[str]:
        """The table's column names, in file order."""
        ...

    def batches(self, columns: Sequence[str], batch_rows: int) -> Iterator[Batch]:
        """The cells of ``columns`` (all in the header), at most ``batch_rows`` rows per batch."""
        ...


class CsvTable:
    """A CSV file with a header row; rows are numbered as lines (the header is row 1)."""

    def __init__(self, path: Path, shown_as: str) -> None:
        self.path = path
        self.shown_as = shown_as

    def header(self) -> list[str]:
        with open_csv_text(self.path, self.shown_as) as handle:
            first = next(self._reader(handle), None)
        if first is None:
            raise DataSourceError(
                f"Data file '{self.shown_as}' is empty", [Problem(self.shown_as, "", "no header row", "a header row")]
            )
        header = [name.strip() for name in first]
        _check_header(header, self.shown_as)
        return header

    def batches(self, columns: Sequence[str], batch_rows: int) -> Iterator[Batch]:
        header = self.header()
        positions = [header.index(name) for name in columns]
        with open_csv_text(self.path, self.shown_as) as handle:
            rows = self._reader(handle)
            next(rows)
            numbers: list[int] = []
            cells: list[list[Cell]] = [[] for _ in columns]
            problems: list[Problem] = []
            for row_number, row in enumerate(rows, start=2):
                if len(row) != len(header):
                    problems.append(
                        Problem(
                            self.shown_as,
                            f"row {row_number}",
                            f"{len(row)} cells",
                            f"exactly one cell per header column ({len(header)})",
                        )
                    )
                    continue
                numbers.append(row_number)
                for column, position in zip(cells, positions):
                    column.append(row[position])
                if len(numbers) >= batch_rows:
                    yield Batch(numbers, dict(zip(columns, cells)), problems)
                    numbers, cells, problems = [], [[] for _ in columns], []
            if numbers or problems:
                yield Batch(numbers, dict(zip(columns, cells)), problems)

    def _reader(self, handle: object) -> Iterator[list[str]]:
        reader = csv.reader(handle)  # type: ignore[arg-type]
        try:
            yield from reader
        except csv.Error as err:
            raise DataSourceError(
                f"Data file '{self.shown_as}' is not a readable CSV",
                [Problem(self.shown_as, f"line {reader.line_num}", show_value(str(err)), "a well-formed CSV file")],
            ) from err
        except UnicodeDecodeError as err:
            raise DataSourceError(
                f"Data file '{self.shown_as}' is not UTF-8",
                [Problem(self.shown_as, "", "non-UTF-8 bytes", "a UTF-8 CSV file")],
            ) from err


ConnectorFactory = Callable[[Path | str, str], TableConnector]


def _parquet(path: Path | str, shown_as: str) -> TableConnector:
    from participants.parquet_connector import ParquetTable  # pyarrow is imported only for Parquet sites

    return ParquetTable(Path(path), shown_as)


def _packaged(dataset: Path | str, shown_as: str) -> TableConnector:
    from participants.packaged_data import PackagedTable  # pandas is imported only for packaged data sets

    return PackagedTable(str(dataset), shown_as)


CONNECTORS: dict[str, ConnectorFactory] = {
    "csv": lambda path, shown_as: CsvTable(Path(path), shown_as),
    "parquet": _parquet,
    "packaged": _packaged,
}
"""Source kind (``data.kind`` of a site config) -> the connector that reads it."""
