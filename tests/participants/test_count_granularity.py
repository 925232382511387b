"""Record counts leave a site rounded down to the granularity its own policy sets (default 10)."""

from __future__ import annotations

from pathlib import Path

from flwr.app import Context, RecordDict

from participants.evaluate_handler import evaluate_handler
from participants.query_handler import query_handler
from participants.site_data import load_site_data
from participants.site_guard import site_policy
from tests.adversary.hostile_coordinator import HostileCoordinator
from tests.approved_demo import DemoCopy
from trialcore import wire


def context(demo: DemoCopy, site: str) -> Context:
    return Context(
        run_id=1,
        node_id=5,
        node_config={wire.SITE_CONFIG: str(demo.site_config(site))},
        state=RecordDict(),
        run_config={},
    )


def test_counts_follow_the_sites_granularity(approved_demo: DemoCopy, tmp_path: Path) -> None:
    """gb-leeds at the default releases multiples of 10; after its policy sets 50, multiples of 50, in every reply."""
    coordinator = HostileCoordinator(approved_demo, tmp_path / "run")
    site = approved_demo.site("gb-leeds")
    data = load_site_data(site)
    assert site_policy(site).count_granularity == 10
    overrides = {wire.RUN_DIR: str(tmp_path / "run")}
    reply = query_handler(
        coordinator.message(message_type="query", server_round=0), context(approved_demo, "gb-leeds"), overrides
    )
    assert reply.content.metric_records[wire.METRICS_RECORD][wire.NUM_EXAMPLES] == data.num_train // 10 * 10

    policy = approved_demo.examples / "policies" / "institutions" / "gb-leeds.yaml"
    policy.write_text(policy.read_text() + "\ndata:\n  count_granularity: 50\n")
    assert site_policy(site).count_granularity == 50
    reply = evaluate_handler(
        coordinator.message(message_type="evaluate", server_round=1), context(approved_demo, "gb-leeds"), overrides
    )
    metrics = reply.content.metric_records[wire.METRICS_RECORD]
    assert metrics[wire.NUM_EXAMPLES] == data.num_test // 50 * 50
    assert metrics[wire.NUM_TRAIN_EXAMPLES] == data.num_train // 50 * 50
