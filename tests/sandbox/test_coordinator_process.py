"""The ServerApp Flower runs in its own process resumes only its own spec's checkpoint, lingers as asked, keeps its log."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from sandbox.checkpoint import Checkpoint, save_checkpoint
from sandbox.coordinator_process import coordinator_process, linger_seconds, resume_checkpoint
from sandbox.engine_processes import coordinator_alive, recorded
from trialcore import layout, wire
from trialcore.errors import IntegrityError


def test_resume_only_when_asked_and_only_from_the_same_spec(tmp_path: Path) -> None:
    """Without resume-run: a new run. With it: the folder's checkpoint, refused (exit 5) if missing or of another spec."""
    assert resume_checkpoint(tmp_path, {}, spec_hash="a" * 64) is None
    asked = {wire.RESUME_RUN: 1}
    with pytest.raises(IntegrityError, match="Cannot resume"):
        resume_checkpoint(tmp_path, asked, spec_hash="a" * 64)
    save_checkpoint(tmp_path, Checkpoint(tmp_path / "spec.yaml", "a" * 64, 1, None, {}))
    with pytest.raises(IntegrityError, match="Cannot resume"):
        resume_checkpoint(tmp_path, asked, spec_hash="b" * 64)
    found = resume_checkpoint(tmp_path, asked, spec_hash="a" * 64)
    assert found is not None and found.round == 1


def test_linger_seconds_from_the_run_config() -> None:
    """linger-seconds as submitted; nothing (or nonsense) lingers not at all."""
    assert linger_seconds({wire.LINGER_SECONDS: 2.5}) == 2.5
    assert linger_seconds({}) == 0.0
    assert linger_seconds({wire.LINGER_SECONDS: "soon"}) == 0.0


def test_the_serverapp_process_is_recorded_and_flowers_log_kept(tmp_path: Path) -> None:
    """While the trial runs the ServerApp's process is the run's recorded coordinator (so --resume waits for it to be
    gone); Flower's log lines land in engine.log; the record goes when the trial ends."""
    run_dir = tmp_path / "run"
    with coordinator_process(run_dir):
        coordinator, _ = recorded(run_dir)
        assert coordinator is not None and coordinator.pid == os.getpid()
        assert coordinator_alive(run_dir)
        logging.getLogger("flwr").warning("a line of Flower's")
    assert "a line of Flower's" in (run_dir / layout.ENGINE_LOG_FILE).read_text()
    assert not (run_dir / layout.ENGINE_PROCESSES_FILE).exists()
