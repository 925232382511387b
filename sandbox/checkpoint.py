"""Where a run stands, saved after every round so a killed run can go on (``sandbox run --resume``).

``<run folder>/checkpoint.json`` is written atomically (temp, fsync, ``os.replace``) when the trial
starts (round 0) and again after every completed round, *after* that round's audit entry. It holds
the spec (its absolute path and hash), the last completed round, the global model after it (Flower's
own protobuf serialisation of the ArrayRecord, base64: the very bytes sites hashed, so a repeated
question after a resume has the same digest and gets the stored answer) and the recorder's state
(:mod:`sandbox.recorder_state`). A run killed between the audit entry and the checkpoint redoes that
round; the sites' question books answer it from what they stored, charging nothing twice.

The checkpoint is no evidence (the audit chain and report.json are): it is removed when the run ends.
It names no engine: whichever engine runs the ServerApp resumes from it the same way.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, RecordDict
from flwr.common.serde import recorddict_from_proto, recorddict_to_proto
from flwr.proto.recorddict_pb2 import RecordDict as ProtoRecordDict
from google.protobuf.message import DecodeError

from sandbox.schema_file import load_schema_document
from trialcore import layout
from trialcore.atomic_file import write_json_atomic
from trialcore.errors import IntegrityError, Problem

SCHEMA = "sandbox-checkpoint/1"
_ARRAYS = "arrays"


@dataclass(frozen=True)
class Checkpoint:
    """A run after ``round`` completed rounds: its global model then, and the recorder's state."""

    spec_path: Path
    spec_hash: str
    round: int
    arrays: ArrayRecord | None
    """The global model after ``round`` (None: no round completed yet, the initial model stands)."""
    recorder: dict[str, Any]


def checkpoint_path(run_dir: Path) -> Path:
    """``<run folder>/checkpoint.json``."""
    return run_dir / layout.CHECKPOINT_FILE


def save_checkpoint(run_dir: Path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` atomically (it replaces the previous one whole)."""
    arrays = None
    if checkpoint.arrays is not None:
        proto = recorddict_to_proto(RecordDict({_ARRAYS: checkpoint.arrays}))
        arrays = base64.b64encode(proto.SerializeToString()).decode("ascii")
    write_json_atomic(
        checkpoint_path(run_dir),
        {
            "schema": SCHEMA,
            "spec_path": str(checkpoint.spec_path),
            "spec_hash": checkpoint.spec_hash,
            "round": checkpoint.round,
            "arrays": arrays,
            "recorder": checkpoint.recorder,
        },
    )


def load_checkpoint(run_dir: Path) -> Checkpoint | None:
    """The run's checkpoint; None if it has none. A damaged one is an integrity error (exit 5)."""
    path = checkpoint_path(run_dir)
    try:
        document = load_schema_document(path, SCHEMA)
        if document is None:
            return None
        arrays = None
        if document["arrays"] is not None:
            proto = ProtoRecordDict()
            proto.ParseFromString(base64.b64decode(document["arrays"], validate=True))
            arrays = recorddict_from_proto(proto).array_records[_ARRAYS]
        return Checkpoint(
            spec_path=Path(str(document["spec_path"])),
            spec_hash=str(document["spec_hash"]),
            round=int(document["round"]),
            arrays=arrays,
            recorder=dict(document["recorder"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError, DecodeError) as err:
        raise IntegrityError(
            f"Cannot resume from '{path}'",
            [Problem(str(path), "", f"a damaged checkpoint ({type(err).__name__})", SCHEMA)],
        ) from err


def remove_checkpoint(run_dir: Path) -> None:
    """Drop the checkpoint once the run has ended (its report is the run's record)."""
    checkpoint_path(run_dir).unlink(missing_ok=True)
