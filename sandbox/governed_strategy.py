"""A wrapper strategy that governs any Flower strategy, as Flower's DP wrappers do.

``GovernedStrategy(FedAvg(...), observer=...)`` delegates every step of a round to the wrapped
strategy and adds one concern: it watches each round (who trained, who refused, each site's
aggregate metrics) and tells an observer, which keeps the audit chain, metrics and report.
Later slices add consent-matrix sampling and update screening here, around the same calls.
"""

from __future__ import annotations

import logging
import time
from typing import Iterable, Protocol

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from participants.record_values import as_float, as_int, as_str
from participants.site_audit import SITE_RECORD_KEY
from sandbox.round_outcome import RoundOutcome, SiteRoundMetrics, pool

logger = logging.getLogger(__name__)


class RoundObserver(Protocol):
    """Receives what the governed strategy saw; never changes the trial."""

    def round_started(self, server_round: int) -> str:
        """Record the round's start; return the hash of the audit entry sites will cross-reference."""
        ...

    def round_finished(self, outcome: RoundOutcome) -> None: ...


class GovernedStrategy(Strategy):
    """Wrap ``inner`` and report every round to ``observer``."""

    def __init__(self, inner: Strategy, *, observer: RoundObserver) -> None:
        self.inner = inner
        self.observer = observer
        self._round_started_at: dict[int, float] = {}
        self._outcomes: dict[int, RoundOutcome] = {}
        self._round_entry = ""

    def summary(self) -> None:
        logger.info("GovernedStrategy wrapping %s", type(self.inner).__name__)
        self.inner.summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._round_started_at[server_round] = time.perf_counter()
        self._outcomes[server_round] = RoundOutcome(server_round=server_round)
        self._round_entry = self.observer.round_started(server_round)
        config["coordinator-entry"] = self._round_entry
        return self.inner.configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        outcome = self._outcomes[server_round]
        for reply in replies:
            if reply.has_error():
                outcome.refusals.append((self._site_of(reply), reply.error.reason or "no reason given"))
            else:
                outcome.trained_sites.append(self._site_of(reply))
                self._note_site_audit(outcome, reply)
        return self.inner.aggregate_train(server_round, replies)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        config["coordinator-entry"] = self._round_entry
        return self.inner.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        replies = list(replies)
        outcome = self._outcomes[server_round]
        for reply in replies:
            if reply.has_error():
                continue
            metrics = reply.content.metric_records["metrics"]
            site_id = self._site_of(reply)
            self._note_site_audit(outcome, reply)
            outcome.sites[site_id] = SiteRoundMetrics(
                site_id=site_id,
                num_train=as_int(metrics, "num-train-examples"),
                num_test=as_int(metrics, "num-examples"),
                test_accuracy=as_float(metrics, "test-accuracy"),
                test_loss=as_float(metrics, "test-loss"),
                test_auroc=as_float(metrics, "test-auroc") if as_int(metrics, "test-auroc-defined") else None,
                train_accuracy=as_float(metrics, "train-accuracy"),
                train_loss=as_float(metrics, "train-loss"),
            )
        outcome.global_metrics = pool(list(outcome.sites.values()))
        outcome.duration_seconds = time.perf_counter() - self._round_started_at.pop(server_round)
        aggregated = self.inner.aggregate_evaluate(server_round, replies)
        self.observer.round_finished(outcome)
        return aggregated

    def _note_site_audit(self, outcome: RoundOutcome, reply: Message) -> None:
        """Keep the site's newest audit head, which it names in every reply."""
        record = reply.content.config_records.get(SITE_RECORD_KEY)
        if record is not None and "audit-hash" in record:
            outcome.site_audit_heads[as_str(record, "site-id")] = (as_str(record, "audit-hash"), as_int(record, "audit-length"))

    @staticmethod
    def _site_of(reply: Message) -> str:
        """The site id a reply names, or the Flower node id when it names none (e.g. an error)."""
        if not reply.has_error() and SITE_RECORD_KEY in reply.content.config_records:
            return str(reply.content.config_records[SITE_RECORD_KEY]["site-id"])
        return f"node-{reply.metadata.src_node_id}"
