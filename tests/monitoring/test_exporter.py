"""Serving metrics over HTTP during a trial and writing them to a textfile after it."""

from __future__ import annotations

import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitoring.exporter import serve, write_textfile
from monitoring.metrics import SandboxMetrics
from tests.monitoring.known_trial import RUN_ID, populate
from trialcore.errors import BadInputError, ExitCode


def scrape(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
    return body


def test_serves_exposition_on_any_free_port(registry: CollectorRegistry, metrics: SandboxMetrics) -> None:
    """With port 0 the exporter picks a free port, reports it, and serves exactly generate_latest."""
    populate(metrics)
    with serve(registry, port=0) as server:
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"
        assert scrape(server.url) == generate_latest(registry)
        metrics.set_state("suspended")
        expected = f'sandbox_trial_state{{run_id="{RUN_ID}",sandbox_trial_state="suspended",trial="trial-0042"}} 1.0'
        assert expected.encode() in scrape(server.url)


def test_close_releases_the_port(registry: CollectorRegistry, metrics: SandboxMetrics) -> None:
    """After close() the port is free again for the next trial."""
    server = serve(registry, port=0)
    port = server.port
    server.close()
    server.close()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_port_in_use_is_bad_input(registry: CollectorRegistry, metrics: SandboxMetrics) -> None:
    """A busy --metrics-port is reported as a user mistake (exit 2) saying what to pass instead."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(BadInputError) as caught:
            serve(registry, port=port)
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    (problem,) = caught.value.problems
    assert problem.source == "--metrics-port"
    assert problem.found == str(port)
    assert "a free TCP port, or 0 for any free port" in problem.allowed
    assert caught.value.lines() == [problem.line()]


@pytest.mark.parametrize("port", [-1, 65536])
def test_port_out_of_range_is_bad_input(registry: CollectorRegistry, port: int) -> None:
    """An impossible --metrics-port is reported as a user mistake, not a traceback."""
    with pytest.raises(BadInputError) as caught:
        serve(registry, port=port)
    assert caught.value.problems[0].source == "--metrics-port"


def test_textfile_is_final_state_and_passes_promtool(
    registry: CollectorRegistry, metrics: SandboxMetrics, promtool: str, tmp_path: Path
) -> None:
    """The final-state textfile holds the exposition and passes `promtool check metrics`."""
    populate(metrics)
    target = tmp_path / "sandbox.prom"
    target.write_text("stale\n")
    assert write_textfile(registry, target) == target
    assert target.read_bytes() == generate_latest(registry)
    assert [p.name for p in tmp_path.iterdir()] == ["sandbox.prom"]
    with target.open("rb") as stdin:
        checked = subprocess.run([promtool, "check", "metrics"], stdin=stdin, capture_output=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_textfile_in_missing_directory_is_bad_input(registry: CollectorRegistry, tmp_path: Path) -> None:
    """A textfile path in a directory that does not exist is a user mistake naming that path."""
    target = tmp_path / "missing" / "sandbox.prom"
    with pytest.raises(BadInputError) as caught:
        write_textfile(registry, target)
    assert caught.value.problems[0].source == str(target)
