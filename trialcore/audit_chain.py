"""The tamper-evident audit chain one side of the federation appends to.

The coordinator and every site keep their own append-only JSONL log of what they did
(EU AI Act Art. 12, record-keeping). Each entry carries the hash of the one before, so
any edit, removal, reordering or insertion is caught by :func:`trialcore.audit_verify.verify_chain`;
the entry format is defined in :mod:`trialcore.audit_entry`. For the same round, the
coordinator's and a site's entries quote each other's hashes: :meth:`AuditChain.append`
returns the new entry so its ``hash`` can go into the other side's payload.

The chain lives in ``policies``, the lowest layer, because both sides of the federation
need it and ``participants`` must not import ``sandbox``; like the rest of ``policies`` it
imports neither Flower nor torch.

Durability: each entry is one ``write()`` of its whole line (newline included) to a file
opened with ``O_APPEND``, then ``fsync``; creating the log also fsyncs the new directories
and the parent directory. A crash leaves at worst a torn last line, which verification
reports and :meth:`AuditChain.open` refuses to continue from. One process writes a given
log; appends from several threads (the Flower ServerApp runs in a thread) are serialised
by a lock.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trialcore.atomic_file import fsync_dir, make_directories
from trialcore.audit_entry import (
    GENESIS_HASH,
    AuditEntry,
    AuditEntryError,
    ChainHead,
    field_problems,
    format_time,
)
from trialcore.audit_verify import verify_chain
from trialcore.errors import IntegrityError, Problem

__all__ = ["AuditChain", "AuditEntry", "AuditEntryError", "ChainHead", "Clock"]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
"""Returns the current time as an aware datetime; injected in tests for fixed times."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AuditChain:
    """An append-only, hash-chained JSONL audit log kept by one actor for one trial.

    Build it with :meth:`open`. Every entry gets the chain's ``actor``, ``trial_id`` and
    ``spec_hash``; callers give only the event and its payload.
    """

    def __init__(
        self,
        path: Path,
        *,
        actor: str,
        trial_id: str,
        spec_hash: str,
        clock: Clock,
        head: ChainHead,
        size_bytes: int,
    ) -> None:
        self._path = path
        self._actor = actor
        self._trial_id = trial_id
        self._spec_hash = spec_hash
        self._clock = clock
        self._head = head
        self._size_bytes = size_bytes
        self._broken: str | None = None
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        actor: str,
        trial_id: str,
        spec_hash: str,
        clock: Clock | None = None,
    ) -> AuditChain:
        """Open a log to append to: continue an existing, intact one, or start a new one.

        Nothing is written until the first :meth:`append`; a missing or empty file is a new
        chain.

        Parameters
        ----------
        path:
            The JSONL log; missing parent directories are created on the first append.
        actor:
            Who writes: ``"coordinator"`` or ``"site:<site-id>"``.
        trial_id:
            The trial the log belongs to.
        spec_hash:
            Hex SHA-256 (64 lowercase digits) of the trial spec in force.
        clock:
            Returns an aware datetime; defaults to the system clock in UTC.

        Raises
        ------
        IntegrityError
            If the existing log fails verification (exit 5): nothing is appended to a broken chain.
        AuditEntryError
            If ``actor``, ``trial_id`` or ``spec_hash`` is malformed.
        BadInputError
            If the existing log cannot be read.
        """
        file_path = Path(path)
        fixed = field_problems({"actor": actor, "trial_id": trial_id, "spec_hash": spec_hash})
        if fixed:
            problems = [Problem(os.fspath(path), name, "", what) for name, what in fixed]
            raise AuditEntryError(f"Cannot open audit chain {os.fspath(path)!r}", problems)
        head = ChainHead(hash=GENESIS_HASH, length=0)
        size_bytes = file_path.stat().st_size if file_path.exists() else 0
        if size_bytes > 0:
            report = verify_chain(path)
            report.raise_if_broken(f"Refusing to append to a broken audit chain {os.fspath(path)!r}")
            head = report.head
            size_bytes = file_path.stat().st_size
            logger.debug("continuing audit chain %s at length %s", file_path, head.length)
        return cls(
            file_path,
            actor=actor,
            trial_id=trial_id,
            spec_hash=spec_hash,
            clock=clock or _utc_now,
            head=head,
            size_bytes=size_bytes,
        )

    @property
    def path(self) -> Path:
        """The log file."""
        return self._path

    @property
    def head(self) -> ChainHead:
        """Hash and length of the chain as last written; record it (e.g. in report.json)."""
        with self._lock:
            return self._head

    def append(self, event: str, payload: Mapping[str, Any]) -> AuditEntry:
        """Write one entry, durably, and return it (its ``hash`` can go into the other side's log).

        Parameters
        ----------
        event:
            Kebab-case event name, e.g. ``"round-configured"``.
        payload:
            JSON object of details; finite numbers only, string keys only.

        Raises
        ------
        AuditEntryError
            If the event name or payload cannot be written canonically (nothing is written).
        IntegrityError
            If the log changed on disk since this chain last wrote it, or an earlier write
            failed: the chain refuses to continue.
        OSError
            If the write or fsync fails; the chain then refuses further appends.
        """
        with self._lock:
            if self._broken is not None:
                raise IntegrityError(
                    "Refusing to append to a broken audit chain",
                    [Problem(os.fspath(self._path), "", "", self._broken)],
                )
            entry = AuditEntry.create(
                seq=self._head.length,
                time=format_time(self._clock()),
                actor=self._actor,
                event=event,
                trial_id=self._trial_id,
                spec_hash=self._spec_hash,
                payload=payload,
                prev_hash=self._head.hash,
            )
            line = entry.line()
            self._write(line)
            self._size_bytes += len(line)
            self._head = ChainHead(hash=entry.hash, length=entry.seq + 1)
            return entry

    def _write(self, line: bytes) -> None:
        """Append ``line`` with one write and fsync it; the caller holds the lock."""
        creating = self._size_bytes == 0 and not self._path.exists()
        flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        if creating:
            make_directories(self._path.parent)
            flags |= os.O_CREAT
        try:
            fd = os.open(self._path, flags, 0o644)
        except FileNotFoundError as err:
            self._broken = "the log disappeared after it was opened; restore it before appending"
            problem = Problem(os.fspath(self._path), "", "", self._broken)
            raise IntegrityError("Audit log disappeared", [problem]) from err
        try:
            found = os.fstat(fd).st_size
            if found != self._size_bytes:
                self._broken = (
                    f"the log changed on disk since it was opened ({found} bytes, expected {self._size_bytes});"
                    " verify it with 'sandbox audit verify'"
                )
                problem = Problem(os.fspath(self._path), "", "", self._broken)
                raise IntegrityError("Audit log changed on disk", [problem])
            try:
                written = os.write(fd, line)
                if written != len(line):
                    raise OSError(f"short write to audit log: {written} of {len(line)} bytes")
                os.fsync(fd)
            except OSError:
                self._broken = "an earlier write failed; the last line may be torn"
                raise
        finally:
            os.close(fd)
        if creating:
            fsync_dir(self._path.parent)
