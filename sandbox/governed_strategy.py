"""A wrapper strategy that governs any Flower strategy, as Flower's DP wrappers do.

``GovernedStrategy(FedAvg(...), observer=...)`` delegates every step of a round to the wrapped
strategy and adds one concern: it watches each round (who trained, who refused, each site's
aggregate metrics) and tells an observer, which keeps the audit chain, metrics and report.

Before the wrapped strategy aggregates, each update is screened against the global arrays sent
that round (:mod:`sandbox.update_screening`): a rejected update, like a site's refusal, is
reported to the observer and never reaches ``inner.aggregate_train``, so it cannot move the
global model. With fewer accepted updates than ``min_participants`` the round is skipped and
the previous global model is kept. A site that cannot take part (a site-internal error, or Flower
answering in its place: :mod:`sandbox.site_failures`) is no refusal: the round's replies are
seen through, then the trial stops with :class:`~sandbox.site_failures.TrialFailed`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Mapping
from typing import Protocol

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from participants.record_values import as_float, as_int, as_str
from sandbox.enforcement import Enforcer, Incident
from sandbox.round_outcome import RoundOutcome, SiteRoundMetrics, pool
from sandbox.site_failures import SiteFailure, TrialFailed, is_site_failure, site_failure
from sandbox.trial_control import Action, TrialControl
from sandbox.update_screening import SITE_REFUSED, Rejection, screen_reply
from trialcore import wire

logger = logging.getLogger(__name__)

_SITE_IN_REASON = re.compile(r"^[a-z-]+: site ([a-z0-9]+(?:-[a-z0-9]+)*)[: ]")
"""The site id a privacy refusal names (``privacy-budget-exhausted: site de-berlin: ...``)."""


class RoundObserver(Protocol):
    """Receives what the governed strategy saw; never changes the trial."""

    def round_started(self, server_round: int) -> str:
        """Record the round's start; return the hash of the audit entry sites will cross-reference."""
        ...

    def update_rejected(self, server_round: int, site_id: str, reason: str, detail: str) -> None:
        """Record that ``site_id``'s update stays out of this round's aggregate (``reason`` is a metric label)."""
        ...

    def round_skipped(self, server_round: int, *, accepted: int, required: int) -> None:
        """Record that too few updates were accepted to aggregate; the previous global model stays."""
        ...

    def incident_recorded(self, incident: Incident) -> None:
        """Record a policy violation and the enforcement action taken."""
        ...

    def round_finished(self, outcome: RoundOutcome) -> None: ...

    def privacy_reported(self, server_round: int, site_id: str, figures: MetricRecord) -> None:
        """Record a site's privacy ledger figures after its charge for this round."""
        ...

    def budget_exhausted(self, server_round: int, site_id: str, reason: str) -> None:
        """Record that ``site_id`` refused this round because its privacy budget cannot pay for it."""
        ...


class PrivacyBudgetStop(Exception):
    """Too few sites have privacy budget left to reach ``min_participants``: the trial stops (exit 4)."""


