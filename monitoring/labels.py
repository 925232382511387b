"""The label vocabulary of the sandbox metrics and the ranges of measured values.

Labels stay low cardinality (house style: never a patient, never a free-text
message): every label value is one of a set fixed when the trial's metrics are
created, and anything else is a :class:`ValueError` raised before a series exists.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

TRIAL_STATES: tuple[str, ...] = (
    "planned",
    "running",
    "suspended",
    "terminated",
    "budget-exhausted",
    "failed",
    "finished",
)
"""States of ``sandbox_trial_state``; the first is the initial state."""

ENDED_STATES: tuple[str, ...] = ("terminated", "budget-exhausted", "failed", "finished")
"""States a trial ends in; the alert rules treat every other state as a trial still under way."""

BUDGETS: tuple[str, ...] = ("trial", "dataset")
"""Values of the ``budget`` label of ``sandbox_privacy_budget_used_ratio``."""

SPLITS: tuple[str, ...] = ("train", "test")
"""Allowed values of the ``split`` label."""

AUDIT_HASH_PATTERN = re.compile(r"[A-Za-z0-9:_+/=-]{1,160}")
"""What an audit head hash may look like (hex or base64 digest, optionally ``algo:`` prefixed)."""


def check_known(kind: str, value: str, known: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``known``; else ValueError naming ``kind`` and the choices."""
    if value not in known:
        raise ValueError(f"unknown {kind} {value!r}; known: {', '.join(known) or '(none)'}")
    return value


def check_number(name: str, value: float, *, low: float = 0.0, high: float = math.inf) -> float:
    """Return ``value`` as float if finite and within ``[low, high]``; else ValueError naming ``name``."""
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise ValueError(f"{name} must be a finite number in [{low}, {high}] (got {value!r})")
    return number


def check_audit_hash(value: str) -> str:
    """Return ``value`` if it looks like a digest (see :data:`AUDIT_HASH_PATTERN`); else ValueError."""
    if not AUDIT_HASH_PATTERN.fullmatch(value):
        raise ValueError(f"audit hash must match {AUDIT_HASH_PATTERN.pattern} (got {value!r})")
    return value


def check_unique(kind: str, values: Sequence[str]) -> tuple[str, ...]:
    """Return ``values`` as a tuple if non-empty strings without duplicates; else ValueError."""
    if len(set(values)) != len(values) or not all(values):
        raise ValueError(f"{kind} values must be unique and non-empty (got {list(values)!r})")
    return tuple(values)
