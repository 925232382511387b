"""What the ServerApp does around a trial when Flower runs it in its own process (``flwr run``, the deployment engine).

In simulation ``sandbox run`` is the coordinator's process: it records the engine's processes,
sends Flower's logs to ``engine.log``, lingers and resumes (:mod:`sandbox.trial_run`). On the
deployment engine the ServerApp runs in a process the SuperLink starts (``flwr-serverapp``), so
the same duties are done here, from the run config ``sandbox run`` submits:

- the ServerApp's process is recorded in ``engine-processes.json`` while the trial runs
  (:class:`~sandbox.engine_processes.EngineWatch`), so ``sandbox run --resume`` refuses a run whose
  coordinator still runs, and goes on with one whose coordinator was killed;
- Flower's log lines go to ``<run folder>/engine.log`` as well as to the process's own output;
- with ``resume-run`` the trial goes on from the run folder's checkpoint (:mod:`sandbox.checkpoint`),
  which must be of the very spec being run (else exit 5);
- metrics stay served ``linger-seconds`` after the trial ends.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from sandbox.checkpoint import Checkpoint, load_checkpoint
from sandbox.engine_log import engine_log
from sandbox.engine_processes import EngineWatch
from trialcore import layout, wire
from trialcore.errors import IntegrityError, Problem

__all__ = ["coordinator_process", "linger_seconds", "resume_checkpoint"]


def resume_checkpoint(run_dir: Path, settings: Mapping[str, object], *, spec_hash: str) -> Checkpoint | None:
    """The checkpoint to go on from when the run config asks to resume (``resume-run``); None otherwise.

    Raises
    ------
    IntegrityError
        Asked to resume a folder without a checkpoint, or with one of another spec.
    """
    if str(settings.get(wire.RESUME_RUN, "")).strip().lower() not in ("1", "true"):
        return None
    checkpoint = load_checkpoint(run_dir)
    if checkpoint is None:
        raise IntegrityError(
            f"Cannot resume {run_dir}",
            [Problem(layout.CHECKPOINT_FILE, "", "no checkpoint", "the checkpoint of an interrupted run")],
        )
    if checkpoint.spec_hash != spec_hash:
        raise IntegrityError(
            f"Cannot resume {run_dir}",
            [Problem(layout.CHECKPOINT_FILE, "spec_hash", checkpoint.spec_hash, f"the spec being run ({spec_hash})")],
        )
    return checkpoint


def linger_seconds(settings: Mapping[str, object]) -> float:
    """``linger-seconds`` of the run config (0 when absent or not a number >= 0)."""
    try:
        value = float(str(settings.get(wire.LINGER_SECONDS, 0)))
    except ValueError:
        return 0.0
    return value if value >= 0 else 0.0


@contextmanager
def coordinator_process(run_dir: Path) -> Iterator[None]:
    """Record this process as the run's coordinator and copy Flower's log to ``engine.log`` while the block runs."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with EngineWatch(run_dir), engine_log(run_dir / layout.ENGINE_LOG_FILE, also_console=True):
        yield
