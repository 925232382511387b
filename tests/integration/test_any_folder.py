"""The commands work from any working folder, even one holding packages named like the project's own.

The folder holds ``policies/``, ``monitoring/``, ``participants/``, ``sandbox/``, ``trialcore/`` and
``tests/``, each with an ``__init__.py`` that raises: a simulated site (a Ray worker, which puts the
working folder first on its import path) that imported one of them would fail, and the trial with it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.approved_demo import DemoCopy, copy_demo
from tests.demo_accuracy import true_pooled_test_accuracy
from tests.integration.conftest import SANDBOX, sandbox_env
from tests.participants.test_site_internal_error import shadowing_folder
from trialcore.audit_verify import verify_chain

pytestmark = pytest.mark.integration

ROUNDS = 2


@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoCopy, Path]:
    """(a shadowing working folder, an approved demo copy elsewhere, its spec cut to 2 rounds)."""
    root = tmp_path_factory.mktemp("any-folder")
    demo = copy_demo(root / "demo")
    document = yaml.safe_load(demo.spec.read_text(encoding="utf-8"))
    # Relative to the spec file (the run starts elsewhere): an absolute temporary path would change
    # the spec hash, which seeds the release noise, and so the model, with every pytest session.
    document.update(rounds=ROUNDS, federation=demo.sites_dir.relative_to(root).as_posix())
    spec = root / "demo-2-rounds.yaml"
    spec.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    demo.approve(spec)
    return shadowing_folder(root / "my-trial"), demo, spec


def test_sandbox_run_from_a_shadowing_folder_aggregates_and_finishes(trial: tuple[Path, DemoCopy, Path]) -> None:
    """sandbox run started in the folder trains every round with every site and finishes (exit 0)."""
    folder, _, spec = trial
    done = subprocess.run(
        [str(SANDBOX), "run", str(spec), "--metrics-port", "0", "--linger-seconds", "0", "--format", "json"],
        cwd=folder,
        env=sandbox_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads(done.stdout)
    assert (summary["state"], summary["rounds_completed"], summary["failure"]) == ("finished", ROUNDS, None)
    run_dir = folder / summary["run_dir"]
    report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    assert all(entry["aggregated"] and len(entry["trained_sites"]) == 4 for entry in report["rounds"])
    # Two rounds only, with noised feature sums: 0.847 measured on 2026-11-30 (0.85 with exact scaling).
    assert true_pooled_test_accuracy(run_dir) >= 0.8, "the final model (released accuracies are noised)"
    assert "was imported" not in done.stderr and "Traceback" not in done.stderr
    assert verify_chain(run_dir / "audit.jsonl").ok


def test_check_and_check_data_from_a_shadowing_folder(trial: tuple[Path, DemoCopy, Path]) -> None:
    """sandbox check and participants check-data read the project's packages, not the folder's."""
    folder, demo, spec = trial
    checked = subprocess.run(
        [str(SANDBOX), "check", str(spec), "--format", "json"], cwd=folder, capture_output=True, text=True, timeout=300
    )
    assert checked.returncode == 0, checked.stderr[-2000:]
    assert json.loads(checked.stdout)["ok"] is True
    data = subprocess.run(
        [str(SANDBOX.parent / "participants"), "check-data", str(demo.site_config("fr-lyon")), "--format", "json"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert data.returncode == 0, data.stderr[-2000:]
    assert json.loads(data.stdout)["num_features"] == 30
