"""The site's budget of questions: per trial and round one training and one evaluation, one feature query per trial.

A coordinator learns about a site's records from every reply, so the number of replies is part
of what the site releases. The site keeps, in its own state folder (never in a message), one
file per question it answered: ``<site trial dir>/questions/<kind>-<round>.json`` holding the
digest of the request and the reply it gave (Flower's protobuf serialisation of the reply's
records, base64). Invariants:

* a question (trial, kind, round) is answered at most once: a request with another digest for
  an answered question is refused (clause :data:`trialcore.wire.QUESTION_BUDGET_CLAUSE`);
* the same request again (a coordinator retrying after a crash) gets the very reply stored,
  computed and charged once;
* the request is reserved (``pending``) before the handler runs and the reply stored before it
  leaves the site, so a crash in between leaves a pending question whose reply never left: the
  repeat recomputes it (the privacy ledger charges a round once, see
  :meth:`participants.privacy_ledger.PrivacyLedger.charge`);
* one lock per trial folder serialises questions, so two copies of a message cannot both run.

The digest covers what decides the answer: the kind, the round, the spec hash, the model
arrays and the feature scaling, not the coordinator's audit cross-reference (which a restarted
coordinator writes afresh).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flwr.app import Message, RecordDict
from flwr.common.serde import recorddict_from_proto, recorddict_to_proto
from flwr.proto.recorddict_pb2 import RecordDict as ProtoRecordDict

from trialcore import layout, wire
from trialcore.atomic_file import write_json_atomic
from trialcore.canonical_json import canonical_json
from trialcore.file_lock import exclusive_lock

__all__ = ["Question", "QuestionBook", "request_digest"]

_DIGESTED_CONFIG_KEYS = (
    wire.SPEC_HASH,
    wire.SERVER_ROUND,
    wire.FEATURE_MEAN,
    wire.FEATURE_STD,
    wire.FEATURE_MEDIAN,
    wire.MIN_COHORT_SIZE,
)


@dataclass(frozen=True)
class Question:
    """One question a site was asked: its kind (train, evaluate, query), round (0 for the query) and digest."""

    kind: str
    round: int
    digest: str


def request_digest(msg: Message, *, kind: str, server_round: int) -> str:
    """SHA-256 (hex) of what decides the answer to ``msg``: kind, round, spec hash, scaling, model arrays."""
    config = msg.content.config_records.get(wire.CONFIG_RECORD)
    fields = {key: config.get(key) for key in _DIGESTED_CONFIG_KEYS} if config is not None else {}
    digest = hashlib.sha256(canonical_json({"kind": kind, "round": server_round, "config": fields}))
    for name in sorted(msg.content.array_records):
        record = msg.content.array_records[name]
        digest.update(name.encode("utf-8"))
        for key in record:
            array = record[key]
            digest.update(key.encode("utf-8"))
            digest.update(canonical_json({"shape": list(array.shape), "dtype": array.dtype}))
            digest.update(array.data)
    return digest.hexdigest()


class QuestionBook:
    """The questions one site answered in one trial, under ``folder`` (the site's trial folder)."""

    def __init__(self, folder: Path) -> None:
        self.trial_folder = folder
        self.folder = layout.questions_dir(folder)

    def _path(self, question: Question) -> Path:
        return layout.question_file(self.trial_folder, question.kind, question.round)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the book's exclusive lock (one question at a time per site and trial)."""
        with exclusive_lock(self.folder / ".lock"):
            yield

    def entry(self, question: Question) -> dict[str, str] | None:
        """The stored entry of ``question``'s kind and round (digest, state, reply), or None if never asked."""
        path = self._path(question)
        if not path.exists():
            return None
        document = json.loads(path.read_text(encoding="utf-8"))
        return {str(k): str(v) for k, v in document.items()}

    def reserve(self, question: Question) -> None:
        """Record that ``question`` is being answered (before the handler runs)."""
        write_json_atomic(self._path(question), {"digest": question.digest, "state": "pending"})

    def answer(self, question: Question, reply: Message) -> None:
        """Store ``reply`` as the answer to ``question`` (before it leaves the site)."""
        content = reply.error.reason if reply.has_error() else _encode(reply.content)
        document = {
            "digest": question.digest,
            "state": "refused" if reply.has_error() else "answered",
            "reply": content,
        }
        if reply.has_error():
            document["code"] = str(reply.error.code)
        write_json_atomic(self._path(question), document)

    def answered_count(self) -> int:
        """How many questions of this trial the site has reserved or answered."""
        return len(list(self.folder.glob("*.json"))) if self.folder.exists() else 0


def _encode(content: RecordDict) -> str:
    return base64.b64encode(recorddict_to_proto(content).SerializeToString()).decode("ascii")


def decode_reply(encoded: str) -> RecordDict:
    """The records of a stored reply."""
    proto = ProtoRecordDict()
    proto.ParseFromString(base64.b64decode(encoded))
    return recorddict_from_proto(proto)
