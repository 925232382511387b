"""An exclusive lock held on a lock file, for read-check-write sequences across processes.

Simulated sites run in several worker processes and a real site may serve two messages at once;
a privacy ledger and a site's question book are each read, checked and rewritten under one of
these, so no two writers interleave. The lock is advisory (``flock``) and released when the
``with`` block ends or the process dies.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from trialcore.atomic_file import make_directories


@contextmanager
def exclusive_lock(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_file`` (created, with its folder, if missing)."""
    make_directories(lock_file.parent)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
