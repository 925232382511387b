"""A run folder records the engine, SuperLink, CA and time bounds it started with; --resume goes on there."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sandbox.engine_choice import Engine, EngineChoice, engine_choice
from sandbox.run_engine_record import record_engine, recorded_engine
from sandbox.time_bounds import TimeBounds
from tests.approved_demo import DemoCopy
from trialcore import layout
from trialcore.errors import IntegrityError
from trialcore.spec_loading import load_spec


def test_the_record_gives_back_the_engine_superlink_ca_and_bounds(tmp_path: Path) -> None:
    """What ``sandbox run`` wrote is what ``--resume`` reads: every part, the CA as an absolute path."""
    run_dir = tmp_path / "runs" / "trial" / "run-1"
    bounds = TimeBounds().with_overrides(["round-reply=600", "first-reply=45.5"])
    record_engine(run_dir, EngineChoice(Engine.deployment, "link.example.org:9093", Path("pki/ca.pem")), bounds)
    found = recorded_engine(run_dir)
    assert found is not None
    choice, read_bounds = found
    assert (choice.engine, choice.superlink) == (Engine.deployment, "link.example.org:9093")
    assert choice.root_certificates == (Path.cwd() / "pki" / "ca.pem").resolve()
    assert read_bounds == bounds
    assert not list(run_dir.glob(".*.tmp")), "written whole"


def test_a_run_folder_without_a_record_has_none(tmp_path: Path) -> None:
    assert recorded_engine(tmp_path) is None


@pytest.mark.parametrize(
    "damage",
    [
        "{not json",
        '{"schema": "sandbox-run-engine/9", "engine": "simulation", "time_bounds": {}}',
        '{"schema": "sandbox-run-engine/1", "engine": "spaceship", "time_bounds": {}}',
        '{"schema": "sandbox-run-engine/1", "engine": "simulation", "time_bounds": {"round-reply": -1}}',
        '{"schema": "sandbox-run-engine/1", "engine": "simulation"}',
    ],
)
def test_a_damaged_record_is_an_integrity_error_naming_the_file(tmp_path: Path, damage: str) -> None:
    """Resuming on a guessed engine could run the trial twice: a damaged record stops the resume (exit 5)."""
    (tmp_path / layout.ENGINE_CHOICE_FILE).write_text(damage)
    with pytest.raises(IntegrityError) as raised:
        recorded_engine(tmp_path)
    assert layout.ENGINE_CHOICE_FILE in raised.value.problems[0].line()


def test_a_resumed_run_takes_the_recorded_engine_over_the_spec_and_flags_over_both(approved_demo: DemoCopy) -> None:
    """Spec says simulation (no section); the run started on a deployment: resume there unless a flag says otherwise."""
    document = yaml.safe_load(approved_demo.spec.read_text())
    assert "engine" not in document
    loaded = load_spec(approved_demo.spec)
    recorded = EngineChoice(Engine.deployment, "link:9093", Path("/pki/ca.pem"))
    kept = engine_choice(loaded, engine=None, superlink=None, root_certificates=None, recorded=recorded)
    assert kept == recorded
    moved = engine_choice(loaded, engine=None, superlink="new-link:9093", root_certificates=None, recorded=recorded)
    assert moved == EngineChoice(Engine.deployment, "new-link:9093", Path("/pki/ca.pem"))
    local = engine_choice(loaded, engine=Engine.simulation, superlink=None, root_certificates=None, recorded=recorded)
    assert local.engine is Engine.simulation
