"""The site's own guard refuses, with a Flower error reply and an entry in its own chain, what its policy forbids."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from flwr.app import Message, MessageType

from tests.approved_demo import DemoCopy
from tests.participants.guard_harness import PINNED, assert_refused, guard_reply, message, site_chain, spec_document
from trialcore.canonical_json import canonical_json


def demo_document(demo: DemoCopy) -> dict[str, Any]:
    return spec_document(demo.spec)


def reply_of(msg: Message, demo: DemoCopy, site: str, run_dir: Path) -> tuple[Message, list[str]]:
    return guard_reply(msg, demo.site_config(site), run_dir)


def test_permitted_message_reaches_the_handler(approved_demo: DemoCopy, tmp_path: Path) -> None:
    """A message carrying the demo spec, within the site's policy, passes the guard untouched."""
    reply, reached = reply_of(message(demo_document(approved_demo)), approved_demo, "gb-leeds", tmp_path)
    assert not reply.has_error() and reached == ["gb-leeds"]
    assert site_chain(tmp_path, "gb-leeds") == []


def test_redline_purpose_refused_at_the_site(approved_demo: DemoCopy, tmp_path: Path) -> None:
    """A message whose trial has a redline purpose is refused at the site, naming the redline, and audited there."""
    document = demo_document(approved_demo) | {"purpose": "insurance-pricing"}
    reply, reached = reply_of(message(document), approved_demo, "de-berlin", tmp_path)
    assert_refused(reply, reached, tmp_path, "de-berlin", "purpose-redline", "insurance-pricing")


def test_expired_policy_refused_under_pinned_clock(approved_demo: DemoCopy, tmp_path: Path) -> None:
    """A site whose own policy expired (2020-12-31) refuses every message, whatever the coordinator thinks."""
    document = demo_document(approved_demo)
    document["participants"].append({"site_id": "fr-expired", "jurisdiction": "FR"})
    reply, reached = reply_of(message(document), approved_demo, "fr-expired", tmp_path)
    assert_refused(reply, reached, tmp_path, "fr-expired", "validity", "2020-12-31")


@pytest.mark.parametrize(
    ("rounds", "server_round", "fragment"), [(80, 1, "max-rounds"), (10, 11, "round 11 is outside")]
)
def test_too_many_rounds_refused(
    approved_demo: DemoCopy, tmp_path: Path, rounds: int, server_round: int, fragment: str
) -> None:
    """More rounds than the site's policy allows, or a round beyond the trial's own, is refused at the site."""
    msg = message(demo_document(approved_demo) | {"rounds": rounds}, server_round=server_round)
    reply, reached = reply_of(msg, approved_demo, "ch-zurich", tmp_path)
    assert_refused(reply, reached, tmp_path, "ch-zurich", fragment)


def test_weaker_noise_than_the_floor_refused(approved_demo: DemoCopy, tmp_path: Path) -> None:
    """A trial asking for less DP noise than the site's floor (0.5) is refused at the site."""
    document = demo_document(approved_demo)
    document["privacy"]["noise_multiplier"] = 0.1
    reply, reached = reply_of(message(document), approved_demo, "fr-lyon", tmp_path)
    assert_refused(reply, reached, tmp_path, "fr-lyon", "noise-floor", "0.1")


def test_spec_edited_after_hashing_refused(approved_demo: DemoCopy, tmp_path: Path) -> None:
    """A message whose spec does not match the hash it names (an edited spec) is refused and audited
    in the site's chain of unverified messages (it names no trial the site can trust)."""
    original = demo_document(approved_demo)
    spec_hash = hashlib.sha256(canonical_json(original)).hexdigest()
    edited = original | {"rounds": 9}
    reply, reached = reply_of(message(edited, spec_hash=spec_hash), approved_demo, "gb-leeds", tmp_path)
    assert_refused(reply, reached, tmp_path, "gb-leeds", "does not match the spec hash", unverified=True)
    assert site_chain(tmp_path, "gb-leeds") == [], "nothing written to a chain named by the unverified trial id"


def test_feature_sum_query_is_guarded_too(approved_demo: DemoCopy, tmp_path: Path) -> None:
    """Even the pre-training query for feature sums is refused when the trial is forbidden."""
    msg = message(demo_document(approved_demo) | {"purpose": "mass-surveillance"}, message_type=MessageType.QUERY)
    reply, reached = reply_of(msg, approved_demo, "gb-leeds", tmp_path)
    assert_refused(reply, reached, tmp_path, "gb-leeds", "purpose-redline")


def test_site_floor_applies_whatever_the_spec_asks(approved_demo: DemoCopy) -> None:
    """Training never uses more local epochs, less noise or a larger clipping norm than the site's policy allows."""
    from participants.site_config import load_site_config
    from participants.site_floor import site_floor
    from participants.site_guard import site_policy
    from trialcore.spec import TrialSpec

    policy = site_policy(load_site_config(approved_demo.site_config("de-berlin")), PINNED)
    document = demo_document(approved_demo)
    document["local_training"]["epochs"] = 99
    document["privacy"].update(noise_multiplier=0.01, max_grad_norm=50.0)
    epochs, dp = site_floor(TrialSpec.model_validate(document), policy)
    assert epochs == policy.max_local_epochs < 99
    assert (
        dp is not None
        and dp.noise_multiplier == policy.min_noise_multiplier
        and dp.max_grad_norm == policy.max_clipping_norm
    )
    document["privacy"].update(noise_multiplier=None, max_grad_norm=None)
    _, dp = site_floor(TrialSpec.model_validate(document), policy)
    assert dp is not None and dp.noise_multiplier == policy.min_noise_multiplier, (
        "a DP floor applies even to a spec without DP"
    )
