"""Read a site's records from a CSV file: numeric features and a 0/1 target column.

Every error names the file and the column (and the row for a bad value) so the site's data
engineer knows what to fix. Values are checked in the type training uses: a number that is finite
in float64 but not in float32 (``1e308``) is refused here, not discovered as ``inf`` in round 1.
The header must name each column once, every row must have exactly the header's cells, and a
UTF-8 byte-order mark is ignored. Only a regular file is read (a folder, a FIFO or a symbolic
link loop is a bad-input error, never a hang or a traceback).
"""

from __future__ import annotations

import csv
import errno
import io
import math
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt

from participants.errors import DataSourceError
from trialcore.errors import Problem, show_text, show_value

FLOAT32_MAX = float(np.finfo(np.float32).max)
"""Largest magnitude a feature may have: training runs in float32 (about 3.4e38)."""

_MAX_PROBLEMS = 20


def read_csv_records(
    path: Path, *, shown_as: str, target_column: str, feature_columns: tuple[str, ...] | None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Return (features, labels) from a CSV file with a header row.

    Invariant: every returned value is finite in float32, every label is 0.0 or 1.0.

    Raises
    ------
    DataSourceError
        For a missing or non-regular file, a duplicate or missing column, a row with too many or
        too few cells, a non-numeric value or one not finite in float32, or a target not 0/1.
    """
    return parse_csv_records(
        read_csv_bytes(path, shown_as), shown_as=shown_as, target_column=target_column, feature_columns=feature_columns
    )


def parse_csv_records(
    raw: bytes, *, shown_as: str, target_column: str, feature_columns: tuple[str, ...] | None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """:func:`read_csv_records` on bytes already read with :func:`read_csv_bytes` (same checks, same errors)."""
    rows = _read_rows(raw, shown_as)
    if not rows:
        raise DataSourceError(
            f"Data file '{shown_as}' is empty", [Problem(shown_as, "", "no header row", "a header row")]
        )
    header = [name.strip() for name in rows[0]]
    _check_header(header, shown_as)
    wanted = list(feature_columns) if feature_columns is not None else [c for c in header if c != target_column]
    missing = [c for c in [target_column, *wanted] if c not in header]
    if missing:
        raise DataSourceError(
            f"Data file '{shown_as}' lacks columns",
            [
                Problem(
                    shown_as,
                    f"column {show_text(c)}",
                    "no such column",
                    f"one of the header's columns: {_listing(header)}",
                )
                for c in missing
            ],
        )
    positions = [header.index(c) for c in wanted]
    target_position = header.index(target_column)
    features = np.empty((len(rows) - 1, len(wanted)), dtype=np.float64)
    labels = np.empty(len(rows) - 1, dtype=np.float64)
    problems: list[Problem] = []
    for row_number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            problems.append(
                Problem(
                    shown_as,
                    f"row {row_number}",
                    f"{len(row)} cells",
                    f"exactly one cell per header column ({len(header)})",
                )
            )
            continue
        for out_col, (name, position) in enumerate(zip([*wanted, target_column], [*positions, target_position])):
            cell = row[position]
            value = _number(cell)
            if value is None:
                allowed = f"a finite number of magnitude at most {FLOAT32_MAX:.7g} (training uses float32)"
                problems.append(Problem(shown_as, _cell_field(row_number, name), show_value(cell), allowed))
            elif out_col == len(wanted):
                if value not in (0.0, 1.0):
                    problems.append(Problem(shown_as, _cell_field(row_number, name), show_value(cell), "0 or 1"))
                labels[row_number - 2] = value
            else:
                features[row_number - 2, out_col] = value
        if len(problems) >= _MAX_PROBLEMS:
            break
    if problems:
        raise DataSourceError(f"Data file '{shown_as}' has bad values", problems)
    if labels.size == 0:
        raise DataSourceError(
            f"Data file '{shown_as}' has no records", [Problem(shown_as, "", "a header only", "at least one record")]
        )
    return features, labels


def read_csv_bytes(path: Path, shown_as: str) -> bytes:
    """The bytes of the site's CSV file, if it is a regular file the site can read."""
    with _open_regular(path, shown_as) as handle:
        return handle.read()


def _read_rows(raw: bytes, shown_as: str) -> list[list[str]]:
    """Every row of the CSV text, the byte-order mark stripped."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataSourceError(
            f"Data file '{shown_as}' is not UTF-8", [Problem(shown_as, "", "non-UTF-8 bytes", "a UTF-8 CSV file")]
        ) from err
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        return list(reader)
    except csv.Error as err:
        raise DataSourceError(
            f"Data file '{shown_as}' is not a readable CSV",
            [Problem(shown_as, f"line {reader.line_num}", show_value(str(err)), "a well-formed CSV file")],
        ) from err


@contextmanager
def open_csv_text(path: Path, shown_as: str) -> Iterator[IO[str]]:
    """Open the site's CSV file as UTF-8 text (byte-order mark stripped, newlines as written) if it is a regular file."""
    with _open_regular(path, shown_as) as handle:
        yield io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")


@contextmanager
def _open_regular(path: Path, shown_as: str) -> Iterator[IO[bytes]]:
    """Open ``path`` for reading if it is a regular file (checked before opening, and after)."""

    def fail(found: str, allowed: str) -> DataSourceError:
        return DataSourceError(f"Data file '{shown_as}' cannot be read", [Problem(shown_as, "", found, allowed)])

    wanted = "the path of the site's CSV file, relative to the site config"
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise fail("a folder" if path.is_dir() else "not a regular file (a FIFO, device or socket)", wanted)
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        handle = os.fdopen(descriptor, "rb")
    except (FileNotFoundError, NotADirectoryError) as err:
        raise fail("no such file", wanted) from err
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise fail("a symbolic link loop", wanted) from err
        raise fail(f"unreadable ({err.strerror})", "a CSV file the site can read") from err
    with handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise fail("not a regular file", wanted)
        yield handle


def _listing(header: list[str]) -> str:
    """The header's column names, at most the first 20, each cut to 40 characters."""
    shown = ", ".join(show_text(name)[:40] for name in header[:20])
    return shown if len(header) <= 20 else f"{shown}, ... ({len(header)} columns)"


def _check_header(header: list[str], shown_as: str) -> None:
    """Each column named once, and named at all."""
    problems: list[Problem] = []
    first: dict[str, int] = {}
    for index, name in enumerate(header, start=1):
        if not name:
            problems.append(Problem(shown_as, f"header, column {index}", "an empty column name", "a name per column"))
        elif name in first:
            problems.append(
                Problem(
                    shown_as,
                    f"header, column {index}",
                    f"{show_value(name)}, already column {first[name]}",
                    "each column named once",
                )
            )
        else:
            first[name] = index
    if problems:
        raise DataSourceError(f"Data file '{shown_as}' has a bad header", problems)


def _cell_field(row_number: int, name: str) -> str:
    """How a problem names a cell (built only for a bad cell: a large file has millions of good ones)."""
    return f"row {row_number}, column {show_text(name)}"


def _number(cell: str) -> float | None:
    """The cell as a number finite in float32, or ``None``."""
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) and abs(value) <= FLOAT32_MAX else None
