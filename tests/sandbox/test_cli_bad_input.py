"""``sandbox validate`` on bad input: exit 2 and one whole line per problem, never a traceback.

Each problem line names the file as the user typed it, the field path, the value found and
what is allowed, so a researcher can fix the spec without reading code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from sandbox.cli import app
from trialcore.spec import TrialSpec

Change = Callable[[dict[str, Any]], None]


def problem_lines(result: Result, shown: str) -> list[str]:
    """The stderr lines that report a problem in the file named ``shown``."""
    return [line for line in result.stderr.splitlines() if line.startswith(f"{shown}:")]


def validate(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(app, ["validate", *args])


FILE_CASES = [
    pytest.param(None, "no such file", "an existing trial spec", id="missing-file"),
    pytest.param(b"", "an empty file", "a YAML mapping of trial spec fields", id="empty-file"),
    pytest.param(b"\x00\x01\xff", "binary content", "YAML text, UTF-8", id="binary-bytes"),
    pytest.param(b"trial_id: \xff\xfe", "bytes that are not UTF-8 at offset 10", "YAML text, UTF-8", id="non-utf8"),
    pytest.param(b"trial_id: [unclosed\nrounds: 3\n", "YAML syntax error at line 2", "valid YAML", id="yaml-syntax"),
    pytest.param(b"- de-berlin\n- fr-lyon\n", "a top-level list", "a YAML mapping", id="top-level-list"),
]


@pytest.mark.parametrize(("content", "found", "allowed"), FILE_CASES)
def test_unreadable_spec_file_is_one_line_naming_the_file(
    runner: CliRunner, demo_dir: Path, content: bytes | None, found: str, allowed: str
) -> None:
    """A spec that is not a readable YAML mapping exits 2 with one line naming the file as typed and why."""
    (demo_dir / "specs").mkdir()
    if content is not None:
        (demo_dir / "specs" / "bad.yaml").write_bytes(content)
    result = validate(runner, "specs/bad.yaml")
    assert result.exit_code == 2, result.stderr
    lines = problem_lines(result, "specs/bad.yaml")
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("specs/bad.yaml: found ")
    assert found in lines[0] and allowed in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def _set(path: str, value: Any) -> Change:
    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = data
        for part in parents:
            target = target[part]
        target[last] = value

    return change


def _add_participant(site_id: str, jurisdiction: str) -> Change:
    def change(data: dict[str, Any]) -> None:
        data["participants"].append({"site_id": site_id, "jurisdiction": jurisdiction})

    return change


def _set_jurisdiction(index: int, jurisdiction: str) -> Change:
    def change(data: dict[str, Any]) -> None:
        data["participants"][index]["jurisdiction"] = jurisdiction

    return change


TOP_LEVEL_KEYS = ", ".join(sorted(TrialSpec.model_fields))

FIELD_CASES = [
    pytest.param(
        _set("roundz", 3),
        "roundz",
        "unknown key 'roundz'",
        f"one of the known keys ({TOP_LEVEL_KEYS})",
        id="unknown-key",
    ),
    pytest.param(_set("rounds", "ten"), "rounds", "'ten'", "valid integer", id="wrong-type"),
    pytest.param(_set("rounds", -1), "rounds", "-1", "greater than 0", id="negative-rounds"),
    pytest.param(_set("rounds", 0), "rounds", "0", "greater than 0", id="zero-rounds"),
    pytest.param(_set("local_training.epochs", 0), "local_training.epochs", "0", "greater than 0", id="zero-epochs"),
    pytest.param(_set("min_participants", 0), "min_participants", "0", "greater than 0", id="zero-min-participants"),
    pytest.param(
        _add_participant("fr-lyon", "FR"),
        "participants.4.site_id",
        "'fr-lyon'",
        "each site listed once",
        id="site-listed-twice",
    ),
    pytest.param(
        _set_jurisdiction(1, "IT"),
        "participants.1.jurisdiction",
        "'IT'",
        "'FR', the jurisdiction the site declares in fr-lyon.yaml",
        id="jurisdiction-differs-from-site-file",
    ),
    pytest.param(
        _add_participant("it-rome", "IT"),
        "participants.4.site_id",
        "'it-rome'",
        "a site of the federation",
        id="no-site-file",
    ),
]


@pytest.mark.parametrize(("change", "field", "found", "allowed"), FIELD_CASES)
def test_bad_field_is_one_line_naming_file_field_value_and_allowed(
    runner: CliRunner, write_spec: Callable[..., str], change: Change, field: str, found: str, allowed: str
) -> None:
    """A wrong field exits 2 with one line: file as typed, field path, value found, what is allowed."""
    shown = "./" + write_spec(change)
    result = validate(runner, shown)
    assert result.exit_code == 2, result.stderr
    lines = problem_lines(result, shown)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{shown}: {field}: found {found}; "), lines[0]
    assert allowed in lines[0]
    assert result.stdout == ""


def _many_problems(data: dict[str, Any]) -> None:
    data["rounds"] = 0
    data["local_training"]["epochs"] = 0
    data["roundz"] = 3
    data["participants"][1]["site_id"] = "de-berlin"


MANY_FIELDS = {"rounds", "local_training.epochs", "roundz", "participants.1.site_id"}


def test_every_problem_is_printed_at_once(runner: CliRunner, write_spec: Callable[..., str]) -> None:
    """Several problems are all reported in one run, one line each, so one edit can fix them all."""
    shown = write_spec(_many_problems)
    result = validate(runner, shown)
    assert result.exit_code == 2
    lines = problem_lines(result, shown)
    assert {line.split(": ")[1] for line in lines} == MANY_FIELDS
    assert len(lines) == len(MANY_FIELDS)


def test_problem_lines_stay_whole_when_values_hold_newlines(runner: CliRunner, write_spec: Callable[..., str]) -> None:
    """A value with a newline is shown escaped, so each problem stays on one line for terminals, logs and grep."""

    def change(data: dict[str, Any]) -> None:
        data["trial_id"] = "cancer\nrisk"
        data["purpose"] = "treatment\nresearch"

    shown = write_spec(change)
    result = validate(runner, shown)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [result.stderr.splitlines()[0], *problem_lines(result, shown)]
    assert len(problem_lines(result, shown)) == 2
    assert all("\\n" in line for line in problem_lines(result, shown))
    document = json.loads(validate(runner, shown, "--format", "json").stdout)
    assert len(document["lines"]) == 2 and not any("\n" in line for line in document["lines"])


def test_valid_spec_exits_0_with_a_summary_naming_the_trial(runner: CliRunner, demo_dir: Path) -> None:
    """The demo spec validates, and the summary names its trial id."""
    result = validate(runner, "demo.yaml")
    assert result.exit_code == 0, result.stderr
    assert "cancer-risk-demo" in result.stdout


def test_json_success_is_one_document(runner: CliRunner, demo_dir: Path) -> None:
    """With --format json a valid spec prints exactly one JSON document on stdout, with the trial id and hash."""
    result = validate(runner, "demo.yaml", "--format", "json")
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["ok"] is True
    assert document["trial_id"] == "cancer-risk-demo"
    assert len(document["spec_hash"]) == 64
    assert [p["site_id"] for p in document["participants"]] == ["de-berlin", "fr-lyon", "gb-leeds", "ch-zurich"]


def test_json_failure_is_one_document_listing_every_problem(runner: CliRunner, write_spec: Callable[..., str]) -> None:
    """With --format json a bad spec prints one JSON document with exit_code 2 and every problem, and exits 2."""
    shown = write_spec(_many_problems)
    result = validate(runner, shown, "--format", "json")
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert document["ok"] is False and document["exit_code"] == 2
    assert {p["field"] for p in document["problems"]} == MANY_FIELDS
    assert all(p["file"] == shown for p in document["problems"])


def test_json_failure_for_a_missing_file_is_one_document(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --format json even an unreadable file gives one parseable JSON document naming the file."""
    monkeypatch.chdir(tmp_path)
    result = validate(runner, "nowhere.yaml", "--format", "json")
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert document["exit_code"] == 2
    assert document["problems"] == [
        {
            "file": "nowhere.yaml",
            "field": "",
            "found": "no such file",
            "allowed": "give the path of an existing trial spec",
        }
    ]
