"""The audit entry format: its fields, its canonical JSON and the hash that chains entries.

An audit log is one JSON object per line (JSONL), append-only. Each side of the federation
(the coordinator, every site) keeps its own log; :mod:`trialcore.audit_chain` writes one and
:mod:`trialcore.audit_verify` checks one. This module is the contract between the two, and
the one an independent verifier (a regulator's own script) has to reimplement.

Fields of an entry (exactly these, no others)::

    seq        int     0-based position in the chain; equals the line index
    time       str     UTC, ISO-8601 with microseconds and ``Z``: 2025-03-01T12:00:00.000000Z
    actor      str     who wrote it: "coordinator" or "site:<site-id>"
    event      str     kebab-case: "trial-started", "round-configured", "update-received", ...
    trial_id   str     the trial the log belongs to
    spec_hash  str     64 lowercase hex: SHA-256 of the trial spec in force
    payload    object  event details; a JSON object with finite numbers only
    prev_hash  str     the previous entry's ``hash``; 64 zeros (:data:`GENESIS_HASH`) for seq 0
    hash       str     64 lowercase hex: SHA-256 of the canonical JSON of every other field

Canonical JSON is ``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
allow_nan=False)`` encoded as UTF-8. A line on disk is the canonical JSON of the *whole* entry
(``hash`` included) followed by ``\\n``; its bytes are therefore a function of its content, so
changing any byte of a line changes the entry and is caught.

Hash chaining follows Schneier & Kelsey 1999 ("Secure audit logs to support computer
forensics") and Crosby & Wallach 2009 ("Efficient data structures for tamper-evident
logging"). A chain alone proves only internal consistency: whoever can write the file can
rewrite it whole. The head (hash, length) recorded elsewhere — in report.json, in the other
side's entries — is what pins it. The logs serve the record-keeping duties of the EU AI Act
(Art. 12 record-keeping; Art. 57-59 regulatory sandboxes).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from trialcore.canonical_json import canonical_json
from trialcore.errors import BadInputError, Problem, show_value

__all__ = [
    "ENTRY_FIELDS",
    "GENESIS_HASH",
    "AuditEntry",
    "AuditEntryError",
    "ChainHead",
    "entry_hash",
    "field_problems",
    "format_time",
]

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of the first entry, and the head hash of an empty chain."""

ENTRY_FIELDS: frozenset[str] = frozenset(
    {"seq", "time", "actor", "event", "trial_id", "spec_hash", "payload", "prev_hash", "hash"}
)
"""Every key of an entry; a line with any other key set is invalid."""

_HEX64 = re.compile(r"[0-9a-f]{64}")
_EVENT = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class AuditEntryError(BadInputError):
    """An entry the chain refuses to write: a bad event name, actor or payload (exit 2)."""


@dataclass(frozen=True)
class ChainHead:
    """Where a chain ends: the last entry's hash and the number of entries.

    An empty chain has ``hash == GENESIS_HASH`` and ``length == 0``. Recorded outside the
    log (e.g. in report.json), it lets :func:`trialcore.audit_verify.verify_chain` detect
    entries removed from, or appended to, the end.
    """

    hash: str
    length: int

    def as_json(self) -> dict[str, Any]:
        """``{"hash": ..., "length": ...}``, as stored in report.json."""
        return {"hash": self.hash, "length": self.length}


