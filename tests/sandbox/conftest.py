"""Fixtures for the coordinator's tests: a private copy of the demo trial per test.

Each test gets the demo spec and its federation folder copied into its own ``tmp_path`` and
runs there (``monkeypatch.chdir``), so the spec can be named by a relative path, as a user
would type it, and no test can change ``examples/``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

SpecWriter = Callable[..., str]


@pytest.fixture
def runner() -> CliRunner:
    """A runner whose result keeps stdout and stderr apart (``result.stdout``, ``result.stderr``)."""
    return CliRunner()


@pytest.fixture
def demo_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of ``examples/demo.yaml`` and ``examples/demo-sites/``, and the current directory."""
    shutil.copy(EXAMPLES / "demo.yaml", tmp_path / "demo.yaml")
    shutil.copytree(EXAMPLES / "demo-sites", tmp_path / "demo-sites")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def demo_data() -> dict[str, Any]:
    """The demo spec as a plain dict, ready to be changed."""
    data = yaml.safe_load((EXAMPLES / "demo.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture
def write_spec(demo_dir: Path) -> SpecWriter:
    """Write a changed copy of the demo spec beside the copied federation; return its path as typed."""

    def write(change: Callable[[dict[str, Any]], None] | None = None, name: str = "trial.yaml") -> str:
        data = demo_data()
        if change is not None:
            change(data)
        (demo_dir / name).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return name

    return write
