"""Which site a reply comes from, and whether its claims match what its site committed before round 1.

The coordinator attributes a reply to the site its **node** is bound to, never to the site id the
reply claims. With commitments (:func:`sandbox.feature_scaling.pooled_feature_scaling`: each node
named a listed site, each site one node, and committed its rounded train count), the bindings
are fixed for the trial; without them (unit tests) a node is bound on its first reply naming a
site no other node named. A reply that claims another site than its node's is rejected
(``site-identity``), and so is one whose record count differs from its site's commitment
(``count-mismatch``). Pure: no I/O, no Flower messaging.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from flwr.app import Message

from participants.record_values import RecordValueError, as_float, as_int
from sandbox.feature_scaling import Commitment
from sandbox.update_screening import COUNT_MISMATCH, SITE_IDENTITY, Rejection
from trialcore import wire

__all__ = ["SiteBindings"]


class SiteBindings:
    """Node id -> site id, and each site's committed train count."""

    def __init__(self, commitments: Mapping[int, Commitment] | None = None) -> None:
        self.fixed = commitments is not None
        self.site_by_node: dict[int, str] = {node: c.site_id for node, c in (commitments or {}).items()}
        self.committed: dict[str, int] = {c.site_id: c.num_examples for c in (commitments or {}).values()}

    def site_of_node(self, node: int) -> str | None:
        """The site ``node`` is bound to (None if none)."""
        return self.site_by_node.get(node)

    @staticmethod
    def claimed_site(reply: Message) -> str | None:
        """The site id a reply claims (None for an error reply or one that names none)."""
        if reply.has_error() or not reply.has_content():
            return None
        record = reply.content.config_records.get(wire.SITE_RECORD)
        value = record.get(wire.SITE_ID) if record is not None else None
        return value if isinstance(value, str) else None

    def site_of(self, reply: Message) -> str:
        """The site bound to the reply's node; ``node-<Flower node id>`` for a node bound to none.

        Without commitments a node is bound on its first reply that names a site no other node named.
        """
        node = reply.metadata.src_node_id
        claimed = self.claimed_site(reply)
        if (
            node not in self.site_by_node
            and not self.fixed
            and not reply.has_error()
            and claimed is not None
            and claimed not in self.site_by_node.values()
        ):
            self.site_by_node[node] = claimed
        return self.site_by_node.get(node, f"node-{node}")

    def identity_rejection(self, reply: Message, site_id: str) -> Rejection | None:
        """A rejection if the reply's node is bound to no site, or the reply claims another site than its node's."""
        claimed = self.claimed_site(reply)
        if reply.metadata.src_node_id not in self.site_by_node:
            return Rejection(site_id, SITE_IDENTITY, "the node is bound to no site of the trial")
        if claimed != site_id:
            shown = "no site" if claimed is None else f"site {claimed[:63]!r}"
            return Rejection(site_id, SITE_IDENTITY, f"the reply claims {shown}, but its node is bound to {site_id}")
        return None

    def count_rejection(self, reply: Message, site_id: str) -> Rejection | None:
        """A rejection if, with commitments, the update's count is not the one its site committed before round 1."""
        if not self.fixed:
            return None
        metrics = reply.content.metric_records.get(wire.METRICS_RECORD)
        try:
            claimed = as_int(metrics if metrics is not None else {}, wire.NUM_EXAMPLES)
        except RecordValueError as err:
            return Rejection(site_id, COUNT_MISMATCH, str(err))
        committed = self.committed.get(site_id)
        if claimed != committed:
            return Rejection(
                site_id, COUNT_MISMATCH, f"the update claims {claimed} records; {site_id} committed {committed}"
            )
        return None

    def evaluation_rejection(self, reply: Message, site_id: str) -> Rejection | None:
        """A rejection if an evaluation reply's metrics are malformed or not finite (they weigh the pooled metrics)."""
        metrics = reply.content.metric_records.get(wire.METRICS_RECORD)
        if metrics is None:
            return Rejection(site_id, COUNT_MISMATCH, "the evaluation reply holds no metrics")
        try:
            counts = [as_int(metrics, wire.NUM_EXAMPLES), as_int(metrics, wire.NUM_TRAIN_EXAMPLES)]
            values = [as_float(metrics, key) for key in (wire.TEST_ACCURACY, wire.TEST_LOSS)]
        except RecordValueError as err:
            return Rejection(site_id, COUNT_MISMATCH, f"malformed evaluation metrics: {err}")
        if min(counts) < 0 or not all(math.isfinite(v) for v in values) or not 0 <= values[0] <= 1:
            return Rejection(site_id, COUNT_MISMATCH, f"evaluation counts {counts} or metrics {values} out of range")
        if self.fixed and counts[1] != self.committed.get(site_id):
            return Rejection(
                site_id,
                COUNT_MISMATCH,
                f"the evaluation claims {counts[1]} train records; {site_id} committed {self.committed.get(site_id)}",
            )
        return None
