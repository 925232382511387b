"""``sandbox audit verify RUN_DIR``: a regulator sent a run folder learns whether anything in it was changed.

Each test copies the shared demo run's folder elsewhere (a moved copy must verify the same), makes
one change a tamperer would make, and expects exit 5 naming the check that caught it. The demo run
signed its report with a coordinator key the tests hold (``--coordinator-key``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from participants.approval_keys import new_key_pair
from sandbox.cli import app
from sandbox.report_signature import coordinator_key, write_signed_report
from tests.integration.conftest import DemoRun
from trialcore.audit_entry import GENESIS_HASH, entry_hash
from trialcore.canonical_json import canonical_json

pytestmark = pytest.mark.integration

SITE = "fr-lyon"


@pytest.fixture
def run_copy(demo_run: DemoRun, tmp_path: Path) -> Path:
    """The demo's run folder, copied to a new place (nothing in it may depend on where it lies)."""
    return Path(shutil.copytree(demo_run.run_dir, tmp_path / "sent-to-regulator" / demo_run.run_dir.name))


def verify(run_dir: Path, *extra: str) -> Any:
    return CliRunner().invoke(app, ["audit", "verify", str(run_dir), *extra])


def pinned(demo_run: DemoRun) -> tuple[str, str]:
    return ("--coordinator-key", str(demo_run.coordinator_key))


def entries(chain: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in chain.read_text().splitlines()]


def rewrite_chain(chain: Path, kept: list[dict[str, Any]]) -> dict[str, Any]:
    """Write ``kept`` as a chain with every seq, prev_hash and hash recomputed; return the new head."""
    previous = GENESIS_HASH
    lines = []
    for seq, entry in enumerate(kept):
        entry = {**entry, "seq": seq, "prev_hash": previous}
        entry["hash"] = entry_hash(entry)
        previous = entry["hash"]
        lines.append(canonical_json(entry) + b"\n")
    chain.write_bytes(b"".join(lines))
    return {"hash": previous, "length": len(kept)}


