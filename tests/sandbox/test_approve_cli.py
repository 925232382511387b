"""`sandbox certs new-key`, `sandbox approve`, and the approval rows and exit codes of `sandbox check` and `sandbox run`."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from typer.testing import CliRunner

from participants.approvals import read_approval
from sandbox.cli import app
from tests.approved_demo import DEMO_SITES, DemoCopy
from tests.participants.guard_harness import assert_refused, guard_reply, message, spec_document
from trialcore.spec_loading import load_spec


def approval_rows(document: dict[str, object]) -> dict[str, dict[str, object]]:
    decisions = document["decisions"]
    assert isinstance(decisions, list)
    return {d["site_id"]: d for d in decisions if d["clause"] == "approval"}


def test_new_key_writes_a_private_key_0600_and_refuses_to_overwrite(runner: CliRunner, tmp_path: Path) -> None:
    """`certs new-key` writes NAME.key.pem (0600) and NAME.pub.pem and prints the fingerprint; a second run exits 2."""
    result = runner.invoke(
        app, ["certs", "new-key", "--out", str(tmp_path / "keys"), "--name", "de-berlin", "--format", "json"]
    )
    assert result.exit_code == 0, result.stderr
    (key,) = json.loads(result.stdout)["keys"]
    assert stat.S_IMODE(Path(key["private_key"]).stat().st_mode) == 0o600
    assert Path(key["public_key"]).read_text().startswith("-----BEGIN PUBLIC KEY-----")
    again = runner.invoke(app, ["certs", "new-key", "--out", str(tmp_path / "keys"), "--name", "de-berlin"])
    assert again.exit_code == 2 and "never overwritten" in again.stderr


def test_approve_then_check_permits(runner: CliRunner, unapproved_demo: DemoCopy) -> None:
    """`sandbox approve` signs each site's approval into its approvals folder; `sandbox check` then permits (exit 0)."""
    spec = str(unapproved_demo.spec)
    pairs = [arg for site in DEMO_SITES for arg in ("--site", site, "--key", str(unapproved_demo.key(site)))]
    result = runner.invoke(app, ["approve", spec, *pairs])
    assert result.exit_code == 0, result.stderr
    loaded = load_spec(spec)
    for site in DEMO_SITES:
        approval = read_approval(unapproved_demo.approval(site))
        assert (approval.trial_id, approval.site_id, approval.spec_hash) == ("cancer-risk-demo", site, loaded.spec_hash)
        assert f"{site}: approved trial 'cancer-risk-demo'" in result.stdout
    checked = runner.invoke(app, ["check", spec, "--format", "json"])
    assert checked.exit_code == 0, checked.stdout
    rows = approval_rows(json.loads(checked.stdout))
    assert set(rows) == set(DEMO_SITES) and all(row["permit"] for row in rows.values())


def test_missing_approvals_are_denial_rows_and_run_runs_nothing(
    runner: CliRunner, unapproved_demo: DemoCopy, tmp_path: Path
) -> None:
    """Without approvals `check` exits 3 with one `approval` denial per site naming the expected file; `run` exits 3 before round 1."""
    spec = str(unapproved_demo.spec)
    checked = runner.invoke(app, ["check", spec, "--format", "json"])
    assert checked.exit_code == 3
    rows = approval_rows(json.loads(checked.stdout))
    for site in DEMO_SITES:
        assert rows[site]["permit"] is False and "no signed approval" in str(rows[site]["reason"])
        assert Path(str(rows[site]["source_file"])) == unapproved_demo.approval(site)
    runs = tmp_path / "runs-out"
    ran = runner.invoke(app, ["run", spec, "--runs-root", str(runs), "--metrics-port", "0"])
    assert ran.exit_code == 3 and "Refused by policy before round 1" in ran.stderr
    assert not runs.exists()


def test_spec_edited_after_approval_fails_check_with_exit_5_and_the_site_refuses(
    runner: CliRunner, approved_demo: DemoCopy, tmp_path: Path
) -> None:
    """Editing the approved spec makes `check` exit 5 naming each site and its approval file; the site's guard refuses it too."""
    spec = approved_demo.spec
    spec.write_text(spec.read_text().replace("rounds: 10", "rounds: 9"))
    checked = runner.invoke(app, ["check", str(spec)])
    assert checked.exit_code == 5
    for site in DEMO_SITES:
        line = next(line for line in checked.stderr.splitlines() if f"{site}.approval" in line)
        assert str(approved_demo.approval(site)) in line and "edited after approval" in line
    reply, reached = guard_reply(message(spec_document(spec)), approved_demo.site_config("fr-lyon"), tmp_path / "run")
    assert_refused(reply, reached, tmp_path / "run", "fr-lyon", "edited after approval")
    ran = runner.invoke(app, ["run", str(spec), "--runs-root", str(tmp_path / "runs-out"), "--metrics-port", "0"])
    assert ran.exit_code == 5 and not (tmp_path / "runs-out").exists()


def test_tampered_approval_fails_check_with_exit_5(runner: CliRunner, approved_demo: DemoCopy) -> None:
    """An approval edited after signing makes `check` exit 5 (bad signature), naming the site and the file, as JSON too."""
    path = approved_demo.approval("ch-zurich")
    document = json.loads(path.read_text())
    document["approved_at"] = "2020-01-01T00:00:00+00:00"
    path.write_text(json.dumps(document))
    checked = runner.invoke(app, ["check", str(approved_demo.spec), "--format", "json"])
    assert checked.exit_code == 5
    (problem,) = json.loads(checked.stdout)["problems"]
    assert problem["field"] == "ch-zurich.approval" and problem["found"] == "bad-signature"
    assert Path(problem["file"]) == path


def test_approve_bad_inputs_exit_2(runner: CliRunner, unapproved_demo: DemoCopy, tmp_path: Path) -> None:
    """A missing key file, a site that is not a participant, or unpaired --site/--key exit 2, naming each problem; nothing is written."""
    spec = str(unapproved_demo.spec)
    missing = runner.invoke(app, ["approve", spec, "--site", "gb-leeds", "--key", str(tmp_path / "nope.pem")])
    assert missing.exit_code == 2 and f"{tmp_path / 'nope.pem'}: found no such file" in missing.stderr
    unknown = runner.invoke(
        app, ["approve", spec, "--site", "xx-nowhere", "--key", str(unapproved_demo.key("gb-leeds"))]
    )
    assert (
        unknown.exit_code == 2
        and "--site: found 'xx-nowhere'; a participant of trial 'cancer-risk-demo'" in unknown.stderr
    )
    public = runner.invoke(
        app, ["approve", spec, "--site", "gb-leeds", "--key", str(unapproved_demo.keys_dir / "gb-leeds.pub.pem")]
    )
    assert public.exit_code == 2 and "no PEM private key" in public.stderr
    unpaired = runner.invoke(
        app, ["approve", spec, "--site", "gb-leeds", "--site", "fr-lyon", "--key", str(unapproved_demo.key("gb-leeds"))]
    )
    assert unpaired.exit_code == 2 and "one --key per --site" in unpaired.stderr
    assert not any(unapproved_demo.approval(site).exists() for site in DEMO_SITES)
