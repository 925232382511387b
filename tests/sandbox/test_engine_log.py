"""Flower's and Ray's log lines (tracebacks included) go to the run folder's engine.log, not the console."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from flwr.supercore.logger import FLOWER_LOGGER  # Flower's "flwr" logger, with its console handler

from sandbox.engine_log import engine_log


def _engine_traceback() -> None:
    try:
        raise RuntimeError("ClientApp raised")
    except RuntimeError:
        FLOWER_LOGGER.exception("An exception was raised when processing a message by RayBackend")
    logging.getLogger("ray").warning("a Ray warning")


def test_engine_lines_go_to_the_file_only(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Inside the block a Flower traceback reaches engine.log and not stderr; afterwards the loggers are as before."""
    flower = FLOWER_LOGGER
    before = (list(flower.handlers), flower.level, flower.propagate)
    path = tmp_path / "run" / "engine.log"
    with engine_log(path):
        _engine_traceback()
    assert capfd.readouterr().err == ""
    text = path.read_text(encoding="utf-8")
    assert "An exception was raised when processing a message by RayBackend" in text
    assert "RuntimeError: ClientApp raised" in text and "a Ray warning" in text
    assert (list(flower.handlers), flower.level, flower.propagate) == before


def test_verbose_keeps_the_console_handlers(tmp_path: Path) -> None:
    """With also_console (sandbox run --verbose) Flower's own console handler stays attached beside the file."""
    flower = FLOWER_LOGGER
    console = list(flower.handlers)
    assert console, "flwr attaches its console handler on import"
    with engine_log(tmp_path / "engine.log", also_console=True):
        assert flower.handlers[: len(console)] == console and len(flower.handlers) == len(console) + 1
        flower.error("visible")
    assert "visible" in (tmp_path / "engine.log").read_text(encoding="utf-8")
    assert flower.handlers == console
