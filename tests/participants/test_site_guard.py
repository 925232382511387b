"""The site's own guard refuses, with a Flower error reply and an entry in its own chain, what its policy forbids."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.app.message.message import make_message
from flwr.app.metadata import Metadata
from flwr.common.constant import ErrorCode

from participants.site_audit import RUN_DIR_KEY
from participants.site_guard import SPEC_JSON_KEY, make_site_guard
from policies import fixed_clock
from policies.audit_entry import canonical_json
from sandbox.spec_loading import load_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PINNED = fixed_clock(datetime(2027, 3, 1, 12, 0, tzinfo=timezone.utc))


def demo_document() -> dict[str, Any]:
    return load_spec(EXAMPLES / "demo.yaml").spec.model_dump(mode="json")


def message(document: dict[str, Any], *, server_round: int = 1, spec_hash: str | None = None,
            message_type: str = MessageType.TRAIN) -> Message:
    spec_json = canonical_json(document).decode()
    config = ConfigRecord({
        "trial-id": document["trial_id"],
        "spec-hash": spec_hash or hashlib.sha256(spec_json.encode()).hexdigest(),
        SPEC_JSON_KEY: spec_json,
        "server-round": server_round,
    })
    metadata = Metadata(run_id=1, message_id="m1", src_node_id=0, dst_node_id=5, reply_to_message_id="",
                        group_id="1", created_at=time.time(), ttl=3600, message_type=message_type)
    return make_message(metadata=metadata, content=RecordDict({"config": config}))


def guard_reply(msg: Message, site: str, run_dir: Path) -> tuple[Message, list[str]]:
    """Run the guard for ``site`` (a demo-sites config); return its reply and what reached the handler."""
    reached: list[str] = []

    def handler(m: Message, c: Context) -> Message:
        reached.append(site)
        return Message(RecordDict(), reply_to=m)

    context = Context(run_id=1, node_id=5, node_config={"site-config": str(EXAMPLES / "demo-sites" / f"{site}.yaml")},
                      state=RecordDict(), run_config={})
    guard = make_site_guard({RUN_DIR_KEY: str(run_dir)}, clock=PINNED)
    return guard(msg, context, handler), reached


def site_chain(run_dir: Path, site: str) -> list[dict[str, Any]]:
    path = run_dir / "sites" / site / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def assert_refused(reply: Message, reached: list[str], run_dir: Path, site: str, *fragments: str) -> None:
    assert reply.has_error() and reply.error.code == ErrorCode.MOD_FAILED_PRECONDITION
    assert reached == [], "a refused message never reaches training"
    for fragment in fragments:
        assert fragment in reply.error.reason
    chain = site_chain(run_dir, site)
    assert chain and chain[-1]["event"] == "refusal"
    assert chain[-1]["payload"]["reason"] in reply.error.reason


def test_permitted_message_reaches_the_handler(tmp_path: Path) -> None:
    """A message carrying the demo spec, within the site's policy, passes the guard untouched."""
    reply, reached = guard_reply(message(demo_document()), "gb-leeds", tmp_path)
    assert not reply.has_error() and reached == ["gb-leeds"]
    assert site_chain(tmp_path, "gb-leeds") == []


def test_redline_purpose_refused_at_the_site(tmp_path: Path) -> None:
    """A message whose trial has a redline purpose is refused at the site, naming the redline, and audited there."""
    document = demo_document() | {"purpose": "insurance-pricing"}
    reply, reached = guard_reply(message(document), "de-berlin", tmp_path)
    assert_refused(reply, reached, tmp_path, "de-berlin", "purpose-redline", "insurance-pricing")


def test_expired_policy_refused_under_pinned_clock(tmp_path: Path) -> None:
    """A site whose own policy expired (2020-12-31) refuses every message, whatever the coordinator thinks."""
    document = demo_document()
    document["participants"].append({"site_id": "fr-expired", "jurisdiction": "FR"})
    reply, reached = guard_reply(message(document), "fr-expired", tmp_path)
    assert_refused(reply, reached, tmp_path, "fr-expired", "validity", "2020-12-31")


@pytest.mark.parametrize(("rounds", "server_round", "fragment"), [(80, 1, "max-rounds"), (10, 11, "round 11 is outside")])
def test_too_many_rounds_refused(tmp_path: Path, rounds: int, server_round: int, fragment: str) -> None:
    """More rounds than the site's policy allows, or a round beyond the trial's own, is refused at the site."""
    reply, reached = guard_reply(message(demo_document() | {"rounds": rounds}, server_round=server_round), "ch-zurich", tmp_path)
    assert_refused(reply, reached, tmp_path, "ch-zurich", fragment)


def test_weaker_noise_than_the_floor_refused(tmp_path: Path) -> None:
    """A trial asking for less DP noise than the site's floor (0.5) is refused at the site."""
    document = demo_document()
    document["privacy"]["noise_multiplier"] = 0.1
    reply, reached = guard_reply(message(document), "fr-lyon", tmp_path)
    assert_refused(reply, reached, tmp_path, "fr-lyon", "noise-floor", "0.1")


def test_spec_edited_after_hashing_refused(tmp_path: Path) -> None:
    """A message whose spec does not match the hash it names (an edited spec) is refused and audited."""
    original = demo_document()
    spec_hash = hashlib.sha256(canonical_json(original)).hexdigest()
    edited = original | {"rounds": 9}
    reply, reached = guard_reply(message(edited, spec_hash=spec_hash), "gb-leeds", tmp_path)
    assert_refused(reply, reached, tmp_path, "gb-leeds", "does not match the spec hash")


def test_feature_sum_query_is_guarded_too(tmp_path: Path) -> None:
    """Even the pre-training query for feature sums is refused when the trial is forbidden."""
    msg = message(demo_document() | {"purpose": "mass-surveillance"}, message_type=MessageType.QUERY)
    reply, reached = guard_reply(msg, "gb-leeds", tmp_path)
    assert_refused(reply, reached, tmp_path, "gb-leeds", "purpose-redline")


def test_site_floor_applies_whatever_the_spec_asks() -> None:
    """Training never uses more local epochs, less noise or a larger clipping norm than the site's policy allows."""
    from participants.client_app import site_floor
    from participants.site_config import load_site_config
    from participants.site_guard import site_policy
    from sandbox.spec import TrialSpec

    policy = site_policy(load_site_config(EXAMPLES / "demo-sites" / "de-berlin.yaml"), PINNED)
    document = demo_document()
    document["local_training"]["epochs"] = 99
    document["privacy"].update(noise_multiplier=0.01, max_grad_norm=50.0)
    epochs, dp = site_floor(TrialSpec.model_validate(document), policy)
    assert epochs == policy.max_local_epochs < 99
    assert dp is not None and dp.noise_multiplier == policy.min_noise_multiplier and dp.max_grad_norm == policy.max_clipping_norm
    document["privacy"].update(noise_multiplier=None, max_grad_norm=None)
    _, dp = site_floor(TrialSpec.model_validate(document), policy)
    assert dp is not None and dp.noise_multiplier == policy.min_noise_multiplier, "a DP floor applies even to a spec without DP"
