"""Every wait of the coordinator has a stated bound, set from one table; a stopped engine ends a wait at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

import pytest
from flwr.app import Message

from sandbox.bounded_grid import BoundedGrid, EngineStopped
from sandbox.site_failures import ENGINE_UNAVAILABLE, FAILURE_EXIT_CODES, SITE_UNREACHABLE
from sandbox.time_bounds import TimeBounds, run_config_key
from trialcore.errors import BadInputError, ExitCode


def test_defaults_are_the_stated_bounds() -> None:
    """The README's table: nodes-connect 120 s, first-reply 300 s, round-reply 1800 s, engine-stop 30 s."""
    assert TimeBounds().as_json() == {
        "nodes-connect": 120.0,
        "first-reply": 300.0,
        "round-reply": 1800.0,
        "engine-stop": 30.0,
    }


def test_a_bound_is_set_by_name_on_the_command_line_or_in_the_run_config() -> None:
    """``--timeout first-reply=5`` and the run config key ``timeout-first-reply-seconds`` set the same bound."""
    assert TimeBounds().with_overrides(["first-reply=5", "engine-stop=2.5"]).first_reply_seconds == 5.0
    from_config = TimeBounds().from_run_config({run_config_key("round-reply"): 60, "num-server-rounds": 3})
    assert from_config.round_reply_seconds == 60.0 and from_config.first_reply_seconds == 300.0


@pytest.mark.parametrize(
    ("assignment", "field"),
    [
        ("first-reply=0", "first-reply"),
        ("first-reply=-1", "first-reply"),
        ("round-reply=nan", "round-reply"),
        ("round-reply=inf", "round-reply"),
        ("engine-stop=true", "engine-stop"),
        ("forever=5", "forever"),
        ("first-reply", "first-reply"),
        ("nodes-connect=1e9", "nodes-connect"),
    ],
)
def test_a_bad_bound_is_bad_input_naming_it(assignment: str, field: str) -> None:
    """No bound can be switched off: zero, negative, NaN, infinite, huge, unknown or missing seconds are exit 2."""
    with pytest.raises(BadInputError) as caught:
        TimeBounds().with_overrides([assignment])
    (problem,) = caught.value.problems
    assert problem.source == "--timeout" and problem.field == field


def test_each_unanswered_wait_exits_6() -> None:
    """A site that never answers and an engine that cannot start both end the run with exit 6."""
    assert (
        FAILURE_EXIT_CODES[SITE_UNREACHABLE] == FAILURE_EXIT_CODES[ENGINE_UNAVAILABLE] == ExitCode.SERVICE_UNAVAILABLE
    )


class _SilentGrid:
    """Accepts messages and never delivers a reply."""

    def push_messages(self, messages: Iterable[Message]) -> list[str]:
        return ["m1", "m2"]

    def pull_messages(self, message_ids: Iterable[str]) -> list[Message]:
        return []


def test_a_stopped_engine_ends_the_wait_at_once() -> None:
    """The ServerApp waiting for replies stops within a poll of the engine stopping, not at its timeout."""
    stopped = threading.Event()
    grid = BoundedGrid(_SilentGrid(), stopped)  # type: ignore[arg-type]
    threading.Timer(0.3, stopped.set).start()
    started = time.monotonic()
    with pytest.raises(EngineStopped):
        grid.send_and_receive([], timeout=600)
    assert time.monotonic() - started < 5


def test_a_wait_ends_at_its_bound() -> None:
    """With no reply and a running engine, the wait returns what came (nothing) at its timeout."""
    grid = BoundedGrid(_SilentGrid(), threading.Event())  # type: ignore[arg-type]
    started = time.monotonic()
    assert list(grid.send_and_receive([], timeout=0.5)) == []
    assert 0.5 <= time.monotonic() - started < 5


def test_pyproject_declares_every_bound_as_a_run_config_key_with_its_default() -> None:
    """``flwr run`` refuses run config keys the app does not declare: a deployment run passes every bound."""
    import tomllib
    from pathlib import Path

    declared = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["tool"]["flwr"][
        "app"
    ]["config"]
    assert {name: declared[run_config_key(name)] for name in TimeBounds.names()} == TimeBounds().as_json()
