"""A site's extract read under a data contract: each rule, every problem listed together, the model columns."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from participants.contract_data import load_contract_data, read_contract_table
from participants.errors import DataSourceError
from participants.site_config import CsvSource, load_site_config
from trialcore.data_contract import DataContract
from trialcore.feature_statistics import FeatureStatistics

CONTRACT = DataContract.model_validate(
    {
        "missing_tokens": ["", "?"],
        "target": {"column": "outcome", "positive_codes": ["yes"]},
        "features": [
            {"name": "age", "kind": "numeric", "unit": "years", "range": [18, 100], "missing": "impute-median"},
            {
                "name": "bmi",
                "kind": "numeric",
                "unit": "kg/m2",
                "range": [10, 70],
                "sentinels": [0],
                "missing": "indicator",
            },
            {"name": "clinic", "kind": "categorical", "categories": ["KY", "MN", "NY"]},
            {"name": "smoker", "kind": "binary", "codes": ["N", "Y"], "missing": "indicator"},
            {"name": "weight", "kind": "numeric", "unit": "kg", "range": [30, 200]},
        ],
    }
)


def _site(tmp_path: Path, text: str, contract: dict[str, Any] | None = None, **data: Any) -> Path:
    (tmp_path / "extract.csv").write_text(text, encoding="utf-8")
    config = {
        "site_id": "us-test",
        "jurisdiction": "US",
        "institution": "Test hospital",
        "test_fraction": 0.25,
        "data": {"kind": "csv", "path": "extract.csv", "contract": contract or {}, **data},
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _read(path: Path, contract: DataContract = CONTRACT) -> Any:
    site = load_site_config(path)
    assert isinstance(site.config.data, CsvSource)
    return read_contract_table(site, site.config.data, contract)


ROWS = "AGE,BMI_kgm2,clinic,smoker,weight,outcome\n" + "".join(
    f"{20 + i},{20 + i % 7},{['KY', 'MN', 'NY'][i % 3]},{'NY'[i % 2]},{60 + i},{'yes' if i % 3 == 0 else 'no'}\n"
    for i in range(40)
)
MAPPING = {"columns": {"age": "AGE", "bmi": "BMI_kgm2"}}


def test_tokens_sentinels_codes_and_target_become_contract_columns(tmp_path: Path) -> None:
    """'?', a blank and a sentinel 0 are missing; a site code maps onto the contract's; the target comes from codes."""
    text = (
        "AGE,BMI_kgm2,clinic,smoker,weight,outcome\n"
        "30,?,KY,Y,80,yes\n"
        "?,0,mn,,90,no\n"
        "40,25,NY,N,70,maybe\n"
        "50,25,NY,N,70,\n"
    )
    read = _read(_site(tmp_path, text, {**MAPPING, "codes": {"clinic": {"mn": "MN"}}}))
    assert read.problems() == []
    table = read.table
    assert table.rows_read == 4 and table.target_missing == 1
    assert table.labels.tolist() == [1.0, 0.0, 0.0]  # a code that is not positive is negative
    values = table.values
    assert math.isnan(values[0, 1]) and math.isnan(values[1, 0]) and math.isnan(values[1, 1])
    assert values[1, 2] == 1.0 and math.isnan(values[1, 3]) and values[0, 3] == 1.0 and values[2, 3] == 0.0


def test_every_problem_is_listed_together_with_column_rows_and_rule(tmp_path: Path) -> None:
    """Out of range, not a number and an unknown code are refused at once, each naming column, row count and rule."""
    text = "AGE,BMI_kgm2,clinic,smoker,weight,outcome\n" + "".join(
        [
            "150,20,KY,Y,80,yes\n",
            "200,20,KY,Y,80,no\n",
            "30,abc,KY,Y,80,no\n",
            "30,20,TX,Y,80,no\n",
            "30,20,KY,Y,80,no\n",
        ]
    )
    site = load_site_config(_site(tmp_path, text, MAPPING))
    assert isinstance(site.config.data, CsvSource)
    with pytest.raises(DataSourceError) as caught:
        load_contract_data(site, site.config.data, CONTRACT)
    lines = caught.value.lines()
    assert len(lines) == 3
    age, bmi, clinic = lines
    assert age.startswith("extract.csv: column AGE: 2 row(s) (rows 2, 3): found '150'")
    assert "range [18, 100] years" in age and "out-of-range values are data errors" in age
    assert "column BMI_kgm2: 1 row(s) (rows 4)" in bmi and "a number in kg/m2" in bmi
    assert "column clinic: 1 row(s) (rows 5): found 'TX'" in clinic and "KY, MN, NY" in clinic


def test_missing_column_and_unknown_mapping_name_are_problems(tmp_path: Path) -> None:
    """A contract column the extract lacks, and a mapping naming no contract feature, are both listed."""
    read = _read(_site(tmp_path, ROWS, {"columns": {"age": "AGE", "bmi": "BMI", "heigth": "H"}}))
    lines = [p.line() for p in read.problems()]
    assert any("contract.columns.heigth" in line for line in lines)
    assert any("column BMI (contract bmi): found no such column" in line for line in lines)
    assert read.table is None


def test_column_not_collected_is_entirely_missing_and_drop_row_empties_the_site(tmp_path: Path) -> None:
    """null maps a feature as not collected: under indicator it trains; under drop-row no row is left (a problem)."""
    read = _read(_site(tmp_path, ROWS, {"columns": {"age": "AGE", "bmi": None}}))
    assert read.problems() == [] and np.isnan(read.table.values[:, 1]).all()
    dropped = _read(_site(tmp_path, ROWS, {"columns": {"age": "AGE", "bmi": "BMI_kgm2", "weight": None}}))
    [problem] = dropped.problems()
    assert "none left after the contract's drop-row rules" in problem.found and dropped.dropped["weight"] == 40


