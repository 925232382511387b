"""``flwr run`` runs the same demo through Flower's own CLI and local SuperLink, from any working folder.

It is started in a folder holding packages named like the project's (each raising if imported), as
a user's own trial folder may: the simulated sites still import the project's packages.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.approved_demo import approved_demo_at
from tests.demo_accuracy import true_pooled_test_accuracy
from tests.integration.conftest import REPO, sandbox_env
from tests.participants.test_site_internal_error import shadowing_folder
from tests.prometheus_server import require_promtool

pytestmark = pytest.mark.integration


def _superlinks_under(flwr_home: Path) -> list[int]:
    """Pids of local SuperLinks whose state lives under ``flwr_home`` (started by this test)."""
    listing = subprocess.run(["pgrep", "-f", f"flower-superlink.*{flwr_home}"], capture_output=True, text=True)
    return [int(pid) for pid in listing.stdout.split()]


def test_flwr_run_runs_the_demo(tmp_path: Path) -> None:
    """flwr run <project> (simulation, 4 SuperNodes) from a shadowing folder trains the demo and writes the same evidence as sandbox run."""
    flwr_home = tmp_path / "flwr-home"
    runs = tmp_path / "runs"
    env = sandbox_env()
    env.update({"FLWR_HOME": str(flwr_home), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"})
    demo = approved_demo_at(tmp_path / "demo")
    run_config = (
        f"trial-spec='{demo.spec}' runs-root='{runs}' metrics-port=0 "
        f"federation-dir='{demo.sites_dir}' federation-sites='de-berlin,fr-lyon,gb-leeds,ch-zurich'"
    )
    try:
        completed = subprocess.run(
            [
                "flwr",
                "run",
                str(REPO),
                "local",
                "--federation-config",
                "num-supernodes=4 client-resources-num-cpus=1",
                "--run-config",
                run_config,
                "--stream",
            ],
            cwd=shadowing_folder(tmp_path / "my-trial"),
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        for pid in _superlinks_under(flwr_home):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while _superlinks_under(flwr_home) and time.monotonic() < deadline:
            time.sleep(0.2)
    # flwr run --stream exits 0 even when the run failed: the report is the evidence that it succeeded.
    assert completed.returncode == 0, completed.stderr[-3000:]
    reports = list(runs.glob("cancer-risk-demo/*/report.json"))
    assert len(reports) == 1, completed.stdout[-3000:] + completed.stderr[-3000:]
    report = json.loads(reports[0].read_text())
    assert report["state"] == "finished"
    assert report["rounds_completed"] == 10
    assert report["consent"]["all_consent"] is True, (
        "the coordinator found every site's approval through the federation"
    )
    assert true_pooled_test_accuracy(reports[0].parent) >= 0.93, "the final model (released accuracies are noised)"
    for head in report["audit"]["sites"].values():
        assert (reports[0].parent / head["path"]).is_file(), "each site's chain sits in the same run folder"
    assert not _superlinks_under(flwr_home), "the local SuperLink was left running"
    checked = subprocess.run(
        [require_promtool(), "check", "metrics"],
        input=(reports[0].parent / "metrics.prom").read_bytes(),
        capture_output=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()
