"""``sandbox audit verify``: what a regulator runs to learn whether a trial's audit chain was tampered with."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sandbox.cli import app
from trialcore.audit_chain import AuditChain, ChainHead

SPEC_HASH = hashlib.sha256(b"trial spec").hexdigest()
ENTRIES = 6


def write_chain(path: Path) -> ChainHead:
    """A short coordinator chain with fixed times; return its head."""
    ticks = iter(range(1000))
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    chain = AuditChain.open(
        path,
        actor="coordinator",
        trial_id="cancer-risk-demo",
        spec_hash=SPEC_HASH,
        clock=lambda: start + timedelta(seconds=next(ticks)),
    )
    chain.append("trial-started", {"sites": ["de-berlin", "fr-lyon"], "rounds": 2})
    for number in range(1, ENTRIES):
        chain.append("round-aggregated", {"round": number, "loss": 1.0 / number})
    return chain.head


@pytest.fixture
def chain_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A run folder holding audit.jsonl and a report.json recording its head; the current directory."""
    head = write_chain(tmp_path / "audit.jsonl")
    report = {"audit": {"coordinator": {"path": "audit.jsonl", **head.as_json()}}}
    (tmp_path / "report.json").write_text(json.dumps(report), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def verify(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["audit", "verify", *args])
    return result.exit_code, result.stdout, result.stderr


def test_intact_chain_exits_0(chain_dir: Path) -> None:
    """An untouched chain verifies: exit 0 and the entry count on stdout."""
    code, stdout, _ = verify("audit.jsonl")
    assert code == 0
    assert stdout.startswith(f"audit.jsonl: intact, {ENTRIES} entries")


def test_intact_chain_matches_its_recorded_head(chain_dir: Path) -> None:
    """An untouched chain also agrees with the head its report recorded."""
    code, _, stderr = verify("audit.jsonl", "--report", "report.json")
    assert code == 0, stderr


def test_edited_line_exits_5_naming_the_line(chain_dir: Path) -> None:
    """Changing one recorded value exits 5 and names the edited line, so the regulator knows where to look."""
    lines = (chain_dir / "audit.jsonl").read_bytes().splitlines(keepends=True)
    assert b'"round":3' in lines[3]
    lines[3] = lines[3].replace(b'"round":3', b'"round":4')
    (chain_dir / "audit.jsonl").write_bytes(b"".join(lines))
    code, stdout, stderr = verify("audit.jsonl")
    assert code == 5
    assert stdout == ""
    assert stderr.strip() == "audit.jsonl: line 4: hash mismatch (entry was edited); the chain is intact up to line 3"


def test_truncated_chain_is_caught_by_the_reports_head(chain_dir: Path) -> None:
    """Removing the last entries passes a bare check but exits 5 against the head recorded in report.json."""
    lines = (chain_dir / "audit.jsonl").read_bytes().splitlines(keepends=True)
    (chain_dir / "audit.jsonl").write_bytes(b"".join(lines[:-2]))
    assert verify("audit.jsonl")[0] == 0
    code, _, stderr = verify("audit.jsonl", "--report", "report.json")
    assert code == 5
    assert stderr.startswith(f"audit.jsonl: line {ENTRIES - 1}: missing: the log ends after {ENTRIES - 2} entries")


def test_json_format_is_one_document_for_intact_and_broken_chains(chain_dir: Path) -> None:
    """--format json prints one JSON document carrying ok, the exit code and the first bad line."""
    code, stdout, _ = verify("audit.jsonl", "--format", "json")
    document = json.loads(stdout)
    assert code == 0 and document["ok"] is True and document["exit_code"] == 0 and document["length"] == ENTRIES

    lines = (chain_dir / "audit.jsonl").read_bytes().splitlines(keepends=True)
    (chain_dir / "audit.jsonl").write_bytes(b"".join([lines[0], lines[2], lines[1], *lines[3:]]))
    code, stdout, _ = verify("audit.jsonl", "--format", "json")
    document = json.loads(stdout)
    assert code == 5
    assert document["ok"] is False and document["exit_code"] == 5 and document["first_bad_line"] == 2


def test_missing_chain_is_bad_input_not_tampering(chain_dir: Path) -> None:
    """A mistyped chain path exits 2 (bad input) with one JSON document, not 5 (tampering)."""
    code, stdout, _ = verify("audti.jsonl", "--format", "json")
    assert code == 2
    assert json.loads(stdout)["problems"][0]["file"] == "audti.jsonl"