class GovernedStrategy(Strategy):
    """Wrap ``inner``, screen every update before it aggregates, and report every round to ``observer``.

    Parameters
    ----------
    inner:
        The Flower strategy that samples and aggregates (FedAvg, FedProx, ...).
    observer:
        Receives what happened; never changes the trial.
    max_update_l2_norm:
        Largest L2 norm of an update minus the global model (the composed policy's
        ``privacy.max_update_l2_norm``); None = unbounded.
    min_participants:
        Fewest accepted updates a round needs to aggregate (the trial spec's ``min_participants``).
    control:
        A regulator's suspend/resume/terminate requests, honoured before each round.
    enforcer:
        Graduated enforcement of violations (warn, exclude, suspend, terminate); None = record nothing.
    num_sites:
        Participants of the trial. A site that refuses a round for its privacy budget (or because
        it cannot charge its ledger) is sent no more training; once fewer than
        ``min_participants`` sites can still pay, the trial stops with :class:`PrivacyBudgetStop`.
    """

    def __init__(
        self,
        inner: Strategy,
        *,
        observer: RoundObserver,
        max_update_l2_norm: float | None = None,
        min_participants: int = 1,
        control: TrialControl | None = None,
        enforcer: Enforcer | None = None,
        num_sites: int | None = None,
    ) -> None:
        self.inner = inner
        self.num_sites = num_sites
        self.budget_exhausted: set[str] = set()
        self.observer = observer
        self.max_update_l2_norm = max_update_l2_norm
        self.min_participants = min_participants
        self.control = control
        self.enforcer = enforcer
        self._latest_arrays: ArrayRecord | None = None
        self._round_started_at: dict[int, float] = {}
        self._outcomes: dict[int, RoundOutcome] = {}
        self._global_arrays: dict[int, ArrayRecord] = {}
        self._site_by_node: dict[int, str] = {}
        self._round_entry = ""

    @property
    def latest_arrays(self) -> ArrayRecord | None:
        """The latest global model the strategy was handed (None before round 1)."""
        return self._latest_arrays

    def name_nodes(self, names: Mapping[int, str]) -> None:
        """Remember which site each Flower node is (from replies before round 1), to name its error replies."""
        self._site_by_node.update(names)

    def summary(self) -> None:
        logger.info("GovernedStrategy wrapping %s", type(self.inner).__name__)
        self.inner.summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._latest_arrays = arrays  # the global model so far, kept if the trial is terminated now
        if self.control is not None:
            self.control.before_round()  # may wait (suspended) or raise TrialTerminated
        self._round_started_at[server_round] = time.perf_counter()
        self._outcomes[server_round] = RoundOutcome(server_round=server_round)
        self._round_entry = self.observer.round_started(server_round)
        self._global_arrays[server_round] = arrays
        config[wire.COORDINATOR_ENTRY] = self._round_entry
        return self._without_excluded(
            server_round, self.inner.configure_train(server_round, arrays, config, grid), training=True
        )

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        outcome = self._outcomes[server_round]
        global_arrays = self._global_arrays.pop(server_round)
        accepted: list[Message] = []
        failures: list[SiteFailure] = []
        for reply in replies:
            site_id = self._site_of(reply)
            if is_site_failure(reply):
                failures.append(site_failure(reply, site_id, phase="train", server_round=server_round))
                continue
            if reply.has_error():
                reason = reply.error.reason or "no reason given"
                outcome.refusals.append((site_id, reason))
                if reason.startswith((wire.BUDGET_EXHAUSTED_PREFIX, wire.LEDGER_ERROR_PREFIX)):
                    site_id = self._name_from_reason(reply, reason)
                    self.budget_exhausted.add(site_id)
                    self.observer.budget_exhausted(server_round, site_id, reason)
                self._reject(server_round, Rejection(site_id, SITE_REFUSED, reason))
                continue
            outcome.trained_sites.append(site_id)
            self._note_site_audit(outcome, reply)
            metrics = reply.content.metric_records.get(wire.METRICS_RECORD)
            if metrics is not None and wire.EPSILON_SPENT in metrics:
                self.observer.privacy_reported(server_round, site_id, metrics)
            rejection = screen_reply(site_id, reply.content, global_arrays, max_update_l2_norm=self.max_update_l2_norm)
            if rejection is not None:
                self._reject(server_round, rejection)
            else:
                accepted.append(reply)
        if failures:
            raise TrialFailed(failures)
        if len(accepted) < self.min_participants:
            logger.warning(
                "round %s: %s accepted update(s), %s needed: keeping the previous global model",
                server_round,
                len(accepted),
                self.min_participants,
            )
            self.observer.round_skipped(server_round, accepted=len(accepted), required=self.min_participants)
            self._stop_if_budget_exhausted(server_round)
            return None, None
        return self.inner.aggregate_train(server_round, accepted)

    def _stop_if_budget_exhausted(self, server_round: int) -> None:
        """Raise :class:`PrivacyBudgetStop` when the sites with budget left cannot reach ``min_participants``."""
        if self.num_sites is None or not self.budget_exhausted:
            return
        left = self.num_sites - len(self.budget_exhausted)
        if left < self.min_participants:
            raise PrivacyBudgetStop(
                f"round {server_round}: {len(self.budget_exhausted)} site(s) have spent their privacy budget "
                f"({', '.join(sorted(self.budget_exhausted))}); {left} left, {self.min_participants} needed"
            )

    def _reject(self, server_round: int, rejection: Rejection) -> None:
        logger.warning(
            "round %s: update from %s rejected (%s): %s",
            server_round,
            rejection.site_id,
            rejection.reason,
            rejection.detail,
        )
        self.observer.update_rejected(server_round, rejection.site_id, rejection.reason, rejection.detail)
        if self.enforcer is None:
            return
        incident = self.enforcer.violation(server_round, rejection.site_id, rejection.reason, rejection.detail)
        if incident is None:
            return
        self.observer.incident_recorded(incident)
        if incident.action in ("suspend", "terminate") and self.control is not None:
            self.control.escalate(
                Action(incident.action), f"{incident.rule} violations reached the policy's {incident.action} threshold"
            )

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        config[wire.COORDINATOR_ENTRY] = self._round_entry
        return self._without_excluded(server_round, self.inner.configure_evaluate(server_round, arrays, config, grid))

    def _without_excluded(
        self, server_round: int, messages: Iterable[Message], *, training: bool = False
    ) -> list[Message]:
        """Drop messages to sites the enforcer excluded for this round, and training to sites out of budget."""
        kept = []
        for message in messages:
            site = self._site_by_node.get(message.metadata.dst_node_id)
            if self.enforcer is not None and site is not None and self.enforcer.excluded(site, server_round):
                logger.warning("round %s: %s is excluded and is sent nothing", server_round, site)
                continue
            if training and site in self.budget_exhausted:
                logger.warning("round %s: %s has no privacy budget left and is sent no training", server_round, site)
                continue
            kept.append(message)
        return kept

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        replies = list(replies)
        outcome = self._outcomes[server_round]
        failures = [
            site_failure(reply, self._site_of(reply), phase="evaluate", server_round=server_round)
            for reply in replies
            if is_site_failure(reply)
        ]
        if failures:
            raise TrialFailed(failures)
        for reply in replies:
            if reply.has_error():
                if (reply.error.reason or "").startswith(wire.SMALL_CELL_PREFIX):
                    outcome.withheld_sites.append(self._site_of(reply))
                continue
            metrics = reply.content.metric_records[wire.METRICS_RECORD]
            site_id = self._site_of(reply)
            self._note_site_audit(outcome, reply)
            outcome.sites[site_id] = SiteRoundMetrics(
                site_id=site_id,
                num_train=as_int(metrics, wire.NUM_TRAIN_EXAMPLES),
                num_test=as_int(metrics, wire.NUM_EXAMPLES),
                test_accuracy=as_float(metrics, wire.TEST_ACCURACY),
                test_loss=as_float(metrics, wire.TEST_LOSS),
                test_auroc=as_float(metrics, wire.TEST_AUROC) if as_int(metrics, wire.TEST_AUROC_DEFINED) else None,
                train_accuracy=as_float(metrics, wire.TRAIN_ACCURACY),
                train_loss=as_float(metrics, wire.TRAIN_LOSS),
            )
        outcome.global_metrics = pool(list(outcome.sites.values()))
        outcome.duration_seconds = time.perf_counter() - self._round_started_at.pop(server_round)
        aggregated = self.inner.aggregate_evaluate(server_round, replies)
        self.observer.round_finished(outcome)
        return aggregated

    def _note_site_audit(self, outcome: RoundOutcome, reply: Message) -> None:
        """Keep the site's newest audit head, which it names in every reply."""
        record = reply.content.config_records.get(wire.SITE_RECORD)
        if record is not None and wire.AUDIT_HASH in record:
            outcome.site_audit_heads[as_str(record, wire.SITE_ID)] = (
                as_str(record, wire.AUDIT_HASH),
                as_int(record, wire.AUDIT_LENGTH),
            )

    def _name_from_reason(self, reply: Message, reason: str) -> str:
        """The site a privacy refusal names (``... site <id>: ...``); remembered for the node that sent it."""
        match = _SITE_IN_REASON.match(reason)
        if match is None:
            return self._site_of(reply)
        self._site_by_node[reply.metadata.src_node_id] = match.group(1)
        return match.group(1)

    def _site_of(self, reply: Message) -> str:
        """The site id a reply names; for one that names none (an error), the site its node named before.

        A node that never named its site (e.g. one refusing from round 1 on) is ``node-<Flower node id>``.
        """
        node = reply.metadata.src_node_id
        if not reply.has_error() and wire.SITE_RECORD in reply.content.config_records:
            self._site_by_node[node] = str(reply.content.config_records[wire.SITE_RECORD][wire.SITE_ID])
        return self._site_by_node.get(node, f"node-{node}")
