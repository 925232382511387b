"""Evidence files that cannot be read are described in words, and an empty ledger says so plainly."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from sandbox.cli import app
from trialcore.audit_chain import AuditChain


def _chain(tmp_path: Path) -> Path:
    chain = tmp_path / "audit.jsonl"
    AuditChain.open(chain, actor="coordinator", trial_id="t", spec_hash="0" * 64).append("trial-started", {})
    return chain


def test_missing_report_is_named_in_words(tmp_path: Path) -> None:
    """``--report`` naming no file says "no such file", never an exception's class name."""
    result = CliRunner().invoke(
        app, ["audit", "verify", str(_chain(tmp_path)), "--report", str(tmp_path / "nope.json")]
    )
    assert result.exit_code == 2
    assert f"{tmp_path / 'nope.json'}: found no such file;" in result.stderr
    assert "FileNotFoundError" not in result.output


def test_report_that_is_not_json_names_where(tmp_path: Path) -> None:
    """A damaged report names the line and column where it stops being JSON."""
    report = tmp_path / "report.json"
    report.write_text('{"audit": \n  oops}', encoding="utf-8")
    result = CliRunner().invoke(app, ["audit", "verify", str(_chain(tmp_path)), "--report", str(report)])
    assert result.exit_code == 2
    assert "found not JSON (line 2, column 3" in result.stderr


def test_empty_ledger_prints_no_charges_not_site_none(tmp_path: Path) -> None:
    """An empty ledger file prints that nothing was spent, with no "None" for a site it cannot name."""
    ledger = tmp_path / "privacy" / "data.ledger.jsonl"
    ledger.parent.mkdir()
    ledger.write_bytes(b"")
    result = CliRunner().invoke(app, ["privacy", "ledger", str(ledger)])
    assert result.exit_code == 0, result.output
    assert "None" not in result.stdout
    # rich wraps the line at the terminal's width, which depends on how long the temporary path is
    assert "no charges yet: nothing spent." in " ".join(result.stdout.split())
