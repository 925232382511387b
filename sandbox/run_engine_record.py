"""Which engine a run was started on, kept in its run folder so ``sandbox run --resume`` goes on there.

``<run folder>/engine.json`` is written atomically by ``sandbox run`` before the engine starts::

    {"schema": "sandbox-run-engine/1", "engine": "deployment",
     "superlink": "superlink.example.org:9093", "root_certificates": "/abs/pki/ca.pem",
     "time_bounds": {"nodes-connect": 120.0, "first-reply": 300.0, "round-reply": 1800.0, "engine-stop": 30.0}}

``sandbox run --resume RUN_DIR`` takes each part from here unless its flag (``--engine``,
``--superlink``, ``--root-certificates``, ``--timeout NAME=SECONDS``) says otherwise, so a deployment
run killed mid-trial resumes on the deployment engine, against the same SuperLink, with the same
time bounds. Invariant: the file names where the run *started*; a resume on another engine (a flag)
does not rewrite it. It is a setting, not evidence (the audit chain records the bounds the trial ran
under); a run folder without it (an older run) resumes by the spec's ``engine:`` section as before.
"""

from __future__ import annotations

from pathlib import Path

from sandbox.engine_choice import Engine, EngineChoice
from sandbox.schema_file import load_schema_document
from sandbox.time_bounds import TimeBounds
from trialcore import layout
from trialcore.atomic_file import write_json_atomic
from trialcore.errors import BadInputError, IntegrityError, Problem, show_value

SCHEMA = "sandbox-run-engine/1"


def record_engine(run_dir: Path, choice: EngineChoice, bounds: TimeBounds) -> None:
    """Write ``engine.json`` for a new run (atomically; the run folder is made if missing)."""
    write_json_atomic(
        run_dir / layout.ENGINE_CHOICE_FILE,
        {
            "schema": SCHEMA,
            "engine": choice.engine.value,
            "superlink": choice.superlink,
            "root_certificates": str(choice.root_certificates.resolve()) if choice.root_certificates else None,
            "time_bounds": bounds.as_json(),
        },
    )


def recorded_engine(run_dir: Path) -> tuple[EngineChoice, TimeBounds] | None:
    """The engine and time bounds ``run_dir`` was started with; None if it has no ``engine.json``.

    Raises
    ------
    IntegrityError
        The file is there but damaged (exit 5): resuming on a guessed engine could run the trial twice.
    """
    path = run_dir / layout.ENGINE_CHOICE_FILE
    try:
        document = load_schema_document(path, SCHEMA)
        if document is None:
            return None
        ca = document.get("root_certificates")
        superlink = document.get("superlink")
        choice = EngineChoice(
            engine=Engine(document["engine"]),
            superlink=str(superlink) if superlink else None,
            root_certificates=Path(str(ca)) if ca else None,
        )
        bounds = TimeBounds().with_overrides(
            [f"{name}={seconds}" for name, seconds in dict(document["time_bounds"]).items()], source=str(path)
        )
    except (ValueError, KeyError, TypeError, AttributeError, BadInputError) as err:
        raise IntegrityError(
            f"Cannot resume {show_value(str(run_dir))}",
            [Problem(str(path), "", f"a damaged engine record ({type(err).__name__})", SCHEMA)],
        ) from err
    return choice, bounds
