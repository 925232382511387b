"""The limits the composed policy of the participants sets on the coordinator, with their defaults.

Each reads one value of the pre-flight's composed policy (None without policies: benchmarks and
unit tests), so the ServerApp asks for a limit by name and never digs in the policy itself.
"""

from __future__ import annotations

from policies import PreflightResult
from sandbox.enforcement import Ladder
from sandbox.trial_recorder import DEFAULT_MIN_COHORT_SIZE


def min_cohort_size(verdict: PreflightResult | None) -> int:
    """The minimum cohort of the participants' composed policy (the largest any sets); 11 without policies."""
    if verdict is None or verdict.combined is None:
        return DEFAULT_MIN_COHORT_SIZE
    return int(verdict.combined.value("data.min_cohort_size"))


def max_update_l2_norm(verdict: PreflightResult | None) -> float | None:
    """The update-norm bound of the participants' composed policy (the smallest any sets); None = unbounded."""
    if verdict is None or verdict.combined is None:
        return None
    bound = verdict.combined.value("privacy.max_update_l2_norm")
    return None if bound is None else float(bound)


def enforcement_ladder(verdict: PreflightResult | None) -> Ladder:
    """The composed policy's escalation thresholds; the defaults without policies."""
    if verdict is None or verdict.combined is None:
        return Ladder()
    policy = verdict.combined
    return Ladder(
        exclude_after_violations=policy.exclude_after_violations,
        exclusion_rounds=policy.exclusion_rounds,
        suspend_after_violations=policy.suspend_after_violations,
        terminate_after_violations=policy.terminate_after_violations,
        reporting_deadline_hours=policy.reporting_deadline_hours,
    )
