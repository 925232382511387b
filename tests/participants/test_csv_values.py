"""CSV values are checked in the type training uses, and the file's shape is checked as written.

A value finite in float64 but not in float32 (1e308) used to pass ``check-data`` and become ``inf``
in round 1; a byte-order mark stuck to the first column's name; a duplicated header silently
reused the first column; extra cells were ignored; a folder or a symbolic-link loop as the data
path was a traceback.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_csv_connector import GOOD_CSV, problem_lines, write_site
from typer.testing import CliRunner

from participants.cli import app
from participants.site_config import load_site_config
from participants.site_data import load_site_data


def test_value_finite_in_float64_but_not_float32_is_refused_naming_row_and_column(tmp_path: Path) -> None:
    """1e308 is a data error at the site (row and column named), not an inf in training."""
    text = GOOD_CSV.replace("\n2,20,-2,0\n", "\n2,1e308,-2,0\n")
    [line] = problem_lines(write_site(tmp_path, text))
    assert line.startswith("data/records.csv: row 4, column b: found '1e308'; a finite number of magnitude at most")


def test_largest_float32_is_accepted(tmp_path: Path) -> None:
    """The boundary itself (3.4028234e38) trains as a finite float32."""
    text = GOOD_CSV.replace("\n2,20,-2,0\n", "\n2,-3.4028234e38,-2,0\n")
    data = load_site_data(load_site_config(write_site(tmp_path, text)))
    assert bool(abs(data.x_train).max() > 3e38 or abs(data.x_test).max() > 3e38)


def test_check_data_exits_2_for_a_float32_overflow(tmp_path: Path) -> None:
    """``participants check-data`` refuses the same file with exit 2 and one JSON problem naming file, row, column."""
    config = write_site(tmp_path, GOOD_CSV.replace("\n5,50,-5,1\n", "\n5,50,-1e39,1\n"))
    result = CliRunner().invoke(app, ["check-data", str(config), "--format", "json"])
    assert result.exit_code == 2
    [problem] = json.loads(result.stdout)["problems"]
    assert problem["file"] == "data/records.csv" and problem["field"] == "row 7, column c"
    assert problem["found"] == "'-1e39'"


def test_byte_order_mark_is_stripped(tmp_path: Path) -> None:
    """A CSV saved by a spreadsheet with a UTF-8 BOM still has a first column named ``a``."""
    config = write_site(tmp_path, None, feature_columns=["a", "b"])
    (config.parent / "data" / "records.csv").write_bytes(b"\xef\xbb\xbf" + GOOD_CSV.encode("utf-8"))
    assert load_site_data(load_site_config(config)).num_features == 2


def test_duplicate_header_is_refused(tmp_path: Path) -> None:
    """A column named twice is an error naming both positions, never a silent pick of the first."""
    text = GOOD_CSV.replace("a,b,c,y\n", "a,b,a,y\n", 1)
    assert problem_lines(write_site(tmp_path, text)) == [
        "data/records.csv: header, column 3: found 'a', already column 1; each column named once"
    ]


@pytest.mark.parametrize(("row", "cells"), [("2,20,-2,0,99", 5), ("2,20,-2", 3)])
def test_row_with_extra_or_missing_cells_is_refused(tmp_path: Path, row: str, cells: int) -> None:
    """Extra cells are not ignored and missing ones are not guessed: the row is named with its cell count."""
    text = GOOD_CSV.replace("\n2,20,-2,0\n", f"\n{row}\n")
    assert problem_lines(write_site(tmp_path, text)) == [
        f"data/records.csv: row 4: found {cells} cells; exactly one cell per header column (4)"
    ]


def test_folder_as_data_path_is_bad_input(tmp_path: Path) -> None:
    """A data path naming a folder is exit 2 naming the file, not a traceback."""
    config = write_site(tmp_path, None)
    (config.parent / "data" / "records.csv").mkdir()
    [line] = problem_lines(config)
    assert line.startswith("data/records.csv: found a folder;")


def test_symlink_loop_as_data_path_is_bad_input(tmp_path: Path) -> None:
    """A symbolic-link loop is exit 2 at ``check-data``, not a traceback."""
    config = write_site(tmp_path, None)
    link = config.parent / "data" / "records.csv"
    link.symlink_to(link)
    result = CliRunner().invoke(app, ["check-data", str(config)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "data/records.csv: found a symbolic link loop" in result.stderr


def test_fifo_as_data_path_is_refused_without_blocking(tmp_path: Path) -> None:
    """A named pipe in place of the CSV is refused before it is opened."""
    config = write_site(tmp_path, None)
    os.mkfifo(config.parent / "data" / "records.csv")
    [line] = problem_lines(config)
    assert "not a regular file" in line


def test_a_huge_header_name_is_shortened_in_the_message(tmp_path: Path) -> None:
    """A 10,000-character column name (found by the reader fuzz) is cut in the list of header columns."""
    text = GOOD_CSV.replace("a,b,c,y\n", "a,b,c," + "x" * 10_000 + "\n", 1)
    [line] = problem_lines(write_site(tmp_path, text))
    assert line.startswith("data/records.csv: column y: found no such column; one of the header's columns: a, b, c, x")
    assert len(line) < 200
