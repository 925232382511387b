"""Start the site's Flower SuperNode (``flower-supernode``) and say, in words, why it stopped.

The SuperNode is Flower's own process; this module only builds its command line from the site's
settings, passes its output through, and maps how it ended to the project's exit codes:

- it ran and stopped on request (SIGINT/SIGTERM): 0;
- the SuperLink refused the node (its key is not registered, Flower's "Failed to activate
  SuperNode"): exit 3;
- the SuperLink could not be reached, or went away for longer than ``wait_seconds`` (watched
  here: Flower bounds only the first connection): exit 6;
- anything else: exit 1 with Flower's last lines.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from participants.site_config import LoadedSiteConfig
from trialcore.errors import ExitCode

__all__ = ["SupernodeSettings", "run_supernode", "supernode_command"]

REFUSED_MARKERS = ("Failed to activate SuperNode", "PERMISSION_DENIED", "Unauthenticated")
UNREACHABLE_MARKERS = ("could not establish a connection", "Connection attempt failed", "Exit Code: 305")


@dataclass(frozen=True)
class SupernodeSettings:
    """What the SuperNode needs: where the SuperLink is, its CA, the node key, the site, its own port."""

    superlink: str
    root_certificates: Path
    auth_key: Path
    site: LoadedSiteConfig
    port: int
    wait_seconds: float


def supernode_command(settings: SupernodeSettings) -> list[str]:
    """``flower-supernode`` with TLS, node authentication, the site's node config and a bounded reconnect."""
    return [
        str(Path(sys.executable).parent / "flower-supernode"),
        "--superlink",
        settings.superlink,
        "--root-certificates",
        str(settings.root_certificates.resolve()),
        "--auth-supernode-private-key",
        str(settings.auth_key.resolve()),
        "--node-config",
        f"site-config='{settings.site.path}'",
        "--port",
        str(settings.port),
        "--max-wait-time",
        f"{settings.wait_seconds:g}",
    ]


def supernode_environment(site: LoadedSiteConfig) -> dict[str, str]:
    """The SuperNode's environment: no telemetry, no dependency installs, Flower's files in the site's state folder."""
    env = {
        **os.environ,
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    if site.config.state_dir:
        env["FLWR_HOME"] = str(site.resolve(site.config.state_dir) / "flower-home")
    return env


def _read_lines(process: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def _stop_children(supernode_pid: int) -> None:
    """Stop Flower's SuperExec that the SuperNode ``supernode_pid`` started (it names its parent's pid)."""
    marker = f"--parent-pid {supernode_pid}"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and "flower-superexec" in cmdline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGTERM)


class _Watchdog:
    """Says when the SuperLink has not accepted a connection for ``wait_seconds`` (probed every 2 s).

    Flower's SuperNode bounds only its first connection (``--max-wait-time``); once connected it
    retries for ever. ``participants join`` stops it when the SuperLink stays away that long.
    """

    def __init__(self, superlink: str, wait_seconds: float) -> None:
        host, _, port = superlink.rpartition(":")
        self.address = (host.strip("[]"), int(port))
        self.wait_seconds = wait_seconds
        self.last_ok = time.monotonic()
        self.next_probe = 0.0

    def lost(self) -> bool:
        now = time.monotonic()
        if now < self.next_probe:
            return False
        self.next_probe = now + 2.0
        try:
            with socket.create_connection(self.address, timeout=2.0):
                self.last_ok = time.monotonic()
        except OSError:
            pass
        return time.monotonic() - self.last_ok > self.wait_seconds


def run_supernode(settings: SupernodeSettings, *, echo: Callable[[str], None]) -> tuple[int, str]:
    """Run the SuperNode until it stops; (exit code, one line saying why)."""
    process = subprocess.Popen(
        supernode_command(settings),
        env=supernode_environment(settings.site),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        process.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(process, lines), daemon=True)
    reader.start()
    refused = unreachable = False
    tail: list[str] = []

    def take(line: str) -> None:
        nonlocal refused, unreachable, tail
        echo(line)
        tail = [*tail[-19:], line]
        refused = refused or any(marker in line for marker in REFUSED_MARKERS)
        unreachable = unreachable or any(marker in line for marker in UNREACHABLE_MARKERS)

    watchdog = _Watchdog(settings.superlink, settings.wait_seconds)
    try:
        while process.poll() is None:
            with contextlib.suppress(queue.Empty):
                line = lines.get(timeout=0.2)
                if line is not None:
                    take(line)
            if watchdog.lost():
                unreachable = True
                process.terminate()
        code = process.wait()
        # Flower's SuperExec (a child of the SuperNode) may still hold the output pipe: read what is
        # there, then stop it, so that a SuperNode that ended never keeps `participants join` waiting.
        _stop_children(process.pid)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            take(line)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if process.poll() is None:
            process.kill()
            process.wait()
        _stop_children(process.pid)
    if stopping:
        return int(ExitCode.OK), "the SuperNode stopped on request"
    if refused:
        return (
            int(ExitCode.REFUSED_BY_POLICY),
            "the SuperLink refused this node: its key is not registered for the trial's federation",
        )
    if unreachable:
        return (
            int(ExitCode.SERVICE_UNAVAILABLE),
            f"the SuperLink at {settings.superlink} could not be reached within {settings.wait_seconds:g} s",
        )
    if code == 0:
        return int(ExitCode.OK), "the SuperNode stopped"
    return int(ExitCode.INTERNAL_ERROR), f"the SuperNode exited with code {code}: {' | '.join(tail[-3:])[:300]}"
