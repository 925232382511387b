"""Typed reads from Flower's ConfigRecord and MetricRecord values.

Flower records hold unions (numbers, strings, bytes, lists, arrays); these helpers check the type
of one key and say which key was wrong, so a malformed message fails with a clear reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping


class RecordValueError(ValueError):
    """A record lacks a key or holds a value of the wrong type."""


def as_int(record: Mapping[str, object], key: str) -> int:
    value = record.get(key)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (isinstance(value, float) and not math.isfinite(value))
        or int(value) != value
    ):
        raise RecordValueError(f"record key {key!r} must be an integer (got {type(value).__name__})")
    return int(value)


def as_float(record: Mapping[str, object], key: str) -> float:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordValueError(f"record key {key!r} must be a number (got {type(value).__name__})")
    return float(value)


def as_str(record: Mapping[str, object], key: str) -> str:
    value = record.get(key)
    if not isinstance(value, str):
        raise RecordValueError(f"record key {key!r} must be text (got {type(value).__name__})")
    return value


def as_floats(record: Mapping[str, object], key: str) -> list[float]:
    value = record.get(key)
    if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise RecordValueError(f"record key {key!r} must be a list of numbers (got {type(value).__name__})")
    return [float(v) for v in value]
