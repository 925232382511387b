"""Start a REAL Prometheus server (and find promtool) for tests.

Tests prove the shipped ``monitoring/prometheus/prometheus.yml`` and alert rules
work in the real server: :func:`start_prometheus` loads that file, swaps in the
test's scrape targets and interval and absolute rule file paths, and runs
``prometheus`` on a free loopback port with its TSDB under the test's tmp dir.

A missing binary is installed with ``apt-get install -y prometheus`` when running
as root with apt-get; otherwise the test fails (never skips) saying how to install it.

Usage::

    with start_prometheus(tmp_path, scrape_targets=[f"127.0.0.1:{port}"]) as prom:
        prom.wait_for('sandbox_round{trial="t1"}', timeout=10)
        assert prom.query("sandbox_round")[0]["value"][1] == "3"
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_CONFIG = REPO_ROOT / "monitoring" / "prometheus" / "prometheus.yml"
SCRAPE_JOB = "sandbox"
_INSTALL_HINT = "install it with: sudo apt-get install prometheus"
_START_ATTEMPTS = 3


class PromQLError(Exception):
    """Prometheus answered a query with an error (e.g. HTTP 400 ``bad_data`` for a parse error)."""

    def __init__(self, expr: str, status: int, error_type: str, error: str) -> None:
        self.expr, self.status, self.error_type, self.error = expr, status, error_type, error
        super().__init__(f"HTTP {status} {error_type}: {error} (query: {expr})")


def _require_binary(name: str) -> str:
    """Path of ``name``; try apt-get as root when missing; else fail the test with the install hint."""
    found = shutil.which(name)
    if found is None and os.name == "posix" and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(
            ["apt-get", "install", "-y", "prometheus"],
            env=env,
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=600,
        )
        found = shutil.which(name)
    if found is None:
        pytest.fail(f"The `{name}` binary (Debian package `prometheus`) is required; {_INSTALL_HINT}")
    return found


def require_prometheus() -> str:
    """Path of the ``prometheus`` server binary; fails the test with an install hint if absent."""
    return _require_binary("prometheus")


def require_promtool() -> str:
    """Path of ``promtool``; fails the test with an install hint if absent."""
    return _require_binary("promtool")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def render_config(
    *,
    scrape_targets: Sequence[str],
    rule_files: Sequence[str | Path] | None,
    scrape_interval: str,
) -> dict[str, Any]:
    """The shipped config with the test's targets and interval; rule paths made absolute.

    ``rule_files=None`` keeps the shipped rule files (resolved next to the shipped config).
    """
    config: dict[str, Any] = yaml.safe_load(SHIPPED_CONFIG.read_text(encoding="utf-8"))
    config.setdefault("global", {}).update(scrape_interval=scrape_interval, evaluation_interval=scrape_interval)
    if rule_files is None:
        rule_files = [SHIPPED_CONFIG.parent / name for name in config.get("rule_files", [])]
    config["rule_files"] = [str(Path(path).resolve()) for path in rule_files]
    jobs = [job for job in config["scrape_configs"] if job["job_name"] == SCRAPE_JOB]
    assert jobs, f"{SHIPPED_CONFIG} has no scrape job {SCRAPE_JOB!r}"
    jobs[0]["scrape_interval"] = scrape_interval
    jobs[0]["scrape_timeout"] = scrape_interval
    jobs[0]["static_configs"] = [{"targets": list(scrape_targets)}]
    return config


def _death_signal_hook() -> Callable[[], None] | None:
    """A preexec hook asking Linux to SIGTERM the child when the test process dies.

    ``prctl`` is looked up here, in the parent, so the forked child only makes one
    system call (no dynamic loading between fork and exec).
    """
    if sys.platform != "linux":
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return hook


class PrometheusServer:
    """A running Prometheus process; stop it, or use it as a context manager."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, workdir: Path) -> None:
        self.process = process
        self.port = port
        self.workdir = workdir
        self.url = f"http://127.0.0.1:{port}"

    @property
    def log(self) -> str:
        """The server's log so far (stderr)."""
        path = self.workdir / "prometheus.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>`` and return its ``data``; PromQLError on an error answer."""
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as err:
            try:
                body = json.loads(err.read())
            except ValueError:
                body = {"errorType": "http", "error": str(err)}
            expr = params.get("query", path)
            raise PromQLError(expr, err.code, body.get("errorType", ""), body.get("error", "")) from err
        if body.get("status") != "success":
            raise PromQLError(params.get("query", path), 200, body.get("errorType", ""), body.get("error", ""))
        return body["data"]

    def query(self, expr: str) -> list[Any]:
        """Instant query ``expr`` now; the ``result`` list (vector samples, or ``[time, value]``)."""
        result: list[Any] = self.api("query", query=expr)["result"]
        return result

    def wait_for(self, expr: str, timeout: float = 10.0) -> list[Any]:
        """Poll ``expr`` until it returns a non-empty result; TimeoutError (with target health) if not."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result:
                return result
            if time.monotonic() > deadline:
                targets = [(t["scrapeUrl"], t["health"], t["lastError"]) for t in self.api("targets")["activeTargets"]]
                raise TimeoutError(f"{expr!r} stayed empty for {timeout} s; targets: {targets}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Terminate the server and wait for it (kill after 10 s); safe to call twice."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _wait_ready(server: PrometheusServer, timeout: float) -> bool:
    """True once ``/-/ready`` answers 200; False if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=1) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    return False


def start_prometheus(
    tmp_dir: str | Path,
    *,
    scrape_targets: list[str],
    rule_files: Sequence[str | Path] | None = None,
    scrape_interval: str = "1s",
    ready_timeout: float = 15.0,
) -> PrometheusServer:
    """Start a real Prometheus on a free 127.0.0.1 port, configured from the shipped prometheus.yml.

    Parameters
    ----------
    tmp_dir:
        Directory for the generated config, the log and the TSDB.
    scrape_targets:
        ``host:port`` targets of job ``sandbox``.
    rule_files:
        Rule files to load; ``None`` loads the shipped ones, ``[]`` none.
    scrape_interval:
        Scrape and rule-evaluation interval, Prometheus duration syntax.
    ready_timeout:
        Seconds to wait for ``/-/ready``.
    """
    binary = require_prometheus()
    workdir = Path(tmp_dir)
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "prometheus.yml"
    config = render_config(scrape_targets=scrape_targets, rule_files=rule_files, scrape_interval=scrape_interval)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    preexec = _death_signal_hook()
    for _attempt in range(_START_ATTEMPTS):
        port = free_port()
        with open(workdir / "prometheus.log", "wb") as log:
            process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=preexec,
            )
        server = PrometheusServer(process, port, workdir)
        try:
            ready = _wait_ready(server, ready_timeout)
        except BaseException:
            server.stop()
            raise
        if ready:
            return server
        server.stop()
        if "address already in use" not in server.log:
            break
    pytest.fail(f"Prometheus did not become ready on {server.url}; log:\n{server.log[-4000:]}")
