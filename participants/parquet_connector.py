"""Read a site's Parquet file in row batches (pyarrow), only the columns the contract needs.

``pyarrow.parquet.ParquetFile.iter_batches`` reads one row group's column chunks at a time and
hands out at most ``batch_rows`` rows per batch, so memory holds one row group of the asked
columns, never the file. Rows are numbered from 1 (the first record is row 1).
Only a regular file is read, as for CSV.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from participants.errors import DataSourceError
from participants.table_connectors import Batch, Cell
from trialcore.errors import Problem, show_value

_WANTED = "the path of the site's Parquet file, relative to the site config"


class ParquetTable:
    """A Parquet file, read batch by batch."""

    def __init__(self, path: Path, shown_as: str) -> None:
        self.path = path
        self.shown_as = shown_as

    def _open(self) -> pq.ParquetFile:
        def fail(found: str, allowed: str = _WANTED) -> DataSourceError:
            return DataSourceError(
                f"Data file '{self.shown_as}' cannot be read", [Problem(self.shown_as, "", found, allowed)]
            )

        try:
            if not stat.S_ISREG(os.stat(self.path).st_mode):
                raise fail("a folder" if self.path.is_dir() else "not a regular file (a FIFO, device or socket)")
            return pq.ParquetFile(self.path)
        except (FileNotFoundError, NotADirectoryError) as err:
            raise fail("no such file") from err
        except OSError as err:
            raise fail(f"unreadable ({err.strerror or 'I/O error'})", "a Parquet file the site can read") from err
        except (pa.ArrowInvalid, pa.ArrowException) as err:
            raise fail(f"not a Parquet file ({show_value(str(err))})", "a Parquet file") from err

    def header(self) -> list[str]:
        return list(self._open().schema_arrow.names)

    def batches(self, columns: Sequence[str], batch_rows: int) -> Iterator[Batch]:
        handle = self._open()
        first = 1
        try:
            for record_batch in handle.iter_batches(batch_size=batch_rows, columns=list(columns)):
                size = record_batch.num_rows
                cells: dict[str, list[Cell]] = {name: record_batch.column(name).to_pylist() for name in columns}
                yield Batch(range(first, first + size), cells)
                first += size
        except (pa.ArrowInvalid, pa.ArrowException, OSError) as err:
            raise DataSourceError(
                f"Data file '{self.shown_as}' cannot be read",
                [Problem(self.shown_as, f"row {first}", show_value(str(err)), "a readable Parquet file")],
            ) from err
        finally:
            handle.close()
