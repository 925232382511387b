"""Bad or hostile text in a spec reaches the terminal escaped, and a huge value costs no more than a short one."""

from __future__ import annotations

import time
from pathlib import Path

from typer.testing import CliRunner

from sandbox.cli import app


def _demo_with(demo_dir: Path, old: str, new: str) -> None:
    text = (demo_dir / "demo.yaml").read_text(encoding="utf-8")
    assert old in text
    (demo_dir / "trial.yaml").write_text(text.replace(old, new), encoding="utf-8")


def test_escape_sequences_in_a_title_never_reach_the_terminal(runner: CliRunner, demo_dir: Path) -> None:
    """``validate`` of a valid spec whose title holds a terminal escape prints it escaped."""
    _demo_with(demo_dir, 'title: "Cross-border', 'title: "\\e]0;owned\\a\\e[2J[bold]Cross-border')
    result = runner.invoke(app, ["validate", "trial.yaml"])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "\\x1b]0;owned\\x07\\x1b[2J[bold]Cross-border" in result.stdout.replace("\n", "")


def test_a_long_bad_title_is_one_short_line(runner: CliRunner, demo_dir: Path) -> None:
    """A 900 kB title is refused (over 200 characters) with the value cut to one short line, quickly."""
    _demo_with(demo_dir, 'title: "Cross-border', 'title: "' + "\\e" * 300_000 + "Cross-border")
    started = time.monotonic()
    result = runner.invoke(app, ["validate", "trial.yaml"])
    assert time.monotonic() - started < 10
    assert result.exit_code == 2
    [line] = [line for line in result.stderr.splitlines() if line.startswith("trial.yaml: title:")]
    assert len(line) < 200 and "\x1b" not in line
