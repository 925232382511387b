"""Verify an audit log: report the first line that breaks the chain, and why.

Each line must be UTF-8 JSON of one object with exactly the fields of
:mod:`trialcore.audit_entry`, in canonical form, with ``seq`` equal to its 0-based index,
``prev_hash`` equal to the previous line's ``hash`` (64 zeros on the first line) and
``hash`` equal to the recomputed one. That catches any edited, removed, reordered or
inserted entry. A last line without its newline, or that does not parse, is reported as
``"torn last line"`` (a crash mid-write, or an edit) — never skipped.

Removing entries from the end, or appending entries with correctly computed hashes, leaves
a chain that is consistent in itself; only a head recorded elsewhere (``expected_head``,
e.g. from report.json) reveals it. See Crosby & Wallach 2009 on why a tamper-evident log
needs its head published outside the log.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from trialcore.audit_entry import (
    ENTRY_FIELDS,
    GENESIS_HASH,
    ChainHead,
    entry_hash,
    field_problems,
)
from trialcore.canonical_json import canonical_json
from trialcore.errors import BadInputError, IntegrityError, Problem

__all__ = ["TORN_LAST_LINE", "VerifyReport", "verify_chain"]

TORN_LAST_LINE = "torn last line"
"""The reason given for a last line without its newline or that does not parse."""

_REORDERED = "an entry was removed, inserted or reordered"


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of :func:`verify_chain`.

    Attributes
    ----------
    path:
        The log as the caller named it.
    ok:
        True when every line is intact and, if given, the expected head matches.
    length:
        Entries verified in sequence before the first bad line (all of them when ok).
    head_hash:
        ``hash`` of entry ``length - 1``; :data:`GENESIS_HASH` when ``length`` is 0.
    first_bad_line:
        1-based line number of the first problem; None when ok.
    reason:
        What is wrong with that line; None when ok.
    intact_through_line:
        Lines 1..N are proven intact (the entries before a bad line, or the prefix that
        matches the expected head); None when ok or when no prefix can be vouched for.
    expected_head:
        The head the chain was checked against, if any.
    """

    path: str
    ok: bool
    length: int
    head_hash: str
    first_bad_line: int | None = None
    reason: str | None = None
    intact_through_line: int | None = None
    expected_head: ChainHead | None = None

    @property
    def head(self) -> ChainHead:
        """The head of the verified part of the chain."""
        return ChainHead(hash=self.head_hash, length=self.length)

    def problem(self) -> Problem | None:
        """The failure as a :class:`Problem`, whose ``line()`` is :meth:`message`; None when ok."""
        if self.ok:
            return None
        tail = ""
        if self.intact_through_line:
            tail = f"; the chain is intact up to line {self.intact_through_line}"
        field = f"line {self.first_bad_line}" if self.first_bad_line is not None else ""
        return Problem(source=self.path, field=field, found="", allowed=f"{self.reason}{tail}")

    def message(self) -> str:
        """One line for people, e.g. ``runs/x/audit.jsonl: line 7: hash mismatch (entry was edited); ...``."""
        problem = self.problem()
        if problem is not None:
            return problem.line()
        return f"{self.path}: ok: {self.length} entries, head {self.head_hash}"

    def as_json(self) -> dict[str, Any]:
        """The report as one JSON object, for ``--format json``."""
        return {
            "file": self.path,
            "ok": self.ok,
            "length": self.length,
            "head_hash": self.head_hash,
            "first_bad_line": self.first_bad_line,
            "reason": self.reason,
            "intact_through_line": self.intact_through_line,
            "expected_head": None if self.expected_head is None else self.expected_head.as_json(),
            "message": self.message(),
        }

    def raise_if_broken(self, summary: str = "Audit chain failed verification") -> None:
        """Raise :class:`IntegrityError` (exit 5) carrying :meth:`problem` unless ok."""
        problem = self.problem()
        if problem is not None:
            raise IntegrityError(summary, [problem])


