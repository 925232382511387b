"""Federated preprocessing before round 1: the federation's feature statistics from the sites' noised sums.

Each site replies to one Flower ``query`` message with its train part's record count (rounded
down, public) and, when the trial's data contract asks for federated normalisation, the noised
sums of the rows the contract's release layout defines (clipped to the contract's public ranges;
observed counts, squares and median histograms when the contract needs them), a release its
ledger paid for as ``feature-statistics`` (:mod:`trialcore.feature_statistics`). The coordinator
pools them into the mean, standard deviation and median of every numeric feature
(:func:`~trialcore.feature_statistics.combine`), which every site then uses (after checking
them against the contract), so all sites impute and scale identically even though their data
are non-IID. Without a contract (or with ``per-site`` normalisation) the replies carry no sums
and each site uses its own statistics; the scaling sent is then the identity and sites ignore it.
A site that refuses (its train part below the minimum cohort, its budget) is left out of the
statistics and named in the report's ``preprocessing.refused`` (:mod:`sandbox.preprocessing_report`).

This first contact is also where the coordinator **binds each node to a site** and records the
**count each site commits to**: a reply naming a site the trial does not list, or one another
node already named, is ignored (its sums are not pooled) and its node stays unbound; a reply
whose sums have the wrong length or are not finite is ignored too. The governed strategy then
attributes every reply by the node that sent it, never by the site id a reply claims, and weighs
every update by the committed count (:mod:`sandbox.governed_strategy`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from participants.record_values import RecordValueError, as_floats, as_int, as_str
from sandbox.preprocessing_report import preprocessing_report, published_profile
from sandbox.site_failures import SITE_UNREACHABLE, SiteFailure, TrialFailed, is_site_failure, site_failure
from trialcore import wire
from trialcore.data_contract import DataContract
from trialcore.feature_statistics import combine, release_layout

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Commitment:
    """What one node said before round 1: the site it is (bound for the trial) and its train count (rounded)."""

    site_id: str
    num_examples: int


@dataclass(frozen=True)
class FeatureScaling:
    """The pooled scaling and what each node committed to (node id -> :class:`Commitment`)."""

    mean: list[float]
    std: list[float]
    commitments: dict[int, Commitment] = field(default_factory=dict)
    median: list[float] = field(default_factory=list)
    """Under federated normalisation: the median of each numeric feature (imputation); else empty."""
    preprocessing: dict[str, object] | None = None
    """Under a data contract: which normalisation, which sites' sums, what it cost (report ``preprocessing``)."""


def wait_for_nodes(grid: Grid, count: int, *, timeout_seconds: float = 120.0) -> list[int]:
    """Node ids once ``count`` nodes are connected (Flower's list can be empty at first).

    Raises :class:`~sandbox.site_failures.TrialFailed` (``site-unreachable``) after ``timeout_seconds``.
    """
    deadline = time.monotonic() + timeout_seconds
    while len(nodes := list(grid.get_node_ids())) < count:
        if time.monotonic() > deadline:
            cause = (
                f"only {len(nodes)} of {count} sites connected within the nodes-connect bound of {timeout_seconds:g} s"
            )
            raise TrialFailed([SiteFailure("federation", "connect", 0, cause)], kind=SITE_UNREACHABLE)
        time.sleep(0.2)
    return nodes


def commitment_of(reply: Message, *, site_ids: tuple[str, ...], num_features: int) -> Commitment | str:
    """The commitment a feature-query reply makes, or why it is ignored (a line for the log).

    ``num_features`` is how many sums the reply must carry; 0 when the trial scales per site (any
    sums are then ignored, never pooled).
    """
    if reply.has_error():
        return f"no feature sums: {reply.error.reason}"
    try:
        site_id = as_str(reply.content.config_records[wire.SITE_RECORD], wire.SITE_ID)
        metrics = reply.content.metric_records[wire.METRICS_RECORD]
        count = as_int(metrics, wire.NUM_EXAMPLES)
        sums = as_floats(metrics, wire.FEATURE_SUM)
    except (KeyError, RecordValueError) as err:
        return f"malformed feature-sums reply ({err})"
    if site_id not in site_ids:
        return f"the reply names site {site_id[:63]!r}, which the trial does not list"
    if count < 0 or (num_features and len(sums) != num_features):
        return f"site {site_id}: a count of {count} and {len(sums)} sums for {num_features} features"
    if not all(math.isfinite(v) for v in sums):
        return f"site {site_id}: feature sums are not finite"
    return Commitment(site_id=site_id, num_examples=count)


