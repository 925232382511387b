"""``sandbox status RUN_DIR``: one read-only screen on a finished, running or killed trial."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sandbox.cli import app
from tests.integration.conftest import DemoRun

pytestmark = pytest.mark.integration


def status(run_dir: Path, *extra: str) -> Any:
    return CliRunner().invoke(app, ["status", str(run_dir), *extra])


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def killed_run(demo_run: DemoRun, tmp_path: Path) -> Path:
    """The demo's folder as a killed run leaves it: the chain cut after round 6, no report, a dead metrics URL."""
    run_dir = Path(shutil.copytree(demo_run.run_dir, tmp_path / "run"))
    lines = (run_dir / "audit.jsonl").read_text().splitlines(keepends=True)
    cut = next(
        i for i, line in enumerate(lines) if json.loads(line)["event"] == "round-configured" and '"round":7' in line
    )
    (run_dir / "audit.jsonl").write_text("".join(lines[:cut]))
    for name in ("report.json", "report.json.sig", "report.html"):
        (run_dir / name).unlink()
    (run_dir / "metrics-url").write_text("http://127.0.0.1:9/metrics\n")
    return run_dir


class _Metrics(BaseHTTPRequestHandler):
    run_id = "run"
    """The run id the endpoint serves series of (the killed run's folder is named ``run``)."""

    @property
    def body(self) -> bytes:
        labels = f'site="fr-lyon",trial="t",run_id="{self.run_id}"'
        return (
            f"sandbox_privacy_trial_epsilon_spent{{{labels}}} 0.25\n"
            f"sandbox_privacy_trial_epsilon_budget{{{labels}}} 0.5\n"
        ).encode()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def live_endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    server.shutdown()
    server.server_close()


def test_status_of_a_finished_run(demo_run: DemoRun) -> None:
    """A finished run: its end state, every round, each site's participation and epsilon, its chain heads; nothing changed."""
    before = snapshot(demo_run.run_dir)
    result = status(demo_run.run_dir, "--format", "json")
    assert result.exit_code == 0, result.stdout + result.stderr
    found = json.loads(result.stdout)
    assert found["state"] == "finished" and found["round"] == 10 and found["rounds_completed"] == 10
    assert found["metrics_live"] is False
    report_sites = {s["site_id"]: s["privacy"] for s in demo_run.report["sites"]}
    for site in found["sites"]:
        assert site["rounds_trained"] == list(range(1, 11))
        assert site["trial_epsilon"] == report_sites[site["site_id"]]["trial_epsilon"]
    assert found["chain"]["intact"] and found["chain"]["head"] == demo_run.report["audit"]["coordinator"]["hash"]
    text = status(demo_run.run_dir)
    assert text.exit_code == 0 and "finished" in text.stdout and "fr-lyon" in text.stdout
    assert snapshot(demo_run.run_dir) == before


def test_status_of_a_killed_run_says_interrupted(killed_run: Path) -> None:
    """A run killed after round 6 (no final entry, no report, no metrics endpoint) is interrupted at round 6."""
    found = json.loads(status(killed_run, "--format", "json").stdout)
    assert found["state"] == "interrupted" and found["round"] == 6 and found["metrics_live"] is False
    assert all(len(site["rounds_trained"]) == 6 for site in found["sites"])


def test_status_of_a_running_trial_reads_its_metrics_endpoint(killed_run: Path, live_endpoint: str) -> None:
    """While the trial's metrics endpoint answers, the run is running and epsilon comes from the live series."""
    (killed_run / "metrics-url").write_text(live_endpoint + "\n")
    before = snapshot(killed_run)
    found = json.loads(status(killed_run, "--format", "json").stdout)
    assert found["state"] == "running" and found["metrics_live"] is True
    lyon = next(site for site in found["sites"] if site["site_id"] == "fr-lyon")
    assert (lyon["trial_epsilon"], lyon["trial_epsilon_budget"]) == (0.25, 0.5)
    assert snapshot(killed_run) == before


def test_an_endpoint_serving_another_run_does_not_make_a_killed_run_running(
    killed_run: Path, live_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the killed run's port now serves another run's series, the run is still interrupted."""
    monkeypatch.setattr(_Metrics, "run_id", "another-run")
    (killed_run / "metrics-url").write_text(live_endpoint + "\n")
    found = json.loads(status(killed_run, "--format", "json").stdout)
    assert found["state"] == "interrupted" and found["metrics_live"] is False


def test_status_of_a_folder_that_is_no_run_is_bad_input(tmp_path: Path) -> None:
    """A folder without a coordinator chain is named, exit 2, no traceback."""
    result = status(tmp_path)
    assert result.exit_code == 2 and "Traceback" not in result.stderr


def test_verifying_a_killed_run_says_it_has_no_report(killed_run: Path) -> None:
    """audit verify on a run folder without report.json exits 5 and points at the chain-only check."""
    result = CliRunner().invoke(app, ["audit", "verify", str(killed_run)])
    assert result.exit_code == 5
    assert "interrupted or is still running" in result.stdout and "audit.jsonl" in result.stdout
