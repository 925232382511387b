"""Site failures: a site that cannot take part, as opposed to one that refuses, fails the trial.

An error reply is a **site failure** when the site says so (its reason starts with
:data:`trialcore.wire.SITE_INTERNAL_ERROR_PREFIX`: it cannot read its node config or data, its data
does not fit the model, its code raised) or when Flower answers in the site's place (any error code
but ``MOD_FAILED_PRECONDITION``: the ClientApp could not be loaded, or raised). A refusal by policy
(small cell, privacy budget, ledger, the site's guard) is not a failure: the trial goes on without it.

A trial ends ``failed`` when a site fails (``sandbox run`` exits 1) or when no round aggregated
(exit 3: every update was refused or rejected). Flower's reasons carry whole tracebacks; only one
line of each, the cause, reaches the audit chain, the report and the console.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from flwr.app import Message
from flwr.common.constant import ErrorCode

from trialcore import wire
from trialcore.errors import ExitCode

FAILED_STATE = "failed"
"""The trial's end state when a site failed or no round aggregated."""
SITE_FAILED = "site-internal-error"
"""Failure kind: a site could not take part (``sandbox run`` exits 1)."""
NOTHING_AGGREGATED = "no-round-aggregated"
"""Failure kind: every round kept the initial model (``sandbox run`` exits 3)."""
SITE_UNREACHABLE = "site-unreachable"
"""Failure kind: a site never connected or never answered within its time bound (exit 6)."""
ENGINE_UNAVAILABLE = "engine-unavailable"
"""Failure kind: the engine (Flower's simulation, Ray) could not start or stopped mid-trial (exit 6)."""
FAILURE_EXIT_CODES = {
    SITE_FAILED: ExitCode.INTERNAL_ERROR,
    NOTHING_AGGREGATED: ExitCode.REFUSED_BY_POLICY,
    SITE_UNREACHABLE: ExitCode.SERVICE_UNAVAILABLE,
    ENGINE_UNAVAILABLE: ExitCode.SERVICE_UNAVAILABLE,
}
"""The exit code of ``sandbox run`` for each failure kind (see :mod:`sandbox.time_bounds` for the bounds)."""

_MAX_CAUSE_CHARS = 300
_SITE_IN_REASON = re.compile(r"^site ([a-z0-9]+(?:-[a-z0-9]+)*): (.*)$", re.DOTALL)
_FLOWER_REASON = re.compile(r"^<class '([^']+)'>:<'(.*)'>$", re.DOTALL)
"""Flower's reason for an exception it caught in the site's place: ``<class 'T'>:<'message'>``."""
_ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class SiteFailure:
    """One error reply of a site that could not take part.

    Attributes
    ----------
    site_id:
        The site the reply names, or ``node-<Flower node id>`` for one that never named itself.
    phase:
        ``query`` (the feature sums before round 1), ``train`` or ``evaluate``.
    server_round:
        The round (0 for the query before round 1).
    cause:
        One line: what went wrong (never a traceback).
    """

    site_id: str
    phase: str
    server_round: int
    cause: str

    def line(self) -> str:
        """``site <id>: <cause>``, as the console shows it."""
        return f"site {self.site_id}: {self.cause}"

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def is_site_failure(reply: Message) -> bool:
    """True for an error reply that is a site failure, not a refusal (see the module docstring)."""
    if not reply.has_error():
        return False
    reason = reply.error.reason or ""
    return reason.startswith(wire.SITE_INTERNAL_ERROR_PREFIX) or reply.error.code != ErrorCode.MOD_FAILED_PRECONDITION


def site_failure(reply: Message, site_id: str, *, phase: str, server_round: int) -> SiteFailure:
    """The failure an error reply reports; a site the reason names wins over ``site_id``."""
    reason = reply.error.reason or f"Flower error code {reply.error.code}, no reason given"
    if reason.startswith(wire.SITE_INTERNAL_ERROR_PREFIX):
        rest = reason.removeprefix(wire.SITE_INTERNAL_ERROR_PREFIX).strip()
        named = _SITE_IN_REASON.match(rest)
        if named is not None:
            return SiteFailure(named.group(1), phase, server_round, cause_line(named.group(2)))
        return SiteFailure(site_id, phase, server_round, cause_line(rest))
    return SiteFailure(site_id, phase, server_round, cause_line(reason))


def cause_line(reason: str) -> str:
    """One line saying what went wrong, from a reason that may hold a whole traceback.

    For Flower's ``<class 'T'>:<'message'>`` the line is the exception a traceback in the message
    ends with (its last unindented line: the root cause, as Ray prints a remote error), else
    ``T: first line of message``.
    Terminal colour codes are dropped; the line is cut to 300 characters.
    """
    text = _ANSI_COLOUR.sub("", reason).strip()
    flower = _FLOWER_REASON.match(text)
    if flower is not None:
        kind, message = flower.group(1).rsplit(".", 1)[-1], flower.group(2)
        lines = [line for line in message.splitlines() if line.strip()]
        unindented = [line.strip() for line in lines if not line[0].isspace() and "Traceback (most recent" not in line]
        if unindented and any(line.lstrip().startswith('File "') for line in lines):  # a traceback's body
            text = unindented[-1]
        else:
            text = f"{kind}: {lines[0].strip() if lines else ''}"
    first = text.splitlines()[0].strip() if text else "no reason given"
    return first if len(first) <= _MAX_CAUSE_CHARS else first[: _MAX_CAUSE_CHARS - 3] + "..."


def distinct(failures: list[SiteFailure]) -> list[SiteFailure]:
    """Each (site, cause) once, first occurrence first: what the console shows."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for failure in failures:
        if (failure.site_id, failure.cause) not in seen:
            seen.add((failure.site_id, failure.cause))
            kept.append(failure)
    return kept


class TrialFailed(Exception):
    """A site could not take part: the trial stops and ends ``failed`` (``kind``: see :data:`FAILURE_EXIT_CODES`)."""

    def __init__(self, failures: list[SiteFailure], *, kind: str = SITE_FAILED) -> None:
        self.failures = failures
        self.kind = kind
        super().__init__(self.summary)

    @property
    def summary(self) -> str:
        """One line: how many sites failed, and when (``3 site error(s) before round 1``)."""
        first = self.failures[0]
        when = "before round 1" if first.server_round == 0 else f"in round {first.server_round} ({first.phase})"
        if self.kind == SITE_UNREACHABLE:
            return f"{len(distinct(self.failures))} site(s) did not answer {when}"
        return f"{len(distinct(self.failures))} site error(s) {when}"