def pooled_feature_scaling(
    grid: Grid,
    config: ConfigRecord,
    *,
    num_sites: int,
    num_features: int,
    site_ids: tuple[str, ...] = (),
    contract: DataContract | None = None,
    timeout_seconds: float = 300.0,
    site_nodes: Mapping[str, int] | None = None,
    connect_timeout_seconds: float = 120.0,
) -> FeatureScaling:
    """Pooled (mean, standard deviation) per feature over every replying site's train part, and the commitments.

    ``config`` is the trial's config record (trial id, spec hash, ``min-cohort-size``);
    ``site_ids`` are the sites the trial lists (a reply naming another site is ignored);
    ``contract`` is the trial's data contract (None: each site scales by its own statistics, replies
    carry no sums, the identity is returned); under ``per-site`` normalisation the replies carry
    no sums either, and only the preprocessing report is made. A site
    that refuses is left out; one that cannot take part fails the trial before round 1
    (:class:`~sandbox.site_failures.TrialFailed`, raised once every site has replied); so does a
    node that does not answer within ``timeout_seconds`` (``site-unreachable``: it is named by
    its node, as it never said which site it is).
    ``site_nodes`` (deployment) binds each site to its authenticated node (the node id its
    registered key got): a reply naming a site from any other node is ignored, so that node stays
    unbound and every later reply of it is rejected. With it, a refusal, failure or silence is
    named by the site whose authenticated node it came from; without it (simulation), by the node.
    """
    started = time.monotonic()
    nodes = wait_for_nodes(grid, num_sites, timeout_seconds=connect_timeout_seconds)
    record = RecordDict({"config": config})
    messages = [Message(content=record, message_type=MessageType.QUERY, dst_node_id=node) for node in nodes]
    count = 0
    federated = contract is not None and contract.normalisation == "federated"
    expected_sums = release_layout(contract).length if contract is not None and federated else 0
    sums = [0.0] * expected_sums
    replies = list(grid.send_and_receive(messages, timeout=timeout_seconds))
    bound_sites = {node: site for site, node in (site_nodes or {}).items()}

    def named(node: int) -> str:
        """The site whose authenticated node ``node`` is (deployment), else the node: a refusal names no site."""
        return bound_sites.get(node, f"node-{node}")

    failures = [
        site_failure(reply, named(reply.metadata.src_node_id), phase="query", server_round=0)
        for reply in replies
        if is_site_failure(reply)
    ]
    if failures:
        raise TrialFailed(failures)
    silent = sorted(set(nodes) - {reply.metadata.src_node_id for reply in replies})
    if silent:
        cause = f"no answer to the feature query within the first-reply bound of {timeout_seconds:g} s"
        raise TrialFailed([SiteFailure(named(node), "query", 0, cause) for node in silent], kind=SITE_UNREACHABLE)
    commitments: dict[int, Commitment] = {}
    pooled: list[tuple[str, Message]] = []
    refused: dict[str, str] = {}
    for reply in replies:
        node = reply.metadata.src_node_id
        commitment = commitment_of(reply, site_ids=site_ids, num_features=expected_sums)
        if isinstance(commitment, Commitment) and commitment.site_id in {c.site_id for c in commitments.values()}:
            commitment = f"site {commitment.site_id} was already named by another node"
        if isinstance(commitment, Commitment) and site_nodes is not None and site_nodes.get(commitment.site_id) != node:
            commitment = f"node {node} is not the authenticated node of site {commitment.site_id}"
        if isinstance(commitment, str):
            logger.warning("node %s gave no usable feature sums: %s", node, commitment)
            refused[named(node)] = commitment[:500]
            continue
        commitments[node] = commitment
        pooled.append((commitment.site_id, reply))
    # Summed in site order, whatever order replies came in: asked again (a resumed run), the same bytes.
    for _, reply in sorted(pooled, key=lambda item: item[0]):
        metrics = reply.content.metric_records[wire.METRICS_RECORD]
        count += commitments[reply.metadata.src_node_id].num_examples
        if federated:
            sums = [a + b for a, b in zip(sums, as_floats(metrics, wire.FEATURE_SUM))]
    if contract is None:
        return FeatureScaling([0.0] * num_features, [1.0] * num_features, commitments)
    statistics = combine(contract, sums, count) if federated else None
    report = preprocessing_report(
        contract,
        statistics,
        pooled=sorted(pooled, key=lambda item: item[0]),
        refused=refused,
        profiles={site: p for site, reply in pooled if (p := published_profile(reply, contract)) is not None},
        seconds=time.monotonic() - started,
    )
    if statistics is None:
        identity = FeatureScaling([0.0] * num_features, [1.0] * num_features, commitments)
        return FeatureScaling(identity.mean, identity.std, commitments, preprocessing=report)
    return FeatureScaling(statistics.mean, statistics.std, commitments, statistics.median, report)
