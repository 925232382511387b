"""``strategy.params`` is checked against the chosen Flower strategy's own signature before anything starts.

Unknown, conflicting (set by the sandbox) and out-of-range keys used to pass ``validate`` and
``check`` and end ``run`` in a TypeError traceback with a partial run folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sandbox.cli import app
from sandbox.strategy_choice import settable_params


def _strategy(name: str, **params: Any) -> Any:
    def change(data: dict[str, Any]) -> None:
        data["strategy"] = {"name": name, "params": params}

    return change


def _problem_lines(runner: CliRunner, command: str, spec: str) -> list[str]:
    result = runner.invoke(app, [command, spec])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return [line for line in result.stderr.splitlines() if line.startswith(f"{spec}:")]


CASES = [
    pytest.param(
        _strategy("FedAvg", momentum=0.9),
        "trial.yaml: strategy.params.momentum: found unknown parameter 'momentum'; FedAvg takes: none",
        id="unknown-key",
    ),
    pytest.param(
        _strategy("FedProx", min_train_nodes=1, proximal_mu=0.1),
        "trial.yaml: strategy: found {'name': 'FedProx', 'params': {'min_train_nodes': 1, 'proximal_mu': 0.1}}; "
        "strategy parameters ['min_train_nodes'] are set by the sandbox from the spec, not by params",
        id="conflicting-key",
    ),
    pytest.param(
        _strategy("FedTrimmedAvg", beta=0.7),
        "trial.yaml: strategy: found {'name': 'FedTrimmedAvg', 'params': {'beta': 0.7}}; "
        "fedTrimmedAvg parameter beta must lie in [0.05, 0.45] (got 0.7)",
        id="out-of-range",
    ),
    pytest.param(
        _strategy("FedAdam", eta=True),
        "trial.yaml: strategy.params.eta: found True; a number, not true/false",
        id="boolean-for-number",
    ),
    pytest.param(
        _strategy("FedYogi", weighted_by_key=1),
        "trial.yaml: strategy.params.weighted_by_key: found 1; not settable from a spec; "
        "FedYogi takes: beta_1, beta_2, eta, eta_l, tau",
        id="not-settable",
    ),
]


@pytest.mark.parametrize(("change", "expected"), CASES)
@pytest.mark.parametrize("command", ["validate", "check"])
def test_bad_strategy_params_are_named_at_validate_and_check(
    runner: CliRunner, write_spec: Any, command: str, change: Any, expected: str
) -> None:
    """Each bad key is one line naming file and field, exit 2, before any pre-flight or engine."""
    assert _problem_lines(runner, command, write_spec(change)) == [expected]


def test_bad_strategy_params_stop_run_before_the_engine(runner: CliRunner, write_spec: Any, demo_dir: Path) -> None:
    """``sandbox run`` refuses the same spec with exit 2 and leaves no run folder."""
    spec = write_spec(_strategy("FedProx", mu=0.1))
    lines = _problem_lines(runner, "run", spec)
    assert lines == ["trial.yaml: strategy.params.mu: found unknown parameter 'mu'; FedProx takes: proximal_mu"]
    assert not (demo_dir / "runs").exists()


def test_good_strategy_params_validate(runner: CliRunner, write_spec: Any) -> None:
    """Parameters the strategy takes, in range, pass ``validate``."""
    result = runner.invoke(app, ["validate", write_spec(_strategy("FedAdam", eta=0.05, beta_1=0.8, tau=1))])
    assert result.exit_code == 0, result.output


def test_settable_params_come_from_flowers_signature() -> None:
    """The keys a spec may set are read from the installed Flower's constructors, not a copied list."""
    assert settable_params("FedProx") == {"proximal_mu": float}
    assert settable_params("FedTrimmedAvg") == {"beta": float}
    assert settable_params("FedAvg") == {}


def test_runs_root_naming_a_file_is_bad_input_before_the_engine(
    runner: CliRunner, write_spec: Any, demo_dir: Path
) -> None:
    """``--runs-root`` naming a file is exit 2 naming the option, found before anything starts."""
    (demo_dir / "not-a-folder").write_text("x", encoding="utf-8")
    result = runner.invoke(app, ["run", write_spec(), "--runs-root", "not-a-folder"])
    assert result.exit_code == 2, result.output
    assert "--runs-root: found 'not-a-folder' is a file, not a folder" in result.stderr
    assert "Traceback" not in result.output
