"""Deployment: a site is its authenticated node; a node that goes away is recorded, not blamed."""

from __future__ import annotations

import time

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, MetricRecord, RecordDict
from flwr.app.message.message import make_message
from flwr.app.metadata import Metadata
from flwr.common.constant import ErrorCode
from flwr.serverapp.strategy import FedAvg

from sandbox.feature_scaling import Commitment, pooled_feature_scaling
from sandbox.governed_strategy import GovernedStrategy
from sandbox.node_loss import SITE_UNAVAILABLE, require_sites_online
from sandbox.server_app import parse_node_bindings
from sandbox.site_failures import TrialFailed
from tests.adversary.hostile_coordinator import record_attack
from tests.adversary.test_coordinator_attacks import NODES, Grid, Observer, task_identity  # noqa: F401
from trialcore import wire

SITES = ("de-berlin", "fr-lyon", "gb-leeds")


def test_only_a_sites_authenticated_node_can_commit_for_it() -> None:
    """With node bindings, a reply naming de-berlin from any node but de-berlin's registered one is not bound."""
    grid = Grid(
        {
            11: {"site": "de-berlin", "count": 90},  # claims de-berlin, but de-berlin's key is node 12's
            12: {"site": "de-berlin", "count": 95},
            13: {"site": "gb-leeds", "count": 110},
        }
    )
    bindings = parse_node_bindings("de-berlin=12,fr-lyon=14,gb-leeds=13")
    scaling = pooled_feature_scaling(
        grid,  # type: ignore[arg-type]
        ConfigRecord({}),
        num_sites=3,
        num_features=2,
        site_ids=SITES,
        site_nodes=bindings,
    )
    assert scaling.commitments == {12: Commitment("de-berlin", 95), 13: Commitment("gb-leeds", 110)}
    record_attack("a node claims another site's identity in deployment", "not bound: the site is its registered key")


def test_node_bindings_parse_and_empty_means_simulation() -> None:
    """The run config value 'site=node,...' parses to a mapping; an empty value binds nothing (simulation)."""
    assert parse_node_bindings("") is None
    assert parse_node_bindings("a=1,b=22") == {"a": 1, "b": 22}


def _sent_with_ids(strategy: GovernedStrategy, server_round: int) -> dict[str, Message]:
    messages = strategy.configure_train(
        server_round, ArrayRecord({"w": Array(np.zeros(2, dtype=np.float32))}), ConfigRecord({}), Grid({})
    )  # type: ignore[arg-type]
    for message in messages:  # what Flower's grid does when it pushes a message
        message.metadata.__dict__["_message_id"] = message.object_id
    return {NODES[m.metadata.dst_node_id]: m for m in messages}


def _in_place_of(msg: Message) -> Message:
    """The SuperLink's own reply for a node that missed its heartbeats (sent from the SuperLink's node id 1)."""
    metadata = Metadata(
        run_id=1,
        message_id="",
        src_node_id=1,
        dst_node_id=1,
        reply_to_message_id=msg.metadata.message_id,
        group_id=msg.metadata.group_id,
        created_at=time.time(),
        ttl=100,
        message_type=msg.metadata.message_type,
    )
    error = Error(code=ErrorCode.NODE_UNAVAILABLE, reason="Node Unavailable — no heartbeat")
    return make_message(metadata=metadata, error=error)


def _update(msg: Message, site: str) -> Message:
    content = RecordDict(
        {
            "arrays": ArrayRecord({"w": Array(np.ones(2, dtype=np.float32))}),
            "metrics": MetricRecord({"num-examples": 10}),
            wire.SITE_RECORD: ConfigRecord({"site-id": site}),
        }
    )
    return Message(content=content, reply_to=msg)


def test_a_node_that_went_away_is_recorded_as_unavailable_and_the_round_goes_on() -> None:
    """Flower's NODE_UNAVAILABLE reply is attributed to the node the message went to; the others aggregate."""
    observer = Observer()
    strategy = GovernedStrategy(FedAvg(min_train_nodes=2, min_available_nodes=2), observer=observer, min_participants=2)
    strategy.name_nodes(NODES)
    out = _sent_with_ids(strategy, 1)
    replies = [
        _update(out["de-berlin"], "de-berlin"),
        _update(out["fr-lyon"], "fr-lyon"),
        _in_place_of(out["gb-leeds"]),
    ]
    arrays, _ = strategy.aggregate_train(1, replies)
    assert arrays is not None, "the round aggregates from the two sites left"
    assert observer.rejected == [(1, "gb-leeds", SITE_UNAVAILABLE)]
    assert observer.incidents == [], "a crashed node is no policy violation"


def test_too_few_sites_online_halts_the_trial_instead_of_waiting_for_ever() -> None:
    """With fewer connected nodes than min_participants for the bounded wait, the trial fails naming the round."""

    class OneNode:
        def get_node_ids(self) -> list[int]:
            return [11]

    with pytest.raises(TrialFailed) as failed:
        require_sites_online(OneNode(), 2, server_round=2, phase="train", wait_seconds=0.2, poll_seconds=0.05)  # type: ignore[arg-type]
    assert "only 1 site(s) connected" in failed.value.failures[0].cause
    assert failed.value.summary.endswith("in round 2 (train)")
