"""Going on with a killed run (``sandbox run --resume RUN_DIR``), and ending what a killed run left running.

A run folder can be resumed only if its coordinator chain is intact (else exit 5) and says the run
was ``interrupted`` (:mod:`sandbox.run_state`: no final entry) while the process that ran it is gone
(else exit 2: it ended, or it still runs). The trial goes on from the last completed round of its
checkpoint (:mod:`sandbox.checkpoint`) with the same global model, in the same folder and chains;
the spec must be the one the run started with (its hash in the chain), and the pre-flight and
consent are checked afresh by the caller. No site is charged twice: every question a site already
answered is answered again from its question book (same digest, same stored reply), and its
privacy ledger charges a round once.

Before a new run of a trial (and before a resume), the leftovers of that trial's interrupted runs
(:mod:`sandbox.engine_processes`) are ended and named. Nothing here names an engine: the checkpoint
and the records are the same whichever engine ran the ServerApp.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sandbox.checkpoint import Checkpoint, load_checkpoint
from sandbox.engine_processes import Process, coordinator_alive, end_leftovers
from sandbox.run_state import INTERRUPTED, run_state
from trialcore import layout
from trialcore.audit_verify import verify_chain
from trialcore.errors import BadInputError, IntegrityError, Problem, show_value


@dataclass(frozen=True)
class ResumePoint:
    """A killed run to go on with: its folder, its spec and where it stands (None: before round 1 completed)."""

    run_dir: Path
    spec_path: Path
    spec_hash: str
    checkpoint: Checkpoint | None

    @property
    def last_completed_round(self) -> int:
        return self.checkpoint.round if self.checkpoint is not None else 0


def resume_point(run_dir: Path) -> ResumePoint:
    """The killed run in ``run_dir``, checked as the module docstring says (exit 2 or 5 if it cannot go on)."""
    shown = show_value(str(run_dir))
    chain = run_dir / layout.AUDIT_FILE
    if not chain.is_file():
        raise BadInputError(
            f"Cannot resume {shown}",
            [Problem("--resume", "", f"{shown} has no {layout.AUDIT_FILE}", "a run folder runs/<trial-id>/<run-id>/")],
        )
    verified = verify_chain(chain)
    if not verified.ok:
        raise IntegrityError(f"Cannot resume {shown}: its audit chain fails verification", [])
    state = run_state(chain)
    if state != INTERRUPTED:
        found = f"the run ended ({state})" if state else "not a coordinator's chain"
        raise BadInputError(f"Cannot resume {shown}", [Problem("--resume", "", found, "an interrupted run")])
    if coordinator_alive(run_dir):
        raise BadInputError(
            f"Cannot resume {shown}",
            [Problem("--resume", "", "the run is still running (its coordinator process is alive)", "a killed run")],
        )
    checkpoint = load_checkpoint(run_dir)
    first = json.loads(chain.read_text(encoding="utf-8").splitlines()[0])
    spec_hash = str(first["spec_hash"])
    if checkpoint is None:
        raise BadInputError(
            f"Cannot resume {shown}",
            [Problem("--resume", "", f"no {layout.CHECKPOINT_FILE} (the run died before round 1)", "start a new run")],
        )
    if checkpoint.spec_hash != spec_hash:
        raise IntegrityError(
            f"Cannot resume {shown}",
            [Problem(layout.CHECKPOINT_FILE, "spec_hash", checkpoint.spec_hash, f"the chain's {spec_hash}")],
        )
    return ResumePoint(run_dir, checkpoint.spec_path, spec_hash, checkpoint)


def check_same_spec(point: ResumePoint, spec_hash: str, shown_spec: str) -> None:
    """Refuse (exit 2) to resume a run with another spec than the one it started with."""
    if spec_hash != point.spec_hash:
        raise BadInputError(
            f"Cannot resume {show_value(str(point.run_dir))} with {show_value(shown_spec)}",
            [Problem(shown_spec, "", f"spec hash {spec_hash}", f"the run's spec (hash {point.spec_hash})")],
        )


def end_interrupted_leftovers(trial_runs: Path) -> dict[Path, list[Process]]:
    """End the surviving engine processes of every interrupted run under ``runs/<trial-id>/``; return them by run."""
    ended: dict[Path, list[Process]] = {}
    if not trial_runs.is_dir():
        return ended
    for run_dir in sorted(p for p in trial_runs.iterdir() if p.is_dir()):
        if not (run_dir / layout.ENGINE_PROCESSES_FILE).is_file():
            continue
        if run_state(run_dir / layout.AUDIT_FILE) not in (INTERRUPTED, None):
            continue
        found = end_leftovers(run_dir)
        if found:
            ended[run_dir] = found
    return ended