def test_row_filter_reads_only_the_sites_own_rows(tmp_path: Path) -> None:
    """A site whose extract holds several centres reads only the rows its node config names."""
    read = _read(_site(tmp_path, ROWS, MAPPING, rows={"column": "clinic", "equals": ["NY"]}))
    assert read.table.rows_read == 13 and set(read.table.values[:, 2].tolist()) == {2.0}


def test_batches_of_two_rows_read_the_same_table(tmp_path: Path) -> None:
    """A small batch size (a file larger than memory) gives exactly the rows of one whole read."""
    whole = _read(_site(tmp_path, ROWS, MAPPING)).table
    batched = _read(_site(tmp_path, ROWS, MAPPING, batch_rows=2)).table
    np.testing.assert_array_equal(whole.values, batched.values)
    np.testing.assert_array_equal(whole.labels, batched.labels)


def test_model_columns_follow_the_contract_order_and_rules(tmp_path: Path) -> None:
    """Numeric scaled (imputed by median or mean), one-hot in contract order, binary, indicators: contract width."""
    text = "AGE,BMI_kgm2,clinic,smoker,weight,outcome\n" + "".join(
        f"{a},{b},{c},{s},70,{'yes' if i % 2 else 'no'}\n"
        for i, (a, b, c, s) in enumerate([("30", "20", "NY", "Y"), ("?", "0", "KY", "")] * 8)
    )
    site = load_site_config(_site(tmp_path, text, MAPPING))
    assert isinstance(site.config.data, CsvSource)
    data = load_contract_data(site, site.config.data, CONTRACT)
    stats = FeatureStatistics(mean=[40.0, 25.0, 70.0], std=[10.0, 5.0, 1.0], median=[35.0, 25.0, 70.0])
    prepared = data.prepared(stats)
    assert prepared.x_train.shape[1] == CONTRACT.input_width == 9
    rows = {tuple(r) for r in np.concatenate([prepared.x_train, prepared.x_test]).tolist()}
    # age, bmi, bmi-missing, KY, MN, NY, smoker, smoker-missing, weight
    observed = (-1.0, -1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0)
    imputed = (-0.5, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # age: the median 35; bmi: the mean (0 after scaling)
    assert rows == {observed, imputed}


def test_parquet_is_read_in_batches_never_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Parquet extract read 3 rows at a time (nulls missing) gives the rows of the CSV; no batch holds more."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from participants import parquet_connector

    rows = [line.split(",") for line in ROWS.strip().splitlines()]
    header, body = rows[0], rows[1:]
    columns = {name: [float(r[i]) if i in (0, 1, 4) else r[i] for r in body] for i, name in enumerate(header)}
    columns["BMI_kgm2"][5] = None  # a null is a missing value
    pq.write_table(pa.table(columns), tmp_path / "extract.parquet", row_group_size=7)
    sizes: list[int] = []
    original = parquet_connector.ParquetTable.batches

    def counted(self: parquet_connector.ParquetTable, names: Any, batch_rows: int) -> Any:
        for batch in original(self, names, batch_rows):
            sizes.append(batch.size)
            yield batch

    monkeypatch.setattr(parquet_connector.ParquetTable, "batches", counted)
    config = _site(tmp_path, ROWS, MAPPING)
    document = yaml.safe_load(config.read_text())
    document["data"] = {"kind": "parquet", "path": "extract.parquet", "contract": MAPPING, "batch_rows": 3}
    config.write_text(yaml.safe_dump(document))
    site = load_site_config(config)
    read = read_contract_table(site, site.config.data, CONTRACT)  # type: ignore[arg-type]
    whole = _read(_site(tmp_path, ROWS, MAPPING)).table
    assert read.problems() == [] and max(sizes) <= 3 and sum(sizes) == 40
    expected = whole.values.copy()
    expected[5, 1] = np.nan
    np.testing.assert_array_equal(read.table.values, expected)
    np.testing.assert_array_equal(read.table.labels, whole.labels)


def test_embedded_demo_share_serves_a_contract_of_its_thirty_numeric_features(tmp_path: Path) -> None:
    """The simulated share maps positionally onto a 30-feature numeric contract: same split, contract width."""
    from participants.contract_data import load_site_records
    from participants.site_data import load_site_data

    features = [{"name": f"f{i}", "kind": "numeric", "unit": "1", "range": [0, 5000]} for i in range(30)]
    contract = DataContract.model_validate({"target": {"column": "y", "threshold": 1}, "features": features})
    config = tmp_path / "site.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "site_id": "de-test",
                "jurisdiction": "DE",
                "institution": "Test",
                "data": {"kind": "embedded-breast-cancer", "partition": 1},
            }
        )
    )
    site = load_site_config(config)
    data = load_site_records(site, contract)
    plain = load_site_data(site)
    assert (data.num_train, data.num_test, data.num_features) == (plain.num_train, plain.num_test, 30)
    narrow = contract.model_copy(
        update={"features": tuple(f.model_copy(update={"range": (0.0, 1.0)}) for f in contract.features)}
    )
    with pytest.raises(DataSourceError, match="do not meet the trial's data contract"):
        load_site_records(site, narrow)
