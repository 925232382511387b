"""``participants check-data``: what an institution runs before joining a pilot."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import Result
from typer.testing import CliRunner

from participants.cli import app
from participants.embedded_data import embedded_partition

DEMO_SITES = Path(__file__).resolve().parents[2] / "examples" / "demo-sites"


@pytest.fixture
def sites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the demo sites' configs, as the current directory."""
    shutil.copytree(DEMO_SITES, tmp_path / "sites")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "sites"


def check(*args: str) -> Result:
    return CliRunner().invoke(app, ["check-data", *args])


def test_demo_site_prints_counts_and_exits_0(sites: Path) -> None:
    """A demo site's data loads; the site sees its id, feature count and train/test counts."""
    result = check("sites/de-berlin.yaml")
    assert result.exit_code == 0, result.stderr
    words = result.stdout.split()
    assert "site_id=de-berlin" in words and "num_features=30" in words
    assert any(w.startswith("num_train=") for w in words) and any(w.startswith("num_test=") for w in words)


def test_demo_site_json_is_one_document_with_counts(sites: Path) -> None:
    """--format json prints one document whose train and test counts add up to the site's share of the data."""
    result = check("sites/fr-lyon.yaml", "--format", "json")
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["ok"] is True and document["site_id"] == "fr-lyon" and document["num_features"] == 30
    assert document["num_train"] + document["num_test"] == embedded_partition(1)[1].size
    assert document["num_test"] > 0 and document["num_train"] > document["num_test"]


def _edit(path: Path, key: str, value: object) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data[key] = value
    path.write_text(yaml.safe_dump(data), encoding="utf-8")


def test_unknown_key_in_site_config_exits_2_listing_allowed_keys(sites: Path) -> None:
    """A typo in the site config is refused with the keys the config allows, not silently ignored."""
    _edit(sites / "gb-leeds.yaml", "test_fration", 0.5)
    result = check("sites/gb-leeds.yaml")
    assert result.exit_code == 2
    [line] = [x for x in result.stderr.splitlines() if x.startswith("sites/gb-leeds.yaml:")]
    assert line.startswith(
        "sites/gb-leeds.yaml: test_fration: found unknown key 'test_fration'; one of the known keys ("
    )
    assert "test_fraction" in line and "jurisdiction" in line
    assert result.stdout == ""


@pytest.mark.parametrize("jurisdiction", ["Germany", "de", "D"])
def test_bad_jurisdiction_exits_2_naming_the_value(sites: Path, jurisdiction: str) -> None:
    """A jurisdiction that is not a two-letter upper-case country code is refused, naming the value."""
    _edit(sites / "de-berlin.yaml", "jurisdiction", jurisdiction)
    result = check("sites/de-berlin.yaml", "--format", "json")
    assert result.exit_code == 2
    [problem] = json.loads(result.stdout)["problems"]
    assert problem["file"] == "sites/de-berlin.yaml"
    assert problem["field"] == "jurisdiction"
    assert problem["found"] == repr(jurisdiction)
    assert "[A-Z]{2}" in problem["allowed"]


def test_missing_site_config_exits_2(sites: Path) -> None:
    """A mistyped config path exits 2 naming it, without a traceback."""
    result = check("sites/de-berln.yaml")
    assert result.exit_code == 2
    assert "sites/de-berln.yaml: found no such file" in result.stderr
    assert "Traceback" not in result.stderr


EXTRACTS = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(
    ("site", "finding"),
    [
        (
            "de-berlin",
            "de-berlin.csv: column textur: 7 row(s): found 5.8% missing; imputed by the rule (texture: impute-median)",
        ),
        (
            "fr-lyon",
            "fr-lyon.csv: column lissage: 12 row(s): found 9.0% missing; imputed by the rule (smoothness: impute-mean)",
        ),
        (
            "gb-leeds",
            "gb-leeds.parquet: column (not collected at this site): 150 row(s): found entirely missing; "
            "still trains by the rule (symmetry: indicator)",
        ),
        ("ch-zurich", "ch-zurich.csv: column diagnosis: 12 row(s): found positive class 7.7% of rows; class balance"),
    ],
)
def test_extract_sites_meet_the_contract_with_their_findings(site: str, finding: str) -> None:
    """'?', sentinel zeros, an uncollected column and a rare class are findings: the site still takes part (exit 0)."""
    result = check(str(EXTRACTS / "extract-sites" / f"{site}.yaml"), "--trial", str(EXTRACTS / "extracts.yaml"))
    assert result.exit_code == 0, result.stderr
    assert any(line.startswith(f"finding: {finding}") for line in result.stderr.splitlines()), result.stderr
    assert "num_features=14" in result.stdout.split()


def test_contract_problems_are_listed_together_and_exit_2(tmp_path: Path) -> None:
    """A value out of range, an unknown code and a column the extract lacks are all listed at once (exit 2)."""
    shutil.copytree(EXTRACTS, tmp_path / "examples")
    extract = tmp_path / "examples" / "extract-sites" / "ch-zurich.csv"
    lines = extract.read_text(encoding="utf-8").splitlines()
    lines[1] = "99" + lines[1][lines[1].index(",") :]  # radius 99: outside the contract's [3, 40]
    lines[2] = lines[2].rsplit(",", 2)[0] + ",XL," + lines[2].rsplit(",", 1)[1]  # a size band code not mapped
    extract.write_text("\n".join(lines).replace("fractal_dimension", "fractal") + "\n", encoding="utf-8")
    site = str(tmp_path / "examples" / "extract-sites" / "ch-zurich.yaml")
    result = check(site, "--trial", str(EXTRACTS / "extracts.yaml"), "--format", "json")
    assert result.exit_code == 2
    problems = json.loads(result.stdout)["problems"]
    assert [p["field"] for p in problems] == ["column fractal_dimension (contract fractal_dimension)"]
    extract.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = check(site, "--trial", str(EXTRACTS / "extracts.yaml"), "--format", "json")
    fields = [p["field"] for p in json.loads(result.stdout)["problems"]]
    assert result.exit_code == 2
    assert "column radius: 1 row(s) (rows 2)" in fields and "column size_band: 1 row(s) (rows 3)" in fields


def test_the_profile_is_rounded_to_the_site_policys_count_granularity(tmp_path: Path) -> None:
    """A site whose policy says ``count_granularity: 25`` publishes no count finer than 25 (the default is 10)."""
    shutil.copytree(EXTRACTS, tmp_path / "examples")
    layer = tmp_path / "examples" / "policies" / "institutions" / "de-berlin.yaml"
    layer.write_text(layer.read_text(encoding="utf-8") + "\ndata:\n  count_granularity: 25\n", encoding="utf-8")
    site = str(tmp_path / "examples" / "extract-sites" / "de-berlin.yaml")
    result = check(site, "--trial", str(tmp_path / "examples" / "extracts.yaml"), "--format", "json")
    assert result.exit_code == 0, result.stdout + result.stderr
    profile = json.loads(result.stdout)["profile"]
    counts = [profile[k] for k in ("rows", "train", "test", "positive", "negative")]
    assert profile["count_granularity"] == 25 and profile["rows"] == 100  # 121 rows read
    assert all(c is None or c % 25 == 0 for c in [*counts, *profile["missing"].values()]), profile
    text = check(site, "--trial", str(tmp_path / "examples" / "extracts.yaml"))
    assert "profile (counts rounded down to 25, null below 11)" in text.stdout
