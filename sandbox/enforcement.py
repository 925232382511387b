"""Graduated enforcement at aggregation: warn, exclude the site, suspend the trial, terminate it.

Every update the governed strategy rejects for its content (``non-finite``, ``wrong-shape``,
``norm-too-large``) or for claims it cannot check (``site-identity``, ``count-mismatch``) is a
violation of the site's obligations under the composed policy. A site's guard refusing a
message for a policy clause is a violation **by the trial** (the coordinator asked for what the
site's policy forbids): it counts towards the trial's suspension and termination, never towards
the refusing site's exclusion; the incident names the site that reported it
(``against: "trial"``). The
policy's ``enforcement`` section sets the ladder (smaller numbers are stricter):

* a site's ``exclude_after_violations``-th violation excludes it for the next ``exclusion_rounds``
  rounds (it is sent no messages), earlier ones are warnings;
* the trial's ``suspend_after_violations``-th violation suspends the trial until a regulator
  resumes it (``sandbox resume``); its ``terminate_after_violations``-th terminates it.

Each violation is an incident record (one JSON line in ``incidents.jsonl`` of the run folder:
time, round, site, rule, severity, action taken and the reporting deadline the policy sets),
written append + fsync before the action takes effect. Reporting obligations: AI Act Art. 73
(serious incidents); the deadline is the policy's ``reporting_deadline_hours``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sandbox.update_screening import (
    COUNT_MISMATCH,
    NON_FINITE,
    NORM_TOO_LARGE,
    SITE_IDENTITY,
    SITE_REFUSED,
    WRONG_SHAPE,
)

INCIDENTS_FILE = "incidents.jsonl"

RULE_OF_REASON = {
    NON_FINITE: "update-integrity",
    WRONG_SHAPE: "update-integrity",
    COUNT_MISMATCH: "update-integrity",
    NORM_TOO_LARGE: "update-norm",
    SITE_IDENTITY: "site-identity",
}
"""Which policy rule a rejected update breaks, by rejection reason."""
ENFORCEMENT_RULES = tuple(sorted(set(RULE_OF_REASON.values())))
_GUARD_REFUSAL = re.compile(r"^refused by site [a-z0-9-]+: ([a-z-]+):")
"""A site guard's refusal names the policy clause the message broke (``participants.site_guard``)."""


def rule_of(reason: str, detail: str) -> str | None:
    """The policy rule a rejection breaks, or None when it is no violation.

    A site's guard refusing a message for a policy clause is a violation of that clause by the
    trial; a site declining for other reasons (unreadable data, no approval key yet, a small cell)
    is the site's own business, not a violation.
    """
    if reason == SITE_REFUSED:
        match = _GUARD_REFUSAL.match(detail)
        return match.group(1) if match else None
    return RULE_OF_REASON.get(reason)


@dataclass(frozen=True)
class Ladder:
    """The escalation thresholds of the composed policy (counts of violations, rounds, hours)."""

    exclude_after_violations: int = 4
    exclusion_rounds: int = 2
    suspend_after_violations: int = 6
    terminate_after_violations: int = 8
    reporting_deadline_hours: int = 72


@dataclass(frozen=True)
class Incident:
    """One violation and what was done about it."""

    time: str
    round: int
    site_id: str
    rule: str
    severity: str
    action: str
    detail: str
    reporting_deadline: str
    against: str = "site"
    """Whose violation: ``site`` (its update) or ``trial`` (a site's guard refused what the trial asked)."""


class Enforcer:
    """Counts violations per site and per trial, decides the action, and keeps the incident log.

    Parameters
    ----------
    run_dir:
        Where ``incidents.jsonl`` is appended.
    ladder:
        Thresholds from the composed policy.
    clock:
        Returns an aware UTC datetime (injectable for tests).
    """

    def __init__(self, run_dir: Path, ladder: Ladder, *, clock: Callable[[], datetime] | None = None) -> None:
        self.path = run_dir / INCIDENTS_FILE
        self.ladder = ladder
        self.clock = clock or (lambda: datetime.now(UTC))
        self.site_violations: dict[str, int] = {}
        self.trial_violations = 0
        self._exclusions: dict[str, tuple[int, int]] = {}
        """Site -> (round of the excluding violation, last round it sits out)."""

    def violation(self, server_round: int, site_id: str, reason: str, detail: str) -> Incident | None:
        """Record a rejected update; return its incident, or None if the reason is not a violation."""
        rule = rule_of(reason, detail)
        if rule is None:
            return None
        against = "trial" if reason == SITE_REFUSED else "site"
        if against == "site":
            self.site_violations[site_id] = self.site_violations.get(site_id, 0) + 1
        self.trial_violations += 1
        ladder = self.ladder
        if self.trial_violations >= ladder.terminate_after_violations:
            action, severity = "terminate", "critical"
        elif self.trial_violations >= ladder.suspend_after_violations:
            action, severity = "suspend", "major"
        elif against == "site" and self.site_violations[site_id] >= ladder.exclude_after_violations:
            action, severity = "exclude", "major"
            self._exclusions[site_id] = (server_round, server_round + ladder.exclusion_rounds)
        else:
            action, severity = "warn", "minor"
        now = self.clock()
        incident = Incident(
            time=now.isoformat(),
            round=server_round,
            site_id=site_id,
            rule=rule,
            severity=severity,
            action=action,
            detail=detail,
            reporting_deadline=(now + timedelta(hours=ladder.reporting_deadline_hours)).isoformat(),
            against=against,
        )
        self._append(incident)
        return incident

    def replay(self, *, until_round: int) -> None:
        """Count again the incidents of ``incidents.jsonl`` up to ``until_round`` (a resumed run).

        Incidents of a round the killed run did not complete are not counted: that round is run again.
        """
        if not self.path.is_file():
            return
        for line in self.path.read_text(encoding="utf-8").splitlines():
            incident = json.loads(line) if line.strip() else None
            if not isinstance(incident, dict) or int(incident.get("round", 0)) > until_round:
                continue
            site_id = str(incident["site_id"])
            if incident.get("against") == "site":
                self.site_violations[site_id] = self.site_violations.get(site_id, 0) + 1
            self.trial_violations += 1
            if incident.get("action") == "exclude":
                since = int(incident["round"])
                self._exclusions[site_id] = (since, since + self.ladder.exclusion_rounds)

    def excluded(self, site_id: str, server_round: int) -> bool:
        """True while ``site_id`` sits out ``server_round``: the rounds after the excluding violation's."""
        since, until = self._exclusions.get(site_id, (0, 0))
        return since < server_round <= until

    def _append(self, incident: Incident) -> None:
        line = json.dumps(asdict(incident), sort_keys=True, ensure_ascii=False) + "\n"
        with open(self.path, "ab") as handle:
            handle.write(line.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
