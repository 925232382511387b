"""``sandbox validate`` refuses a spec whose meaning depends on which of two keys YAML keeps.

The issue's cases: ``rounds: 10`` then ``rounds: 3`` ran 3 rounds; a second ``trial_id`` replaced
the first; ``rounds: true`` read as 1. Each is now exit 2 naming the file and the field.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sandbox.cli import app


def _validate_text(runner: CliRunner, demo_dir: Path, text: str) -> list[str]:
    (demo_dir / "trial.yaml").write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["validate", "trial.yaml"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("trial.yaml:")]


def _demo_text(demo_dir: Path) -> str:
    return (demo_dir / "demo.yaml").read_text(encoding="utf-8")


def test_rounds_written_twice_is_refused(runner: CliRunner, demo_dir: Path) -> None:
    """``rounds: 10`` followed by ``rounds: 3`` is refused, naming both lines; neither value is chosen."""
    text = _demo_text(demo_dir)
    first = text.splitlines().index("rounds: 10") + 1
    lines = _validate_text(runner, demo_dir, text + "rounds: 3\n")
    last = len(text.splitlines()) + 1
    assert lines == [
        f"trial.yaml: rounds: found key 'rounds' written twice (lines {first} and {last}); "
        "each key once per mapping; a key written twice is refused, never resolved by order"
    ]


def test_second_trial_id_is_refused(runner: CliRunner, demo_dir: Path) -> None:
    """A second ``trial_id`` cannot silently rename the trial."""
    lines = _validate_text(runner, demo_dir, _demo_text(demo_dir) + "trial_id: other-trial\n")
    assert len(lines) == 1 and lines[0].startswith("trial.yaml: trial_id: found key 'trial_id' written twice")


@pytest.mark.parametrize(
    ("field", "value"),
    [("rounds", "true"), ("seed", "false"), ("min_participants", "yes"), ("rounds", "3.0")],
)
def test_a_count_is_a_whole_number_never_a_boolean(runner: CliRunner, demo_dir: Path, field: str, value: str) -> None:
    """``rounds: true`` is refused (it read as 1); so is a float where a count is expected."""
    text = "\n".join(
        f"{field}: {value}" if line.startswith(f"{field}:") else line for line in _demo_text(demo_dir).splitlines()
    )
    if f"\n{field}:" not in "\n" + text:
        text += f"\n{field}: {value}"
    lines = _validate_text(runner, demo_dir, text + "\n")
    assert len(lines) == 1 and lines[0].startswith(f"trial.yaml: {field}: found ")
    assert "valid integer" in lines[0]


def test_noise_multiplier_over_the_accountants_range_names_file_and_field(runner: CliRunner, demo_dir: Path) -> None:
    """A noise multiplier above 1e6 is one line naming the spec and ``privacy.noise_multiplier``, printed once."""
    text = _demo_text(demo_dir).replace("noise_multiplier: 5.508", "noise_multiplier: 2.0e+6")
    lines = _validate_text(runner, demo_dir, text)
    assert lines == [
        "trial.yaml: privacy.noise_multiplier: found 2000000.0; input should be less than or equal to 1000000"
    ]


def test_epsilon_budget_true_is_not_one(runner: CliRunner, demo_dir: Path) -> None:
    """A boolean where a number is expected is refused, not read as 1.0."""
    text = _demo_text(demo_dir).replace("epsilon_budget: 1.5 ", "epsilon_budget: true ")
    lines = _validate_text(runner, demo_dir, text)
    assert len(lines) == 1 and lines[0].startswith("trial.yaml: privacy.epsilon_budget: found True")
