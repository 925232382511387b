"""A site's CSV data through its connector: right shapes, and errors that name file, row and column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from participants.errors import DataSourceError
from participants.site_config import load_site_config
from participants.site_data import SiteData, load_site_data

GOOD_ROWS = [(i, 10 * i, -i, i % 2) for i in range(12)]
GOOD_CSV = "a,b,c,y\n" + "".join(f"{a},{b},{c},{y}\n" for a, b, c, y in GOOD_ROWS)


def write_site(root: Path, csv_text: str | None, **data: Any) -> Path:
    """A site config at root/site/site.yaml whose CSV lives at root/site/data/records.csv."""
    site = root / "site"
    (site / "data").mkdir(parents=True)
    if csv_text is not None:
        (site / "data" / "records.csv").write_text(csv_text, encoding="utf-8")
    config = {
        "site_id": "it-rome",
        "jurisdiction": "IT",
        "institution": "Test hospital",
        "data": {"kind": "csv", "path": "data/records.csv", "target_column": "y", **data},
    }
    (site / "site.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return site / "site.yaml"


def load(config: Path) -> SiteData:
    return load_site_data(load_site_config(config))


def problem_lines(config: Path) -> list[str]:
    with pytest.raises(DataSourceError) as caught:
        load(config)
    assert caught.value.exit_code == 2
    return caught.value.lines()


def test_good_csv_loads_with_the_right_shapes(tmp_path: Path) -> None:
    """Every record lands in train or test once, with the chosen feature columns in the chosen order."""
    data = load(write_site(tmp_path, GOOD_CSV, feature_columns=["c", "a"]))
    assert data.x_train.shape == (9, 2) and data.x_test.shape == (3, 2)
    assert data.y_train.shape == (9,) and data.y_test.shape == (3,)
    assert data.x_train.dtype == np.float32
    rows = sorted(map(tuple, np.vstack([data.x_train, data.x_test]).tolist()))
    assert rows == sorted((c, a) for a, _, c, _ in GOOD_ROWS)
    assert sorted(np.concatenate([data.y_train, data.y_test]).tolist()) == [0.0] * 6 + [1.0] * 6


def test_all_columns_but_the_target_are_features_by_default(tmp_path: Path) -> None:
    """Without feature_columns every column except the target is a feature."""
    assert load(write_site(tmp_path, GOOD_CSV)).num_features == 3


def test_csv_path_resolves_against_the_site_config_not_the_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A site can run from any directory: data/records.csv is found beside its config file."""
    config = write_site(tmp_path, GOOD_CSV)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    site = load_site_config(config)
    assert site.resolve("data/records.csv") == (tmp_path / "site" / "data" / "records.csv").resolve()
    assert load_site_data(site).num_train + load_site_data(site).num_test == len(GOOD_ROWS)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    """A CSV that is not there is reported by its path as written in the site config."""
    assert problem_lines(write_site(tmp_path, None)) == [
        "data/records.csv: found no such file; the path of the site's CSV file, relative to the site config"
    ]


def test_missing_column_names_it_and_lists_the_header(tmp_path: Path) -> None:
    """A column the config asks for but the CSV lacks is named, with the columns the header does have."""
    [line] = problem_lines(write_site(tmp_path, GOOD_CSV, feature_columns=["a", "age"]))
    assert line == "data/records.csv: column age: found no such column; one of the header's columns: a, b, c, y"


def test_missing_target_column_is_named(tmp_path: Path) -> None:
    """A target column absent from the header is named too."""
    [line] = problem_lines(write_site(tmp_path, GOOD_CSV.replace("a,b,c,y", "a,b,c,label")))
    assert line.startswith("data/records.csv: column y: found no such column;")


def test_non_numeric_value_names_row_and_column(tmp_path: Path) -> None:
    """A non-numeric cell is named by its row (as a spreadsheet counts) and column, with the value found."""
    text = GOOD_CSV.replace("\n2,20,-2,0\n", "\n2,twenty,-2,0\n")
    assert "twenty" in text
    assert problem_lines(write_site(tmp_path, text)) == [
        "data/records.csv: row 4, column b: found 'twenty'; "
        "a finite number of magnitude at most 3.402823e+38 (training uses float32)"
    ]


def test_target_not_0_or_1_is_refused(tmp_path: Path) -> None:
    """A label other than 0/1 is named by row and column instead of being trained on."""
    text = GOOD_CSV.replace("\n3,30,-3,1\n", "\n3,30,-3,2\n")
    assert problem_lines(write_site(tmp_path, text)) == ["data/records.csv: row 5, column y: found '2'; 0 or 1"]


def test_every_bad_cell_is_reported_at_once(tmp_path: Path) -> None:
    """Several bad cells are all listed, so the data engineer fixes them in one pass."""
    text = GOOD_CSV.replace("\n2,20,-2,0\n", "\n2,nan,-2,0\n").replace("\n3,30,-3,1\n", "\n3,30,-3,yes\n")
    lines = problem_lines(write_site(tmp_path, text))
    assert [line.split(": found")[0] for line in lines] == [
        "data/records.csv: row 4, column b",
        "data/records.csv: row 5, column y",
    ]


def test_too_few_records_to_split_is_bad_input_not_a_crash(tmp_path: Path) -> None:
    """A CSV with too few records for a train and a test part is a named data problem (exit 2), not a traceback."""
    [line] = problem_lines(write_site(tmp_path, "a,y\n1,0\n"))
    assert line.startswith("data/records.csv: found 1 record(s); enough records for a non-empty train and test part")


def test_small_two_class_csv_still_splits(tmp_path: Path) -> None:
    """Four records of two classes split (unstratified when a stratified split is impossible)."""
    data = load(write_site(tmp_path, "a,y\n1,0\n2,1\n3,0\n4,1\n"))
    assert (data.num_train, data.num_test) == (3, 1)