def entry_hash(entry: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the canonical JSON of every field of ``entry`` except ``hash``."""
    body = {key: value for key, value in entry.items() if key != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def format_time(moment: datetime) -> str:
    """Render an aware datetime as UTC ISO-8601 with microseconds and ``Z``.

    Raises
    ------
    ValueError
        If ``moment`` is naive: a time without a zone cannot be placed on the UTC line.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"audit clock returned a naive datetime {moment!r}; return an aware one (UTC)")
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def field_problems(entry: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Check the type and shape of each field present in an entry (not the chaining).

    Returns
    -------
    list of (field, problem)
        ``("seq", "must be an integer >= 0 (found -1)")`` per bad field, in field order.
    """
    checks: list[tuple[str, bool, str]] = [
        ("seq", _is_count(entry.get("seq")), "an integer >= 0"),
        ("time", _matches(_TIME, entry.get("time")), "UTC ISO-8601 like 2025-03-01T12:00:00.000000Z"),
        ("actor", _is_text(entry.get("actor")), "a non-empty string"),
        ("event", _matches(_EVENT, entry.get("event")), "a kebab-case name like 'round-configured'"),
        ("trial_id", _is_text(entry.get("trial_id")), "a non-empty string"),
        ("spec_hash", _matches(_HEX64, entry.get("spec_hash")), "64 lowercase hex digits"),
        ("payload", isinstance(entry.get("payload"), dict), "a JSON object"),
        ("prev_hash", _matches(_HEX64, entry.get("prev_hash")), "64 lowercase hex digits"),
        ("hash", _matches(_HEX64, entry.get("hash")), "64 lowercase hex digits"),
    ]
    return [
        (name, f"must be {allowed} (found {show_value(entry[name])})")
        for name, ok, allowed in checks
        if name in entry and not ok
    ]


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_text(value: object) -> bool:
    return isinstance(value, str) and value != ""


def _matches(pattern: re.Pattern[str], value: object) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def _payload_problems(value: object, field: str) -> list[Problem]:
    """Every value under ``payload`` that canonical JSON cannot carry exactly."""
    if value is None or isinstance(value, (bool, int, str)):
        if isinstance(value, str) and not _utf8_encodable(value):
            return [Problem("payload", field, show_value(value), "text must be valid Unicode (no lone surrogates)")]
        return []
    if isinstance(value, float):
        if math.isfinite(value):
            return []
        allowed = "finite numbers only; canonical JSON has no NaN or Infinity (record null or a string)"
        return [Problem("payload", field, show_value(value), allowed)]
    if isinstance(value, (list, tuple)):
        return [p for i, item in enumerate(value) for p in _payload_problems(item, f"{field}.{i}")]
    if isinstance(value, Mapping):
        problems: list[Problem] = []
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append(Problem("payload", field, show_value(key), "object keys must be strings"))
            else:
                problems.extend(_payload_problems(item, f"{field}.{key}"))
        return problems
    allowed = "JSON values only: null, bool, int, finite float, str, list, object"
    return [Problem("payload", field, f"{type(value).__name__} {show_value(value)}", allowed)]


def _utf8_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class AuditEntry:
    """One link of an audit chain, exactly as stored on its line.

    Build new entries with :meth:`create`, which validates the fields and computes ``hash``.
    ``payload`` is the JSON round trip of what the caller gave (tuples become lists).
    """

    seq: int
    time: str
    actor: str
    event: str
    trial_id: str
    spec_hash: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def create(
        cls,
        *,
        seq: int,
        time: str,
        actor: str,
        event: str,
        trial_id: str,
        spec_hash: str,
        payload: Mapping[str, Any],
        prev_hash: str,
    ) -> AuditEntry:
        """Validate the fields, normalise the payload through JSON and compute the hash.

        Raises
        ------
        AuditEntryError
            Listing every problem: a bad field, a non-finite float or non-JSON value in the payload.
        """
        if not isinstance(payload, Mapping):
            raise AuditEntryError(
                "Refusing to write an audit entry",
                [Problem("payload", "", show_value(payload), "must be a JSON object (a mapping)")],
            )
        problems = _payload_problems(payload, "payload")
        fields: dict[str, Any] = {
            "seq": seq,
            "time": time,
            "actor": actor,
            "event": event,
            "trial_id": trial_id,
            "spec_hash": spec_hash,
            "payload": {},
            "prev_hash": prev_hash,
        }
        problems[:0] = [Problem("audit entry", name, "", what) for name, what in field_problems(fields)]
        if problems:
            raise AuditEntryError(f"Refusing to write audit entry {event!r}", problems)
        fields["payload"] = json.loads(canonical_json(dict(payload)))
        return cls(hash=entry_hash(fields), **fields)

    def as_json(self) -> dict[str, Any]:
        """Every field, as on the line."""
        return {
            "seq": self.seq,
            "time": self.time,
            "actor": self.actor,
            "event": self.event,
            "trial_id": self.trial_id,
            "spec_hash": self.spec_hash,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    def line(self) -> bytes:
        """The bytes written to the log: canonical JSON of every field and ``\\n``."""
        return canonical_json(self.as_json()) + b"\n"
