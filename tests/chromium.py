"""Headless Chromium for tests: found on the PATH, or installed from Debian's ``chromium`` package.

A test that needs the browser never skips: when Chromium is missing it runs ``apt-get install -y
chromium`` (as root; ``apt-get update`` first if the package is not known yet) and fails with a
message saying how to install it by hand when that does not work.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

INSTALL_HINT = "install it with 'apt-get install -y chromium' (Debian package chromium), as root"
_NAMES = ("chromium", "chromium-browser")


def _found() -> str | None:
    return next((path for name in _NAMES if (path := shutil.which(name))), None)


def chromium() -> str:
    """The path of a Chromium binary, installing Debian's package first if there is none."""
    found = _found()
    if found is not None:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail(f"Chromium is not installed and cannot be installed here (needs root and apt-get): {INSTALL_HINT}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    attempts = []
    for command in (
        ["apt-get", "install", "-y", "chromium"],
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "chromium"],
    ):
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
        attempts.append(f"$ {' '.join(command)} -> exit {done.returncode}: {done.stderr.strip()[-300:]}")
        if command[1] == "install" and done.returncode == 0:
            break
    found = _found()
    if found is None:
        pytest.fail("Chromium could not be installed:\n" + "\n".join(attempts) + f"\n{INSTALL_HINT}")
    return found


def run_headless(page: Path, *flags: str, timeout_seconds: float = 120) -> subprocess.CompletedProcess[str]:
    """Open ``page`` in headless Chromium with ``flags``; console messages go to stderr (``--enable-logging``)."""
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",  # tests run as root, where Chromium's sandbox refuses to start
        "--disable-gpu",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
        *flags,
        page.resolve().as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout_seconds, check=False)


def console_lines(stderr: str) -> list[str]:
    """The page's console messages (errors, warnings, logs, uncaught exceptions) Chromium logged."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]
