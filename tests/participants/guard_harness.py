"""Drive a site's guard mod directly: build the coordinator's message, run the guard, read the site's chain."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.common.constant import ErrorCode

from participants.site_audit import UNVERIFIED_TRIAL
from participants.site_guard import make_site_guard
from policies import fixed_clock
from tests.coordinator_messages import coordinator_message
from trialcore import wire
from trialcore.canonical_json import canonical_json
from trialcore.spec_loading import load_spec

PINNED = fixed_clock(datetime(2027, 3, 1, 12, 0, tzinfo=UTC))


def spec_document(spec: Path) -> dict[str, Any]:
    """A trial spec as the JSON document the coordinator sends."""
    return load_spec(spec).spec.model_dump(mode="json")


def message(
    document: dict[str, Any],
    *,
    server_round: int = 1,
    spec_hash: str | None = None,
    message_type: str = MessageType.TRAIN,
) -> Message:
    """The coordinator's message carrying ``document`` and its hash (or ``spec_hash`` if given)."""
    spec_json = canonical_json(document).decode()
    config = ConfigRecord(
        {
            wire.TRIAL_ID: document["trial_id"],
            wire.SPEC_HASH: spec_hash or hashlib.sha256(spec_json.encode()).hexdigest(),
            wire.SPEC_JSON: spec_json,
            wire.SERVER_ROUND: server_round,
        }
    )
    return coordinator_message(message_type, RecordDict({wire.CONFIG_RECORD: config}))


def guard_reply(msg: Message, site_config: Path, run_dir: Path) -> tuple[Message, list[str]]:
    """Run the guard of the site whose node config is ``site_config``; return its reply and what reached the handler."""
    reached: list[str] = []

    def handler(m: Message, c: Context) -> Message:
        reached.append(site_config.stem)
        return Message(RecordDict(), reply_to=m)

    context = Context(
        run_id=1, node_id=5, node_config={"site-config": str(site_config)}, state=RecordDict(), run_config={}
    )
    guard = make_site_guard({wire.RUN_DIR: str(run_dir)}, clock=PINNED)
    return guard(msg, context, handler), reached


def site_chain(run_dir: Path, site: str, *, unverified: bool = False) -> list[dict[str, Any]]:
    """The site's own audit chain in ``run_dir`` (empty if it wrote none); with ``unverified``, its
    chain of refusals of messages that named no trial it could verify."""
    folder = run_dir / "sites" / site
    path = (folder / UNVERIFIED_TRIAL if unverified else folder) / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def assert_refused(
    reply: Message, reached: list[str], run_dir: Path, site: str, *fragments: str, unverified: bool = False
) -> None:
    """The guard replied with a precondition error naming every fragment, and audited it in the site's chain
    (the chain of unverified messages with ``unverified``)."""
    assert reply.has_error() and reply.error.code == ErrorCode.MOD_FAILED_PRECONDITION
    assert reached == [], "a refused message never reaches training"
    for fragment in fragments:
        assert fragment in reply.error.reason, reply.error.reason
    chain = site_chain(run_dir, site, unverified=unverified)
    assert chain and chain[-1]["event"] == "refusal"
    assert chain[-1]["payload"]["reason"] in reply.error.reason