class _BadLine(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def verify_chain(path: str | os.PathLike[str], *, expected_head: ChainHead | None = None) -> VerifyReport:
    """Check every line of an audit log and, if given, its head against ``expected_head``.

    Parameters
    ----------
    path:
        The JSONL audit log.
    expected_head:
        The head recorded when the log was last closed (e.g. in report.json). Without it,
        entries removed from the end or appended with valid hashes cannot be detected.

    Returns
    -------
    VerifyReport
        ``ok`` or the first bad line and why. An empty log is not ok unless
        ``expected_head.length == 0``.

    Raises
    ------
    BadInputError
        If the file cannot be read (missing, a directory, no permission).
    """
    shown = os.fspath(path)
    try:
        with open(path, "rb") as stream:
            return _verify_stream(shown, stream, expected_head)
    except OSError as err:
        raise BadInputError(
            f"Cannot read audit log {shown!r}",
            [Problem(shown, "", "", f"cannot be read ({err.strerror or err}); give the path of an audit .jsonl file")],
        ) from err


def _verify_stream(shown: str, stream: BinaryIO, expected: ChainHead | None) -> VerifyReport:
    prev_hash = GENESIS_HASH
    length = 0
    hash_at_expected = GENESIS_HASH if expected is not None and expected.length == 0 else None
    for raw, is_last in _lines(stream):
        try:
            prev_hash = _check_line(raw, index=length, prev_hash=prev_hash, is_last=is_last)
        except _BadLine as bad:
            return VerifyReport(
                path=shown,
                ok=False,
                length=length,
                head_hash=prev_hash,
                first_bad_line=length + 1,
                reason=bad.reason,
                intact_through_line=length or None,
                expected_head=expected,
            )
        length += 1
        if expected is not None and length == expected.length:
            hash_at_expected = prev_hash

    def failed(line: int | None, reason: str, intact: int | None = None) -> VerifyReport:
        return VerifyReport(shown, False, length, prev_hash, line, reason, intact or None, expected)

    if expected is None:
        if length == 0:
            return failed(None, "no entries (the file is empty)")
        return VerifyReport(shown, True, length, prev_hash)
    if length < expected.length:
        return failed(
            length + 1,
            f"missing: the log ends after {length} entries but the recorded head has {expected.length}"
            " (entries were removed from the end)",
        )
    if hash_at_expected != expected.hash:
        return failed(
            expected.length or None,
            f"hash does not match the recorded head {expected.hash} (the chain was rewritten)",
        )
    if length > expected.length:
        return failed(
            expected.length + 1,
            f"appended after the recorded head: {length - expected.length} extra entries",
            expected.length,
        )
    return VerifyReport(shown, True, length, prev_hash, expected_head=expected)


def _lines(stream: BinaryIO) -> Iterator[tuple[bytes, bool]]:
    """Yield each raw line (newline kept) with whether it is the last one."""
    current = stream.readline()
    while current:
        following = stream.readline()
        yield current, not following
        current = following


def _check_line(raw: bytes, *, index: int, prev_hash: str, is_last: bool) -> str:
    """Return the line's hash, or raise :class:`_BadLine` with the reason it breaks the chain."""
    if not raw.endswith(b"\n"):
        raise _BadLine(TORN_LAST_LINE)
    body = raw[:-1]
    try:
        text = body.decode("utf-8")
        entry = json.loads(
            text, object_pairs_hook=_object_without_duplicates, parse_constant=_no_constant, parse_float=_finite_float
        )
    except UnicodeDecodeError as err:
        raise _BadLine(TORN_LAST_LINE if is_last else "not valid UTF-8") from err
    except ValueError as err:
        raise _BadLine(TORN_LAST_LINE if is_last else "not valid JSON") from err
    if not isinstance(entry, dict):
        raise _BadLine("not a JSON object")
    keys = set(entry)
    if keys != ENTRY_FIELDS:
        missing = ", ".join(sorted(ENTRY_FIELDS - keys)) or "none"
        extra = ", ".join(sorted(keys - ENTRY_FIELDS)) or "none"
        raise _BadLine(f"wrong fields (missing: {missing}; unexpected: {extra})")
    bad_fields = field_problems(entry)
    if bad_fields:
        name, what = bad_fields[0]
        raise _BadLine(f"{name}: {what}")
    if entry["seq"] != index:
        raise _BadLine(f"seq is {entry['seq']}, expected {index} ({_REORDERED})")
    if entry["prev_hash"] != prev_hash:
        previous = "the genesis hash (64 zeros)" if index == 0 else f"line {index}'s hash"
        raise _BadLine(f"prev_hash is not {previous} ({_REORDERED})")
    if entry_hash(entry) != entry["hash"]:
        raise _BadLine("hash mismatch (entry was edited)")
    if canonical_json(entry) != body:
        raise _BadLine("not in canonical JSON form (entry was edited)")
    return str(entry["hash"])


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} overflows a float")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
