"""Build the Flower strategy a trial names, with its parameters, for the governed wrapper.

``strategy.params`` is checked against the chosen strategy's own constructor signature before
anything starts (``sandbox validate``, ``check`` and ``run``): a key the strategy does not take, a
key the sandbox sets itself from the spec (the ``min_*_nodes`` and ``fraction_*`` counts), a key
that is not a number (record keys, callbacks), a value of the wrong type or out of range is named,
file and field, with exit 2; the strategy is then built once as a dry run, so whatever its own
constructor refuses is named too, never a TypeError traceback after the engine started.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Callable

from flwr.serverapp.strategy import FedAdam, FedAvg, FedMedian, FedProx, FedTrimmedAvg, FedYogi, Strategy

from trialcore.errors import Problem, SpecError, show_value
from trialcore.spec import TrialSpec
from trialcore.spec_loading import LoadedSpec

STRATEGIES: dict[str, type[FedAvg]] = {
    "FedAvg": FedAvg,
    "FedProx": FedProx,
    "FedAdam": FedAdam,
    "FedYogi": FedYogi,
    "FedTrimmedAvg": FedTrimmedAvg,
    "FedMedian": FedMedian,
}

SET_BY_SANDBOX = ("fraction_train", "fraction_evaluate", "min_train_nodes", "min_evaluate_nodes", "min_available_nodes")
"""Constructor keys the sandbox sets from the spec (every listed site samples; ``min_participants`` replies)."""

_RANGES: dict[str, tuple[Callable[[float], bool], str]] = {
    "proximal_mu": (lambda v: v >= 0, "a number >= 0"),
    "eta": (lambda v: v > 0, "a number > 0"),
    "eta_l": (lambda v: v > 0, "a number > 0"),
    "tau": (lambda v: v > 0, "a number > 0"),
    "beta_1": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "beta_2": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "beta": (lambda v: 0 <= v < 0.5, "a number in [0, 0.5) (the fraction trimmed at each end)"),
}
"""Ranges of the numeric parameters the strategies take (Reddi et al. 2021 for FedOpt; Yin et al. 2018 for the trimmed mean)."""


def settable_params(name: str) -> dict[str, type]:
    """The numeric keyword parameters of strategy ``name`` a spec may set, with their types."""
    signature = inspect.signature(STRATEGIES[name].__init__)
    found: dict[str, type] = {}
    for param in signature.parameters.values():
        if param.name == "self" or param.name in SET_BY_SANDBOX:
            continue
        kind = {"float": float, "int": int, "bool": bool}.get(str(param.annotation))
        if kind is None and param.annotation in (float, int, bool):
            kind = param.annotation
        if kind is not None:
            found[param.name] = kind
    return found


def strategy_problems(spec: TrialSpec, source: str) -> list[Problem]:
    """Every problem of ``strategy.params`` against the chosen strategy's signature (empty when fine)."""
    name = spec.strategy.name
    settable = settable_params(name)
    known = set(inspect.signature(STRATEGIES[name].__init__).parameters) - {"self"}
    listing = ", ".join(sorted(settable)) or "none"
    problems: list[Problem] = []
    for key, value in spec.strategy.params.items():
        field = f"strategy.params.{key}"
        if key in SET_BY_SANDBOX:
            allowed = "set by the sandbox from min_participants and participants; remove it from strategy.params"
            problems.append(Problem(source, field, show_value(value), allowed))
        elif key not in known:
            problems.append(Problem(source, field, f"unknown parameter {show_value(key)}", f"{name} takes: {listing}"))
        elif key not in settable:
            problems.append(
                Problem(source, field, show_value(value), f"not settable from a spec; {name} takes: {listing}")
            )
        else:
            problem = _value_problem(key, value, settable[key])
            if problem is not None:
                problems.append(Problem(source, field, show_value(value), problem))
    if not problems:
        problems = _constructor_problems(spec, source)
    return problems


def _value_problem(key: str, value: object, kind: type) -> str | None:
    if kind is bool:
        return None if isinstance(value, bool) else "true or false"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "a number, not true/false"
    if kind is int and not isinstance(value, int):
        return "a whole number"
    if not math.isfinite(value):
        return "a finite number"
    check, allowed = _RANGES.get(key, (lambda v: True, ""))
    return None if check(float(value)) else allowed


def _constructor_problems(spec: TrialSpec, source: str) -> list[Problem]:
    """Build the strategy once, quietly; name whatever its constructor refuses."""
    flwr_logger = logging.getLogger("flwr")
    level = flwr_logger.level
    flwr_logger.setLevel(logging.ERROR)
    try:
        build_inner_strategy(spec)
    except (TypeError, ValueError) as err:
        return [Problem(source, "strategy.params", show_value(str(err)), f"parameters {spec.strategy.name} accepts")]
    finally:
        flwr_logger.setLevel(level)
    return []


def check_strategy(loaded: LoadedSpec) -> LoadedSpec:
    """``loaded`` if its strategy parameters fit the chosen strategy.

    Raises
    ------
    SpecError
        Naming every bad key of ``strategy.params`` (exit 2).
    """
    problems = strategy_problems(loaded.spec, loaded.shown_as)
    if problems:
        raise SpecError(f"Invalid trial spec '{loaded.shown_as}'", problems)
    return loaded


def build_inner_strategy(spec: TrialSpec) -> Strategy:
    """The named Flower strategy, sampling every listed site and needing ``min_participants`` replies.

    Flower's ``min_*_nodes`` default to 2, so a one-site trial would wait forever: they are set
    from the spec. Flower samples from the nodes connected now: a site whose node went away is
    left out (every site is connected before round 1, :func:`sandbox.feature_scaling.wait_for_nodes`).
    """
    cls = STRATEGIES[spec.strategy.name]
    return cls(
        fraction_train=1.0,
        fraction_evaluate=1.0,
        min_train_nodes=spec.min_participants,
        min_evaluate_nodes=spec.min_participants,
        min_available_nodes=spec.min_participants,
        **spec.strategy.params,  # type: ignore[arg-type]
    )
