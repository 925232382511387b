"""``make bench``: the in-process reader fuzz (tests/policies/test_reader_fuzz.py) at its full count.

Runs the fuzz module in a child pytest with ``SANDBOX_FUZZ_EXAMPLES`` set, and reports how many
inputs were tried, whether every one ended as user input must, the wall time and the child's peak
resident memory. ``make test`` runs the same module at its smaller default count.
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


def reader_fuzz(examples_per_reader: int = BENCH_EXAMPLES_PER_READER) -> dict[str, Any]:
    """Run the reader fuzz once; its counts, outcome, time and peak memory."""
    env = {**os.environ, "SANDBOX_FUZZ_EXAMPLES": str(examples_per_reader)}
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", FUZZ_MODULE],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    summary = completed.stdout.strip().splitlines()[-1] if completed.stdout.strip() else completed.stderr[-500:]
    return {
        "readers": ["trial spec", "policy layer chain", "site node config", "site CSV"],
        "examples_per_reader": examples_per_reader,
        "examples_total": examples_per_reader * READERS,
        "all_ended_as_user_input": completed.returncode == 0,
        "pytest_summary": summary,
        "seconds": round(seconds, 1),
        "peak_rss_mib": round(peak_kib / 1024, 1),
    }
