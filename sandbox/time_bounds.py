"""How long a trial waits for anything it needs: the one table of time bounds (README: "Time bounds").

Nothing a trial waits for may hang it. Every wait of the coordinator has a bound from here, so a
trial whose engine cannot start, a site that never answers, or a service that never replies ends
within a stated time, ``failed`` with the cause in its run folder, and ``sandbox run`` exits 6 (a
service the trial needs is unreachable). The defaults suit the demo on a loaded 2-core machine and
a deployment over the internet; ``sandbox run --timeout NAME=SECONDS`` or the run config key
``timeout-NAME-seconds`` (``flwr run --run-config``) change one.

Bounds (seconds):

* ``nodes-connect`` (120): until every site's node is connected before the first query;
* ``first-reply`` (300): for every site's answer to the feature query before round 1 (a ClientApp
  starting cold, loading its data and answering once);
* ``round-reply`` (1800): for the replies of each training or evaluation round;
* ``engine-stop`` (30): for the engine to stop after the trial ended (its workers are then ended),
  and for the ServerApp to record the end once the engine failed.

Invariant: a bound is a finite number of seconds > 0; no wait of the coordinator is unbounded.
Other engines (deployment: a SuperLink that never answers) take their bounds from the same table.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from trialcore.errors import BadInputError, Problem, show_value

RUN_CONFIG_PREFIX = "timeout-"
RUN_CONFIG_SUFFIX = "-seconds"
_MAX_SECONDS = 7 * 24 * 3600.0


@dataclass(frozen=True)
class TimeBounds:
    """The coordinator's time bounds, in seconds (see the module docstring for each)."""

    nodes_connect_seconds: float = 120.0
    first_reply_seconds: float = 300.0
    round_reply_seconds: float = 1800.0
    engine_stop_seconds: float = 30.0

    @staticmethod
    def names() -> tuple[str, ...]:
        """The bounds' user-facing names: ``nodes-connect``, ``first-reply``, ``round-reply``, ``engine-stop``."""
        return tuple(_name_of(f.name) for f in fields(TimeBounds))

    def with_overrides(self, assignments: Iterable[str], *, source: str = "--timeout") -> TimeBounds:
        """These bounds with ``NAME=SECONDS`` assignments applied; every bad one named at once (exit 2)."""
        changes: dict[str, float] = {}
        problems: list[Problem] = []
        for assignment in assignments:
            name, _, value = assignment.partition("=")
            problem = _set(changes, name.strip(), value.strip(), source=source, shown=assignment)
            if problem is not None:
                problems.append(problem)
        if problems:
            raise BadInputError("Invalid time bound", problems)
        return replace(self, **changes)

    def from_run_config(self, config: Mapping[str, Any]) -> TimeBounds:
        """These bounds with the run config's ``timeout-NAME-seconds`` keys applied (exit 2 if one is bad)."""
        assignments = []
        for key, value in config.items():
            if key.startswith(RUN_CONFIG_PREFIX) and key.endswith(RUN_CONFIG_SUFFIX):
                name = key.removeprefix(RUN_CONFIG_PREFIX).removesuffix(RUN_CONFIG_SUFFIX)
                assignments.append(f"{name}={value}")
        return self.with_overrides(assignments, source="run config")

    def as_json(self) -> dict[str, float]:
        """``{name: seconds}`` for the audit chain and ``--format json``."""
        return {_name_of(f.name): float(getattr(self, f.name)) for f in fields(self)}


def run_config_key(name: str) -> str:
    """The run config key of bound ``name``: ``timeout-<name>-seconds``."""
    return f"{RUN_CONFIG_PREFIX}{name}{RUN_CONFIG_SUFFIX}"


def _name_of(field_name: str) -> str:
    return field_name.removesuffix("_seconds").replace("_", "-")


def _set(changes: dict[str, float], name: str, value: str, *, source: str, shown: str) -> Problem | None:
    allowed_names = TimeBounds.names()
    if name not in allowed_names:
        return Problem(source, name, show_value(shown), f"NAME=SECONDS with NAME one of {', '.join(allowed_names)}")
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (0 < seconds <= _MAX_SECONDS):
        return Problem(source, name, show_value(value), f"a number of seconds > 0 and <= {_MAX_SECONDS:.0f}")
    changes[name.replace("-", "_") + "_seconds"] = seconds
    return None
