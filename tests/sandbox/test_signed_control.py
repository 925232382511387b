"""Regulator controls are honoured only when signed by a key the sandbox plan names; others are refused and audited."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from participants.approval_keys import fingerprint, load_private_key, new_key_pair
from sandbox.sandbox_plan import regulator_keys
from sandbox.signed_control import BAD_SIGNATURE, NOT_REGULATOR, UNSIGNED, WRONG_RUN, check_signature, sign_request
from sandbox.trial_control import Action, ControlRequest, TrialControl, TrialTerminated, request_action
from tests.approved_demo import DemoCopy
from trialcore.spec_loading import load_spec

SANDBOX = Path(sys.executable).parent / "sandbox"


def run_folder(tmp_path: Path, fingerprints: list[str]) -> Path:
    """A running trial's folder whose chain recorded the regulator's key fingerprints at its start."""
    run_dir = tmp_path / "runs" / "t" / "run-1"
    run_dir.mkdir(parents=True)
    entry = {"actor": "coordinator", "event": "regulator-keys", "payload": {"fingerprints": fingerprints}}
    (run_dir / "audit.jsonl").write_text(json.dumps(entry) + "\n")
    return run_dir


def test_signature_checks_name_why_a_request_is_refused(tmp_path: Path) -> None:
    """Unsigned, another key, an edited request and another run's request are each refused with their reason."""
    key = load_private_key(new_key_pair(tmp_path, "regulator").private_key)
    other = load_private_key(new_key_pair(tmp_path, "other").private_key)
    allowed = {fingerprint(key.public_key())}
    item = {"action": "suspend", "reason": "review", "requested_at": "2026-11-30T10:00:00+00:00", "run_id": "r1"}
    assert check_signature(item, allowed, "r1") == UNSIGNED
    assert check_signature(sign_request(item, key), allowed, "r1") is None
    assert check_signature(sign_request(item, other), allowed, "r1") == NOT_REGULATOR
    assert check_signature({**sign_request(item, key), "action": "terminate"}, allowed, "r1") == BAD_SIGNATURE
    assert check_signature(sign_request(item, key), allowed, "r2") == WRONG_RUN


def test_coordinator_honours_only_the_regulators_signed_requests(tmp_path: Path) -> None:
    """TrialControl refuses (and reports) unsigned and foreign requests and honours the regulator's terminate."""
    key = load_private_key(new_key_pair(tmp_path, "regulator").private_key)
    other = load_private_key(new_key_pair(tmp_path, "other").private_key)
    regulator = [fingerprint(key.public_key())]
    run_dir = run_folder(tmp_path, regulator)
    honoured: list[ControlRequest] = []
    refused: list[tuple[dict[str, object], str]] = []
    control = TrialControl(
        run_dir, on_change=honoured.append, regulator=regulator, on_refused=lambda r, why: refused.append((r, why))
    )
    assert request_action(run_dir, Action.terminate, "no key", regulator=regulator)[1] == UNSIGNED
    assert request_action(run_dir, Action.terminate, "impostor", key=other, regulator=regulator)[1] == NOT_REGULATOR
    control.before_round()
    assert honoured == [] and [why for _, why in refused] == [UNSIGNED, NOT_REGULATOR]
    assert request_action(run_dir, Action.terminate, "regulator", key=key, regulator=regulator)[1] is None
    with pytest.raises(TrialTerminated, match="regulator"):
        control.before_round()


def test_cli_exit_codes_unsigned_3_wrong_key_5_regulator_0(tmp_path: Path) -> None:
    """sandbox suspend: unsigned exits 3, another key exits 5, the regulator's key exits 0; every attempt is appended."""
    regulator = new_key_pair(tmp_path, "regulator")
    other = new_key_pair(tmp_path, "other")
    run_dir = run_folder(tmp_path, [regulator.fingerprint])

    def suspend(*key: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SANDBOX), "suspend", str(run_dir), "--reason", "review", *key], capture_output=True, text=True
        )

    unsigned = suspend()
    assert unsigned.returncode == 3 and "not signed" in unsigned.stderr
    wrong = suspend("--key", str(other.private_key))
    assert wrong.returncode == 5 and "not the regulator" in wrong.stderr
    assert suspend("--key", str(regulator.private_key)).returncode == 0
    assert len((run_dir / "control.jsonl").read_text().splitlines()) == 3


def test_the_plan_not_the_spec_names_the_regulator(unapproved_demo: DemoCopy) -> None:
    """The regulator's keys come from the authority's plan file; a trial without a plan file accepts no control."""
    loaded = load_spec(unapproved_demo.spec)
    keys = regulator_keys(loaded)
    assert keys.plan_id == "DEMO-SANDBOX-PLAN-1"
    assert list(keys.keys) == [fingerprint(load_private_key(unapproved_demo.regulator_key).public_key())]
    spec = yaml.safe_load(unapproved_demo.spec.read_text())
    spec["approvals"]["sandbox_plan_id"] = "NO-SUCH-PLAN"
    elsewhere = unapproved_demo.examples / "no-plan.yaml"
    elsewhere.write_text(yaml.safe_dump(spec))
    assert regulator_keys(load_spec(elsewhere)).keys == {}
