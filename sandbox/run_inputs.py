"""What ``sandbox run`` checks before anything starts: spec, time bounds, output folder, or the run to resume.

Every problem here is bad input (exit 2) or a damaged run folder (exit 5), found before the engine
starts; nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sandbox.engine_choice import EngineChoice
from sandbox.run_engine_record import recorded_engine
from sandbox.run_resume import ResumePoint, check_same_spec, resume_point
from sandbox.time_bounds import TimeBounds
from trialcore.errors import BadInputError, Problem
from trialcore.spec_loading import LoadedSpec


@dataclass(frozen=True)
class RunInputs:
    """A checked spec, the run's time bounds, and the killed run to go on with (None for a new run)."""

    loaded: LoadedSpec
    bounds: TimeBounds
    resume: ResumePoint | None
    recorded_engine: EngineChoice | None = None
    """The engine the resumed run started on (None: a new run, or a run folder that does not say)."""


def run_inputs(
    spec: str | None,
    *,
    resume: Path | None,
    timeouts: list[str],
    runs_root: Path,
    load: Callable[[str], LoadedSpec],
    check_runs_root: Callable[[Path, str], None],
) -> RunInputs:
    """Check what ``sandbox run`` was given; a resumed run takes its spec from its checkpoint unless given one.

    A resumed run keeps the engine and time bounds it started with (:mod:`sandbox.run_engine_record`);
    ``--timeout`` still overrides a bound.
    """
    point = resume_point(resume) if resume is not None else None
    recorded = recorded_engine(point.run_dir) if point is not None else None
    bounds = (recorded[1] if recorded is not None else TimeBounds()).with_overrides(timeouts)
    spec_path = spec if spec is not None else (str(point.spec_path) if point is not None else None)
    if spec_path is None:
        raise BadInputError("Nothing to run", [Problem("SPEC", "", "nothing", "a trial spec, or --resume RUN_DIR")])
    loaded = load(spec_path)
    if point is not None:
        check_same_spec(point, loaded.spec_hash, loaded.shown_as)
    else:
        check_runs_root(runs_root, loaded.spec.trial_id)
    return RunInputs(loaded, bounds, point, recorded[0] if recorded is not None else None)
