"""A site that cannot take part is told apart from one that refuses, and stops the trial with one line per cause."""

from __future__ import annotations

import pytest
from flwr.app import Error, Message
from flwr.common.constant import ErrorCode

from sandbox.site_failures import TrialFailed, cause_line, distinct, is_site_failure, site_failure
from tests.sandbox.test_governed_screening import governed, refusal, sent, task_identity, update
from trialcore import wire

__all__ = ["task_identity"]  # the autouse fixture Flower messages need

RAY_REASON = (
    "<class 'ray.exceptions.RaySystemError'>:<'System error: shadowed\n"
    "traceback: Traceback (most recent call last):\n"
    '  File "/home/user/trial/policies/__init__.py", line 1, in <module>\n'
    "    raise ImportError('not the project')\n"
    "ImportError: not the project'>"
)


def error(msg: Message, code: int, reason: str) -> Message:
    return Message(Error(code=code, reason=reason), reply_to=msg)


def internal(msg: Message, site: str, cause: str) -> Message:
    return error(msg, ErrorCode.CLIENT_APP_RAISED_EXCEPTION, f"{wire.SITE_INTERNAL_ERROR_PREFIX} site {site}: {cause}")


def test_refusals_are_not_failures_but_internal_errors_and_engine_errors_are() -> None:
    """Policy refusals (small cell, budget, guard) go on; a site-internal error or Flower answering for the site fails."""
    strategy, _ = governed(min_participants=1)
    out = sent(strategy, 1)["de-berlin"]
    assert not is_site_failure(refusal(out))
    assert not is_site_failure(error(out, ErrorCode.MOD_FAILED_PRECONDITION, f"{wire.SMALL_CELL_PREFIX} too few"))
    assert is_site_failure(internal(out, "de-berlin", "its data has 30 features"))
    assert is_site_failure(error(out, ErrorCode.CLIENT_APP_RAISED_EXCEPTION, RAY_REASON))
    assert is_site_failure(error(out, ErrorCode.LOAD_CLIENT_APP_EXCEPTION, "cannot load"))
    assert not is_site_failure(update(out, [0.0, 0.0]))


def test_the_cause_is_one_line_the_root_exception_of_a_traceback() -> None:
    """Flower's reason holds a whole Ray traceback; the cause shown is the exception it ends with."""
    assert cause_line(RAY_REASON) == "ImportError: not the project"
    assert cause_line("<class 'flwr.clientapp.client_app.ClientAppException'>:<'boom\nmore'>") == (
        "ClientAppException: boom"
    )
    task_error = (
        "<class 'ray.exceptions.RayTaskError(Crash)'>:<'\x1b[36mray::ClientAppActor.run()\x1b[39m (pid=1)\n"
        '  File "/x/flwr/simulation/ray_transport/ray_actor.py", line 59, in run\n'
        '  File "/site/code.py", line 11, in train\n'
        '    raise Crash("site code crashed")\n'
        "site_code.Crash: site code crashed'>"
    )
    assert cause_line(task_error) == "site_code.Crash: site code crashed"
    assert cause_line("first line\nsecond line") == "first line"
    assert len(cause_line("x" * 1000)) == 300


def test_a_failure_names_the_site_its_reason_names() -> None:
    """A site-internal error names its site; an engine error is attributed to the node's known site."""
    strategy, _ = governed(min_participants=1)
    out = sent(strategy, 1)["fr-lyon"]
    failure = site_failure(internal(out, "fr-lyon", "cannot read data.csv"), "node-12", phase="train", server_round=1)
    assert failure.line() == "site fr-lyon: cannot read data.csv"
    engine = site_failure(error(out, ErrorCode.UNKNOWN, RAY_REASON), "node-12", phase="query", server_round=0)
    assert (engine.site_id, engine.cause) == ("node-12", "ImportError: not the project")
    assert distinct([failure, failure, engine]) == [failure, engine]


def test_a_site_internal_error_stops_the_trial_after_the_round_is_seen_through() -> None:
    """Train replies with a site-internal error raise TrialFailed naming every failed site; refusals are still counted."""
    strategy, observer = governed(min_participants=1)
    out = sent(strategy, 1)
    replies = [
        update(out["de-berlin"], [1.0, 1.0]),
        internal(out["fr-lyon"], "fr-lyon", "its data has 30 features but the trial's model takes 31"),
        refusal(out["gb-leeds"]),
    ]
    with pytest.raises(TrialFailed) as failed:
        strategy.aggregate_train(1, replies)
    assert [f.line() for f in failed.value.failures] == [
        "site fr-lyon: its data has 30 features but the trial's model takes 31"
    ]
    assert failed.value.summary == "1 site error(s) in round 1 (train)"
    assert observer.rejected == [(1, "node-13", "site-refused")], "a refusal is no failure"


def test_an_engine_error_in_round_1_names_the_site_its_node_named_before_round_1() -> None:
    """A node that named its site in the feature-sum query is named when Flower answers for it in round 1."""
    strategy, _ = governed(min_participants=1)
    strategy.name_nodes({13: "gb-leeds"})
    out = sent(strategy, 1)
    replies = [update(out["de-berlin"], [1.0, 1.0]), error(out["gb-leeds"], ErrorCode.UNKNOWN, RAY_REASON)]
    with pytest.raises(TrialFailed) as failed:
        strategy.aggregate_train(1, replies)
    assert [f.line() for f in failed.value.failures] == ["site gb-leeds: ImportError: not the project"]
