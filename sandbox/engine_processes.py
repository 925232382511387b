"""The processes a run's engine starts, recorded in its run folder so a killed run's leftovers can be ended.

A coordinator killed with ``kill -9`` leaves its engine's processes behind (Ray's raylet, GCS and
agents lived on for 60-100 s in the issue's trial; a simulated site stuck in a handler lives
until it returns). While a run's engine runs, :class:`EngineWatch` writes
``<run folder>/engine-processes.json``: the coordinator's own process and every process below it
(pid, start time, name), rewritten atomically whenever the set changes. The next command that sees
the run ``interrupted`` (``sandbox run`` of the same trial, ``sandbox run --resume``) ends those still
alive with :func:`end_leftovers`.

Invariants: a process is ended only if its pid *and* its start time (clock ticks since boot, from
``/proc/<pid>/stat``) match the record, so a pid the system reused is never touched; nothing is
ended while the recorded coordinator is alive (the run is still running, not interrupted). Linux
only (``/proc``); elsewhere nothing is recorded and nothing ended.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

from trialcore import layout
from trialcore.atomic_file import write_json_atomic

logger = logging.getLogger(__name__)

_PROC = Path("/proc")
WATCH_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True)
class Process:
    """One process: its pid, its start time (clock ticks since boot) and its name."""

    pid: int
    start_ticks: int
    name: str


def process_of(pid: int) -> Process | None:
    """The process ``pid`` now, or None if there is none, it cannot be read, or it has exited (a zombie)."""
    stat = _stat(pid)
    return None if stat is None else Process(pid, stat[1], stat[2])


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(parent pid, start ticks, name) of the live process ``pid`` from ``/proc/<pid>/stat``."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    name_end = raw.rfind(")")
    name = raw[raw.find("(") + 1 : name_end]
    fields = raw[name_end + 2 :].split()
    try:
        if fields[0] in ("Z", "X"):  # exited, not yet reaped: nothing left to end
            return None
        return int(fields[1]), int(fields[19]), name
    except (IndexError, ValueError):
        return None


def descendants(root: int) -> list[Process]:
    """Every live process below ``root`` (children, their children, ...)."""
    children: dict[int, list[tuple[int, int, str]]] = {}
    try:
        entries = [int(p.name) for p in _PROC.iterdir() if p.name.isdigit()]
    except OSError:
        return []
    for pid in entries:
        stat = _stat(pid)
        if stat is not None:
            children.setdefault(stat[0], []).append((pid, stat[1], stat[2]))
    found: list[Process] = []
    queue = [root]
    while queue:
        for pid, ticks, name in children.get(queue.pop(), []):
            found.append(Process(pid, ticks, name))
            queue.append(pid)
    return found


def alive(recorded: Process) -> bool:
    """True if ``recorded`` still runs: the same pid with the same start time."""
    now = process_of(recorded.pid)
    return now is not None and now.start_ticks == recorded.start_ticks


class EngineWatch:
    """Record, while the block runs, the coordinator's process and every process it starts.

    The record is removed when the block ends: only a coordinator killed inside it leaves one.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / layout.ENGINE_PROCESSES_FILE
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="engine-watch", daemon=True)
        self._seen: dict[int, Process] = {}
        self._me = process_of(os.getpid())

    def __enter__(self) -> EngineWatch:
        if self._me is not None:
            self._write()
            self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.path.unlink(missing_ok=True)  # the coordinator ends here: nothing is left to end after it

    def engine(self) -> list[Process]:
        """The engine's processes seen so far that still run."""
        return [p for p in self._seen.values() if alive(p)]

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL_SECONDS):
            self.poll()

    def poll(self) -> None:
        """Look for new processes below the coordinator; rewrite the record if there are any."""
        new = [p for p in descendants(os.getpid()) if p.pid not in self._seen]
        if new:
            self._seen.update((p.pid, p) for p in new)
            self._write()

    def _write(self) -> None:
        try:
            write_json_atomic(
                self.path,
                {
                    "coordinator": asdict(self._me) if self._me else None,
                    "engine": [asdict(p) for p in self._seen.values()],
                },
            )
        except OSError as err:  # the run goes on; only the clean-up after a kill is lost
            logger.warning("cannot record the engine's processes in %s: %s", self.path, err)


def recorded(run_dir: Path) -> tuple[Process | None, list[Process]]:
    """The coordinator and engine processes a run folder records (None, [] if none or unreadable)."""
    try:
        document = json.loads((run_dir / layout.ENGINE_PROCESSES_FILE).read_bytes())
        coordinator = Process(**document["coordinator"]) if document.get("coordinator") else None
        return coordinator, [Process(**p) for p in document.get("engine", [])]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None, []


def coordinator_alive(run_dir: Path) -> bool:
    """True while the process that ran ``run_dir`` still runs (then its run is running, not interrupted)."""
    coordinator, _ = recorded(run_dir)
    return coordinator is not None and alive(coordinator)


def leftovers(run_dir: Path) -> list[Process]:
    """The recorded engine processes of a run whose coordinator is gone that still run."""
    coordinator, engine = recorded(run_dir)
    if coordinator is not None and alive(coordinator):
        return []
    return [p for p in engine if alive(p)]


def end_leftovers(run_dir: Path, *, grace_seconds: float = 5.0) -> list[Process]:
    """End (SIGTERM, then SIGKILL after ``grace_seconds``) a killed run's surviving engine processes; return them."""
    found = leftovers(run_dir)
    for target in found:
        _signal(target, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while any(alive(p) for p in found) and time.monotonic() < deadline:
        time.sleep(0.1)
    for target in found:
        _signal(target, signal.SIGKILL)
    return found


def end_processes(processes: list[Process]) -> None:
    """SIGKILL each of ``processes`` still alive (the engine's workers stuck after the trial ended)."""
    for target in processes:
        _signal(target, signal.SIGKILL)


def _signal(target: Process, sig: signal.Signals) -> None:
    if not alive(target):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(target.pid, sig)
