"""Read a site's records from a CSV file: numeric features and a 0/1 target column.

Every error names the file and the column (and the row for a bad value) so the site's data
engineer knows what to fix.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import numpy.typing as npt

from participants.errors import DataSourceError
from trialcore.errors import Problem, show_value


def read_csv_records(
    path: Path, *, shown_as: str, target_column: str, feature_columns: tuple[str, ...] | None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Return (features, labels) from a CSV file with a header row.

    Raises
    ------
    DataSourceError
        For a missing file, a missing column, a non-numeric or non-finite value, or a target not 0/1.
    """
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError as err:
        raise DataSourceError(
            f"Data file '{shown_as}' not found",
            [Problem(shown_as, "", "no such file", "the path of the site's CSV file, relative to the site config")],
        ) from err
    except UnicodeDecodeError as err:
        raise DataSourceError(
            f"Data file '{shown_as}' is not UTF-8", [Problem(shown_as, "", "non-UTF-8 bytes", "a UTF-8 CSV file")]
        ) from err
    if not rows:
        raise DataSourceError(
            f"Data file '{shown_as}' is empty", [Problem(shown_as, "", "no header row", "a header row")]
        )
    header = [name.strip() for name in rows[0]]
    wanted = list(feature_columns) if feature_columns is not None else [c for c in header if c != target_column]
    missing = [c for c in [target_column, *wanted] if c not in header]
    if missing:
        raise DataSourceError(
            f"Data file '{shown_as}' lacks columns",
            [
                Problem(shown_as, f"column {c}", "no such column", f"one of the header's columns: {', '.join(header)}")
                for c in missing
            ],
        )
    positions = [header.index(c) for c in wanted]
    target_position = header.index(target_column)
    features = np.empty((len(rows) - 1, len(wanted)), dtype=np.float64)
    labels = np.empty(len(rows) - 1, dtype=np.float64)
    problems: list[Problem] = []
    for row_number, row in enumerate(rows[1:], start=2):
        for out_col, (name, position) in enumerate(zip([*wanted, target_column], [*positions, target_position])):
            cell = row[position] if position < len(row) else ""
            value = _number(cell)
            if value is None:
                problems.append(
                    Problem(shown_as, f"row {row_number}, column {name}", show_value(cell), "a finite number")
                )
            elif name == target_column and position == target_position and out_col == len(wanted):
                if value not in (0.0, 1.0):
                    problems.append(Problem(shown_as, f"row {row_number}, column {name}", show_value(cell), "0 or 1"))
                labels[row_number - 2] = value
            else:
                features[row_number - 2, out_col] = value
        if len(problems) >= 20:
            break
    if problems:
        raise DataSourceError(f"Data file '{shown_as}' has bad values", problems)
    if labels.size == 0:
        raise DataSourceError(
            f"Data file '{shown_as}' has no records", [Problem(shown_as, "", "a header only", "at least one record")]
        )
    return features, labels


def _number(cell: str) -> float | None:
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