def edit_report(run_dir: Path, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    report = json.loads((run_dir / "report.json").read_text())
    change(report)
    (run_dir / "report.json").write_text(json.dumps(report, indent=2))
    return report


def resign_with_own_key(run_dir: Path, tmp_path: Path) -> None:
    """What a tamperer who cannot use the coordinator's key does: sign the edited report with a key of their own."""
    pair = new_key_pair(tmp_path / "tamperer", "tamperer")
    report = json.loads((run_dir / "report.json").read_text())
    write_signed_report(run_dir, report, coordinator_key(pair.private_key))


def assert_caught(result: Any, check: str) -> None:
    assert result.exit_code == 5, result.stdout
    assert f"FAIL  {check}" in result.stdout
    assert f"verification failed at {check}" in result.stderr


def test_a_moved_copy_of_the_run_verifies_with_one_line_per_check(demo_run: DemoRun, run_copy: Path) -> None:
    """The untouched folder, moved elsewhere, passes every check against the pinned coordinator key."""
    result = verify(run_copy, *pinned(demo_run))
    assert result.exit_code == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    names = [line.split(":")[0][6:] for line in lines[:-1]]
    sites = sorted(demo_run.report["audit"]["sites"])
    assert names == [
        "report",
        "signature",
        "spec",
        "chain coordinator",
        *(f"chain site {s}" for s in sites),
        "model",
        *(f"cross-references {s}" for s in sites),
        *(f"ledger {s}" for s in sites),
        "metrics",
    ]
    assert all(line.startswith("ok  ") for line in lines[:-1])
    assert "by the given coordinator key" in lines[1]
    unpinned = verify(run_copy)
    assert unpinned.exit_code == 0 and "signer not pinned" in unpinned.stdout


@pytest.mark.parametrize("chain", ["audit.jsonl", f"sites/{SITE}/audit.jsonl"])
def test_an_edited_byte_in_any_chain_fails(demo_run: DemoRun, run_copy: Path, chain: str) -> None:
    """One byte changed in the coordinator's or a site's chain is caught by that chain's check."""
    path = run_copy / chain
    data = bytearray(path.read_bytes())
    at = data.index(b'"round":3')
    data[at + 8] = ord("4")
    path.write_bytes(bytes(data))
    name = "chain coordinator" if chain == "audit.jsonl" else f"chain site {SITE}"
    assert_caught(verify(run_copy, *pinned(demo_run)), name)


def test_removed_last_entry_with_the_head_edited_in_the_report_fails(demo_run: DemoRun, run_copy: Path) -> None:
    """Cutting the chain and moving the report's head to match breaks the report's signature."""
    chain = run_copy / "audit.jsonl"
    kept = entries(chain)[:-1]
    chain.write_bytes(b"".join(canonical_json(e) + b"\n" for e in kept))
    edit_report(run_copy, lambda r: r["audit"]["coordinator"].update(hash=kept[-1]["hash"], length=len(kept)))
    assert_caught(verify(run_copy, *pinned(demo_run)), "signature")


def test_rewritten_entry_with_hashes_recomputed_and_head_updated_fails(
    demo_run: DemoRun, run_copy: Path, tmp_path: Path
) -> None:
    """A round's accuracy rewritten, every later hash recomputed and the head updated: caught by the signature,
    even when the tamperer signs the report again with a key of their own (the coordinator's key is pinned)."""
    chain = run_copy / "audit.jsonl"
    rewritten = entries(chain)
    target = next(e for e in rewritten if e["event"] == "round-aggregated" and e["payload"]["round"] == 2)
    target["payload"]["global"]["test_accuracy"] = 0.999
    head = rewrite_chain(chain, rewritten)
    edit_report(run_copy, lambda r: r["audit"]["coordinator"].update(head))
    assert_caught(verify(run_copy, *pinned(demo_run)), "signature")
    resign_with_own_key(run_copy, tmp_path)
    result = verify(run_copy, *pinned(demo_run))
    assert_caught(result, "signature")
    assert "not by the expected key" in result.stdout


def test_every_release_the_chain_names_is_checked_in_the_ledger(demo_run: DemoRun, run_copy: Path) -> None:
    """Each site's check counts all its charges (feature sums, training, evaluation); a ledger cut short is caught.

    Dropping the last charge (round 10's evaluation) leaves an intact ledger and every training charge
    in place: only the evaluation entry of the site's chain still names it.
    """
    result = verify(run_copy, *pinned(demo_run))
    assert f"ok    ledger {SITE}: 21 charge(s) named by the chain are in the intact ledger" in result.stdout
    [ledger] = (run_copy / "sites" / SITE / "privacy").glob("*.ledger.jsonl")
    charges = ledger.read_text().splitlines()
    assert json.loads(charges[-1])["release"] == "evaluation"
    ledger.write_text("\n".join(charges[:-1]) + "\n")
    assert_caught(verify(run_copy, *pinned(demo_run)), f"ledger {SITE}")


def test_replaced_model_file_fails(demo_run: DemoRun, run_copy: Path) -> None:
    """A different model.pt than the one the run saved is caught by its SHA-256."""
    (run_copy / "model.pt").write_bytes(b"another model")
    assert_caught(verify(run_copy, *pinned(demo_run)), "model")


def test_removed_round_in_one_site_chain_fails_even_when_resigned(
    demo_run: DemoRun, run_copy: Path, tmp_path: Path
) -> None:
    """A site's entries of round 3 removed and its chain rechained: the signature catches it, and with the
    report re-signed by the tamperer (signer not pinned) the cross-references between the chains still do."""
    chain = run_copy / "sites" / SITE / "audit.jsonl"
    kept = [e for e in entries(chain) if e["payload"].get("round") != 3]
    head = rewrite_chain(chain, kept)
    edit_report(run_copy, lambda r: r["audit"]["sites"][SITE].update(head))
    assert_caught(verify(run_copy, *pinned(demo_run)), "signature")
    resign_with_own_key(run_copy, tmp_path)
    result = verify(run_copy)
    assert_caught(result, f"cross-references {SITE}")
    assert "round 3" in result.stdout


def test_edited_report_fails(demo_run: DemoRun, run_copy: Path) -> None:
    """Lowering a site's epsilon in report.json breaks the signature over the report's canonical bytes."""
    edit_report(run_copy, lambda r: r["sites"][0]["privacy"].update(trial_epsilon=0.01))
    assert_caught(verify(run_copy, *pinned(demo_run)), "signature")


def test_wrong_key_fails(run_copy: Path, tmp_path: Path) -> None:
    """A report checked against another coordinator key than the one that signed it is not verified."""
    other = new_key_pair(tmp_path / "other", "other")
    result = verify(run_copy, "--coordinator-key", str(other.public_key))
    assert_caught(result, "signature")


def test_spec_copy_and_hash_recipe_hold(demo_run: DemoRun) -> None:
    """The run folder holds the spec as given and its canonical JSON, whose SHA-256 is the spec hash."""
    run_dir, report = demo_run.run_dir, demo_run.report
    spec = report["spec"]
    assert (run_dir / spec["file"]).read_bytes() == (
        demo_run.run_dir.parents[2] / "examples" / "demo.yaml"
    ).read_bytes()
    assert hashlib.sha256((run_dir / spec["file"]).read_bytes()).hexdigest() == spec["file_sha256"]
    canonical = (run_dir / spec["canonical_file"]).read_bytes()
    assert hashlib.sha256(canonical).hexdigest() == report["spec_hash"] == spec["hash"]
    assert "sha256sum spec.canonical.json" in spec["how_to_recompute_hash"]
    assert report["spec_file"] == "spec.yaml"


def test_report_is_a_complete_record_with_paths_in_the_run_folder(demo_run: DemoRun) -> None:
    """report.json names what an exit report asks, omits what does not apply, and every path is relative."""
    report = demo_run.report
    assert report["plan"] == {
        "purpose": "treatment-research",
        "ai_risk_tier": "high",
        "data_categories": ["health"],
        "aggregator_jurisdiction": "DE",
        "ethics_board_ref": "DEMO-EB-2026-001",
        "sandbox_plan_id": "DEMO-SANDBOX-PLAN-1",
    }
    assert "hidden_units" not in report["model"], "a logistic regression has no hidden layer"
    training = report["training"]
    assert training["min_participants"] == 3
    given = yaml.safe_load((demo_run.run_dir / report["spec"]["file"]).read_text(encoding="utf-8"))["privacy"]
    assert training["privacy"] == given, "every privacy setting of the spec, as given"
    assert {"noise_multiplier", "max_grad_norm", "evaluation_noise_multiplier"} <= set(training["privacy"])
    assert training["secure_aggregation"]["used"] is False
    assert {"python", "flwr", "torch", "opacus", "regulatory-sandbox"} <= set(report["software"])
    model = report["model_file"]
    assert hashlib.sha256((demo_run.run_dir / model["path"]).read_bytes()).hexdigest() == model["sha256"]
    for site in report["sites"]:
        assert site["institution"] and site["policy_hash"] and len(site["policy_hash"]) == 64
        assert site["legal_bases"]["health"]
        assert site["transfer_mechanism"]
        assert {d["clause"] for d in site["preflight"]} >= {"purpose-allowed", "transfer", "noise-floor"}
        assert all(d["permit"] for d in site["preflight"])
        assert site["approval"]["state"] == "approved" and site["approval"]["signature"]
        assert report["consent"]["sites"][site["site_id"]]["signature"] == site["approval"]["signature"]
    assert next(s for s in report["sites"] if s["site_id"] == "de-berlin")["transfer_mechanism"].startswith("none")
    paths = [report["spec_file"], report["spec"]["file"], model["path"], report["audit"]["coordinator"]["path"]]
    paths += [head["path"] for head in report["audit"]["sites"].values()]
    assert all(not Path(p).is_absolute() and (demo_run.run_dir / p).is_file() for p in paths)
    assert all(head["head_source"] == "read-at-end" for head in report["audit"]["sites"].values())
    assert report["signer"]["pinned"] is True
