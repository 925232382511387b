"""Graduated enforcement: each step of the ladder, the exclusion window and the incident log."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sandbox.enforcement import Enforcer, Ladder
from sandbox.trial_control import Action, ControlRequest, TrialControl, TrialTerminated

NOW = datetime(2027, 1, 5, 9, 0, tzinfo=UTC)


def enforcer(tmp_path: Path) -> Enforcer:
    ladder = Ladder(
        exclude_after_violations=2,
        exclusion_rounds=2,
        suspend_after_violations=4,
        terminate_after_violations=5,
        reporting_deadline_hours=24,
    )
    return Enforcer(tmp_path, ladder, clock=lambda: NOW)


def test_ladder_warns_excludes_suspends_terminates(tmp_path: Path) -> None:
    """Violations escalate per the policy: warn, exclude the site, suspend the trial, terminate it."""
    e = enforcer(tmp_path)
    steps = [
        e.violation(1, "a", "non-finite", "NaN in 0.weight"),
        e.violation(1, "a", "norm-too-large", "norm 30 > 10"),
        e.violation(2, "b", "wrong-shape", "shape (2,) != (1,)"),
        e.violation(3, "b", "non-finite", "Inf"),
        e.violation(4, "c", "non-finite", "NaN"),
    ]
    assert [(s.site_id, s.action, s.severity) for s in steps if s] == [
        ("a", "warn", "minor"),
        ("a", "exclude", "major"),
        ("b", "warn", "minor"),
        ("b", "suspend", "major"),
        ("c", "terminate", "critical"),
    ]
    incidents = [json.loads(line) for line in (tmp_path / "incidents.jsonl").read_text().splitlines()]
    assert [i["action"] for i in incidents] == ["warn", "exclude", "warn", "suspend", "terminate"]
    assert incidents[0]["reporting_deadline"] == "2027-01-06T09:00:00+00:00"
    assert incidents[1]["rule"] == "update-norm" and incidents[0]["rule"] == "update-integrity"


def test_excluded_site_sits_out_the_next_rounds_only(tmp_path: Path) -> None:
    """An excluded site sits out exactly the policy's exclusion rounds after the violation, then is asked again."""
    e = enforcer(tmp_path)
    e.violation(3, "a", "non-finite", "NaN")
    e.violation(3, "a", "non-finite", "NaN")
    assert [e.excluded("a", r) for r in (4, 5, 6)] == [True, True, False]
    assert not e.excluded("b", 4)


def test_refusals_are_not_violations(tmp_path: Path) -> None:
    """A site refusing to train (its own policy at work) is recorded elsewhere, never escalated."""
    e = enforcer(tmp_path)
    assert e.violation(1, "a", "site-refused", "budget exhausted") is None
    assert not (tmp_path / "incidents.jsonl").exists()


def test_escalated_suspend_waits_and_terminate_stops(tmp_path: Path) -> None:
    """An escalated suspend blocks before the next round until a terminate arrives, which stops the trial."""
    seen: list[ControlRequest] = []
    control = TrialControl(tmp_path, on_change=seen.append, poll_seconds=0.01)
    control.escalate(Action.suspend, "violations reached the suspend threshold")
    control.escalate(Action.terminate, "violations reached the terminate threshold")
    with pytest.raises(TrialTerminated) as stop:
        control.before_round()
    assert stop.value.request.action is Action.terminate
    assert [r.action for r in seen] == [Action.suspend, Action.terminate]


def test_guard_refusals_are_violations_of_their_clause(tmp_path: Path) -> None:
    """A site's guard refusing a message for a policy clause is a violation of that clause; other refusals are not."""
    from sandbox.enforcement import rule_of

    redline = "refused by site de-berlin: purpose-redline: insurance-pricing is a redline (found ...)"
    assert rule_of("site-refused", redline) == "purpose-redline"
    assert (
        rule_of("site-refused", "refused by site gb-leeds: max-rounds: round 11 is outside the trial's 10 rounds")
        == "max-rounds"
    )
    assert (
        rule_of("site-refused", "small-cell: the train part holds fewer records than the minimum cohort of 11") is None
    )
    assert rule_of("site-refused", "Cannot read site config 'x.yaml'") is None
    incident = enforcer(tmp_path).violation(2, "de-berlin", "site-refused", redline)
    assert incident is not None and incident.rule == "purpose-redline" and incident.action == "warn"
