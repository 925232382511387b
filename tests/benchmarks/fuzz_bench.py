"""``make bench``: the in-process fuzz modules at their full counts.

The reader fuzz (tests/policies/test_reader_fuzz.py, ``SANDBOX_FUZZ_EXAMPLES``) and the CLI fuzz
(tests/policies/test_policy_cli_fuzz.py, ``SANDBOX_CLI_FUZZ_EXAMPLES``) each run in a child pytest;
each result says how many inputs were tried, whether every one ended as user input must, the wall
time and the child's peak resident memory. ``make test`` runs the same modules at smaller counts.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
FUZZ_MODULE = "tests/policies/test_reader_fuzz.py"
READERS = 4
BENCH_EXAMPLES_PER_READER = 2_500
CLI_FUZZ_MODULE = "tests/policies/test_policy_cli_fuzz.py"
CLI_FUZZ_TESTS = 3
BENCH_CLI_EXAMPLES_PER_TEST = 600


def _child_pytest(module: str, variable: str, examples: int) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run one fuzz module in a child pytest with its example count set; the result and its wall seconds."""
    env = {**os.environ, variable: str(examples)}
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", module],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return completed, time.monotonic() - started


def _summary(completed: subprocess.CompletedProcess[str]) -> str:
    """The child pytest's last line (or the end of its error output)."""
    return completed.stdout.strip().splitlines()[-1] if completed.stdout.strip() else completed.stderr[-500:]


def reader_fuzz(examples_per_reader: int = BENCH_EXAMPLES_PER_READER) -> dict[str, Any]:
    """Run the reader fuzz once; its counts, outcome, time and peak memory."""
    completed, seconds = _child_pytest(FUZZ_MODULE, "SANDBOX_FUZZ_EXAMPLES", examples_per_reader)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "readers": ["trial spec", "policy layer chain", "site node config", "site CSV"],
        "examples_per_reader": examples_per_reader,
        "examples_total": examples_per_reader * READERS,
        "all_ended_as_user_input": completed.returncode == 0,
        "pytest_summary": _summary(completed),
        "seconds": round(seconds, 1),
        "peak_rss_mib": round(peak_kib / 1024, 1),
    }


def cli_fuzz(examples_per_test: int = BENCH_CLI_EXAMPLES_PER_TEST) -> dict[str, Any]:
    """Run the CLI fuzz (mutated specs, damaged bytes, mutated policy layers) once; counts, outcome and time."""
    completed, seconds = _child_pytest(CLI_FUZZ_MODULE, "SANDBOX_CLI_FUZZ_EXAMPLES", examples_per_test)
    return {
        "inputs": ["mutated trial spec", "damaged YAML bytes", "mutated policy layers"],
        "examples_per_test": examples_per_test,
        "examples_total": examples_per_test * CLI_FUZZ_TESTS,
        "all_ended_as_user_input": completed.returncode == 0,
        "pytest_summary": _summary(completed),
        "seconds": round(seconds, 1),
    }
