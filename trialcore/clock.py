"""Where policy code gets the time, and how relative dates in policy files resolve.

Every time-dependent decision (is a policy expired, has the sandbox plan started)
takes a :class:`Clock`: any zero-argument callable returning an *aware* datetime.
Production uses :func:`system_clock`; tests pin time with :func:`fixed_clock`.

Relative dates
--------------
Date fields of a policy file (``validity.valid_from``, ``validity.valid_until``,
``approvals.sandbox_plan_start``, ``approvals.sandbox_plan_end``) accept, besides an
absolute ISO date (``2026-12-31``), the forms ``today``, ``today-30d`` and
``today+365d``. They are resolved **once, at load time**, against the UTC date of the
injected clock. They exist so the shipped demo federation never expires and tests
read naturally; a real policy should use absolute dates, because a relative window
moves every time the file is loaded.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "fixed_clock", "resolve_relative_date", "system_clock", "utc_today"]

_RELATIVE = re.compile(r"^today(?:\s*([+-])\s*(\d{1,5})d)?$")


class Clock(Protocol):
    """A source of the current time: returns an aware datetime (any zone; read as UTC)."""

    def __call__(self) -> datetime: ...


def system_clock() -> datetime:
    """The wall clock, as an aware UTC datetime."""
    return datetime.now(UTC)


def fixed_clock(at: datetime) -> Clock:
    """A clock pinned at ``at`` (must be aware), for tests and reproducible reports.

    Raises
    ------
    ValueError
        If ``at`` is naive.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"fixed_clock needs an aware datetime, got naive {at.isoformat()}")
    pinned = at.astimezone(UTC)

    def now() -> datetime:
        return pinned

    return now


def utc_today(clock: Clock) -> date:
    """The current UTC calendar date according to ``clock``.

    Raises
    ------
    ValueError
        If the clock returns a naive datetime (a programming error, not user input).
    """
    now = clock()
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"clock returned a naive datetime {now.isoformat()}; clocks must be aware")
    return now.astimezone(UTC).date()


def resolve_relative_date(text: str, today: date) -> date | None:
    """Resolve ``today``, ``today-Nd`` or ``today+Nd`` against ``today``.

    Parameters
    ----------
    text:
        The value as written in the policy file.
    today:
        The UTC date the file is loaded on (from :func:`utc_today`).

    Returns
    -------
    date | None
        The resolved date, or ``None`` if ``text`` is not a relative date (the caller
        then parses it as an ISO date). ``N`` is a whole number of days, at most 99999.
    """
    match = _RELATIVE.match(text.strip())
    if match is None:
        return None
    sign, days = match.groups()
    if days is None:
        return today
    offset = timedelta(days=int(days))
    return today + offset if sign == "+" else today - offset
