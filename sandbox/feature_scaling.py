"""Federation-wide feature standardisation, computed from the sites' aggregate sums before round 1.

Each site replies to one Flower ``query`` message with the record count, per-feature sum and sum
of squares of its train part (never records). The coordinator pools them into the mean and
standard deviation every site then uses, so all sites scale features identically even though
their data are non-IID.
"""

from __future__ import annotations

import logging
import math
import time

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from participants.record_values import as_floats, as_int, as_str
from sandbox.site_failures import TrialFailed, is_site_failure, site_failure
from trialcore import wire

logger = logging.getLogger(__name__)


def wait_for_nodes(grid: Grid, count: int, *, timeout_seconds: float = 120.0) -> list[int]:
    """Node ids once ``count`` nodes are connected (Flower's list can be empty at first)."""
    deadline = time.monotonic() + timeout_seconds
    while len(nodes := list(grid.get_node_ids())) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(nodes)} of {count} sites connected within {timeout_seconds:.0f} s")
        time.sleep(0.2)
    return nodes


def pooled_feature_scaling(
    grid: Grid,
    config: ConfigRecord,
    *,
    num_sites: int,
    num_features: int,
    timeout_seconds: float = 600.0,
    named: dict[int, str] | None = None,
) -> tuple[list[float], list[float]]:
    """Pooled (mean, standard deviation) per feature over every replying site's train part.

    ``config`` is the trial's config record (trial id, spec hash, ``min-cohort-size``). A site
    that refuses is left out; one that cannot take part fails the trial before round 1
    (:class:`~sandbox.site_failures.TrialFailed`, raised once every site has replied). ``named``,
    if given, is filled with the site id each replying node named (so that a later error reply,
    which names no site, can be attributed).
    """
    nodes = wait_for_nodes(grid, num_sites)
    record = RecordDict({"config": config})
    messages = [Message(content=record, message_type=MessageType.QUERY, dst_node_id=node) for node in nodes]
    count = 0
    sums = [0.0] * num_features
    squares = [0.0] * num_features
    replies = list(grid.send_and_receive(messages, timeout=timeout_seconds))
    failures = [
        site_failure(reply, f"node-{reply.metadata.src_node_id}", phase="query", server_round=0)
        for reply in replies
        if is_site_failure(reply)
    ]
    if failures:
        raise TrialFailed(failures)
    for reply in replies:
        if reply.has_error():
            logger.warning("a site gave no feature sums: %s", reply.error.reason)
            continue
        site = reply.content.config_records.get(wire.SITE_RECORD)
        if named is not None and site is not None and wire.SITE_ID in site:
            named[reply.metadata.src_node_id] = as_str(site, wire.SITE_ID)
        metrics = reply.content.metric_records[wire.METRICS_RECORD]
        count += as_int(metrics, wire.NUM_EXAMPLES)
        sums = [a + b for a, b in zip(sums, as_floats(metrics, wire.FEATURE_SUM))]
        squares = [a + b for a, b in zip(squares, as_floats(metrics, wire.FEATURE_SUM_SQUARES))]
    if count == 0:
        return [0.0] * num_features, [1.0] * num_features
    mean = [s / count for s in sums]
    std = [math.sqrt(max(q / count - m * m, 0.0)) or 1.0 for q, m in zip(squares, mean)]
    return mean, std
