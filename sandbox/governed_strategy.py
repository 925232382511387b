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
seen through, then the trial stops with :class:`~sandbox.site_failures.TrialFailed`. A site whose
node went away mid-round is neither (:mod:`sandbox.node_loss`): it is recorded as
``site-unavailable`` and the round goes on without it.

The strategy trusts nothing a site claims that it cannot check:

* **identity**: a reply is attributed to the site its *node* is bound to, never to the site id it
  claims. Bindings come from the feature query before round 1 (``commitments``, see
  :mod:`sandbox.feature_scaling`, :mod:`sandbox.site_bindings`); without them (unit tests) a node is bound on first contact. A
  reply claiming another site than its node's is rejected (``site-identity``); site ids are never
  parsed out of refusal text, so no node can have another site excluded, marked out of budget or
  its audit head overwritten;
* **weights**: with commitments, an update's ``num-examples`` must equal the count its site
  committed before round 1 (rounded by the site), else it is rejected (``count-mismatch``), so no
  site can weigh its update by a negative or huge count;
* **refusals** are attributed to the node that sent them; one naming a policy clause counts against
  the trial, not the refusing site (:mod:`sandbox.enforcement`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from participants.record_values import RecordValueError, as_float, as_int, as_str
from sandbox.enforcement import Enforcer, Incident
from sandbox.feature_scaling import Commitment
from sandbox.node_loss import SITE_UNAVAILABLE, SentMessages, is_node_unavailable, require_sites_online
from sandbox.round_outcome import RoundOutcome, SiteRoundMetrics, pool
from sandbox.site_bindings import SiteBindings
from sandbox.site_failures import SITE_UNREACHABLE, SiteFailure, TrialFailed, is_site_failure, site_failure
from sandbox.trial_control import Action, TrialControl
from sandbox.update_screening import SITE_REFUSED, Rejection, screen_reply
from trialcore import wire

logger = logging.getLogger(__name__)


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
    commitments:
        Node id -> the site it named and the train count it committed before round 1 (from
        :func:`sandbox.feature_scaling.pooled_feature_scaling`). With them, nodes are bound for the
        whole trial and every update must carry its committed count; None = bind each node on
        first contact and check no count (unit tests).
    rounds_done:
        Rounds an earlier process of this run completed (a resumed run): Flower's loop counts its
        rounds from 1, the strategy numbers them from ``rounds_done + 1`` for the sites, the
        observer and the wrapped strategy alike.
    on_round_end:
        Called with each completed round and the global model after it (the run's checkpoint).
    round_reply_seconds:
        The round-reply bound (:mod:`sandbox.time_bounds`) Flower waited for replies: a site sent a
        message that did not answer within it fails the trial (``site-unreachable``, exit 6) once
        the replies that came are seen through; None = not checked (unit tests that pass subsets).
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
        commitments: Mapping[int, Commitment] | None = None,
        rounds_done: int = 0,
        on_round_end: Callable[[int, ArrayRecord], None] | None = None,
        round_reply_seconds: float | None = None,
    ) -> None:
        self.round_reply_seconds = round_reply_seconds
        self._awaiting: dict[tuple[int, str], set[int]] = {}
        self.inner = inner
        self.rounds_done = rounds_done
        self.on_round_end = on_round_end
        self._model_after: dict[int, ArrayRecord] = {}
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
        self.bindings = SiteBindings(commitments)
        self._sent = SentMessages()
        self._round_entry = ""
        self._exclusions_told: set[tuple[int, str]] = set()

    def bind(self, commitments: Mapping[int, Commitment]) -> None:
        """Bind each node to the site it named before round 1, with the count it committed (see ``commitments``)."""
        self.bindings = SiteBindings(commitments)

    def name_nodes(self, names: Mapping[int, str]) -> None:
        """Bind nodes to sites without committed counts (tests; a trial binds with :meth:`bind`)."""
        self.bindings.site_by_node.update(names)

    @property
    def latest_arrays(self) -> ArrayRecord | None:
        """The latest global model the strategy was handed (None before round 1)."""
        return self._latest_arrays

    def summary(self) -> None:
        logger.info("GovernedStrategy wrapping %s", type(self.inner).__name__)
        self.inner.summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        server_round += self.rounds_done
        self._latest_arrays = arrays  # the global model so far, kept if the trial is terminated now
        if self.control is not None:
            self.control.before_round()  # may wait (suspended) or raise TrialTerminated
        require_sites_online(grid, self.min_participants, server_round=server_round, phase="train")
        self._round_started_at[server_round] = time.perf_counter()
        self._outcomes[server_round] = RoundOutcome(server_round=server_round)
        self._round_entry = self.observer.round_started(server_round)
        self._global_arrays[server_round] = arrays
        config[wire.COORDINATOR_ENTRY] = self._round_entry
        require_sites_online(grid, self.min_participants, server_round=server_round, phase="evaluate")
        return self._sent.remember(
            self._without_excluded(
                server_round, self.inner.configure_train(server_round, arrays, config, grid), training=True
            )
        )

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        server_round += self.rounds_done
        replies = list(replies)
        outcome = self._outcomes[server_round]
        global_arrays = self._global_arrays.pop(server_round)
        self._model_after[server_round] = global_arrays
        accepted: list[Message] = []
        failures: list[SiteFailure] = []
        for reply in replies:
            if self._lost(server_round, reply):
                continue
            site_id = self.bindings.site_of(reply)
            if is_site_failure(reply):
                failures.append(site_failure(reply, site_id, phase="train", server_round=server_round))
                continue
            if reply.has_error():
                reason = reply.error.reason or "no reason given"
                outcome.refusals.append((site_id, reason))
                if reason.startswith((wire.BUDGET_EXHAUSTED_PREFIX, wire.LEDGER_ERROR_PREFIX)):
                    self.budget_exhausted.add(site_id)
                    self.observer.budget_exhausted(server_round, site_id, reason)
                self._reject(server_round, Rejection(site_id, SITE_REFUSED, reason))
                continue
            untrusted = self.bindings.identity_rejection(reply, site_id) or self.bindings.count_rejection(
                reply, site_id
            )
            if untrusted is not None:
                self._reject(server_round, untrusted)
                continue
            outcome.trained_sites.append(site_id)
            self._note_site_audit(outcome, reply, site_id)
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
        self._fail_if_silent(server_round, "train", self._answered(replies))
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
        # In site order, whatever order replies came in: a repeated round aggregates to the same bytes.
        accepted.sort(key=lambda reply: self.bindings.site_of(reply))
        aggregated, metrics = self.inner.aggregate_train(server_round, accepted)
        if aggregated is not None:
            self._model_after[server_round] = aggregated
        return aggregated, metrics

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
        server_round += self.rounds_done
        config[wire.COORDINATOR_ENTRY] = self._round_entry
        require_sites_online(grid, self.min_participants, server_round=server_round, phase="evaluate")
        return self._sent.remember(
            self._without_excluded(server_round, self.inner.configure_evaluate(server_round, arrays, config, grid))
        )

    def _lost(self, server_round: int, reply: Message) -> bool:
        """Record a reply Flower sent in place of a node that went away (see :mod:`sandbox.node_loss`); True if it was one."""
        if not is_node_unavailable(reply):
            return False
        node = self._sent.node_of(reply)
        site_id = (self.bindings.site_of_node(node) if node is not None else None) or f"node-{node}"
        detail = (reply.error.reason or "the node stopped answering").splitlines()[0][:200]
        logger.warning("round %s: %s is unavailable: %s", server_round, site_id, detail)
        self.observer.update_rejected(server_round, site_id, SITE_UNAVAILABLE, detail)
        return True

    def _without_excluded(
        self, server_round: int, messages: Iterable[Message], *, training: bool = False
    ) -> list[Message]:
        """Drop messages to sites the enforcer excluded for this round, and training to sites out of budget."""
        kept = []
        for message in messages:
            site = self.bindings.site_of_node(message.metadata.dst_node_id)
            if self.enforcer is not None and site is not None and self.enforcer.excluded(site, server_round):
                if (server_round, site) not in self._exclusions_told:  # once per round, not per message kind
                    self._exclusions_told.add((server_round, site))
                    logger.warning("round %s: %s is excluded and is sent nothing", server_round, site)
                continue
            if training and site in self.budget_exhausted:
                logger.warning("round %s: %s has no privacy budget left and is sent no training", server_round, site)
                continue
            kept.append(message)
        self._awaiting[(server_round, "train" if training else "evaluate")] = {m.metadata.dst_node_id for m in kept}
        return kept

    def _answered(self, replies: list[Message]) -> set[int]:
        """The nodes ``replies`` answer for (a reply Flower sent in a lost node's place answers for that node)."""
        return {self._sent.node_of(reply) or reply.metadata.src_node_id for reply in replies}

    def _fail_if_silent(self, server_round: int, phase: str, answered: set[int]) -> None:
        """Raise ``site-unreachable`` for each site sent a ``phase`` message that gave no reply within the bound."""
        awaiting = self._awaiting.pop((server_round, phase), set())
        if self.round_reply_seconds is None:
            return
        silent = sorted(awaiting - answered)
        if silent:
            cause = f"no answer within the round-reply bound of {self.round_reply_seconds:g} s"
            failures = [
                SiteFailure(self.bindings.site_of_node(node) or f"node-{node}", phase, server_round, cause)
                for node in silent
            ]
            raise TrialFailed(failures, kind=SITE_UNREACHABLE)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        server_round += self.rounds_done
        replies = list(replies)
        answered = self._answered(replies)
        replies = [reply for reply in replies if not self._lost(server_round, reply)]
        outcome = self._outcomes[server_round]
        failures = [
            site_failure(reply, self.bindings.site_of(reply), phase="evaluate", server_round=server_round)
            for reply in replies
            if is_site_failure(reply)
        ]
        if failures:
            raise TrialFailed(failures)
        self._fail_if_silent(server_round, "evaluate", answered)
        trusted: list[Message] = []
        for reply in replies:
            site_id = self.bindings.site_of(reply)
            if reply.has_error():
                if (reply.error.reason or "").startswith(wire.SMALL_CELL_PREFIX):
                    outcome.withheld_sites.append(site_id)
                trusted.append(reply)
                continue
            untrusted = self.bindings.identity_rejection(reply, site_id) or self.bindings.evaluation_rejection(
                reply, site_id
            )
            if untrusted is not None or site_id in outcome.sites:
                logger.warning("round %s: evaluation from node %s ignored", server_round, reply.metadata.src_node_id)
                if untrusted is not None:
                    self._reject(server_round, untrusted)
                continue
            trusted.append(reply)
            metrics = reply.content.metric_records[wire.METRICS_RECORD]
            self._note_site_audit(outcome, reply, site_id)
            if wire.EPSILON_SPENT in metrics:  # the evaluation's release was charged: the ledger's figures after it
                self.observer.privacy_reported(server_round, site_id, metrics)
            outcome.sites[site_id] = SiteRoundMetrics(
                site_id=site_id,
                num_train=as_int(metrics, wire.NUM_TRAIN_EXAMPLES),
                num_test=as_int(metrics, wire.NUM_EXAMPLES),
                test_accuracy=as_float(metrics, wire.TEST_ACCURACY),
                test_loss=as_float(metrics, wire.TEST_LOSS),
                test_auroc=as_float(metrics, wire.TEST_AUROC) if as_int(metrics, wire.TEST_AUROC_DEFINED) else None,
            )
        outcome.global_metrics = pool(list(outcome.sites.values()))
        outcome.duration_seconds = time.perf_counter() - self._round_started_at.pop(server_round)
        aggregated = self.inner.aggregate_evaluate(server_round, trusted)
        self.observer.round_finished(outcome)
        model_after = self._model_after.pop(server_round, None)
        if self.on_round_end is not None and model_after is not None:
            self.on_round_end(server_round, model_after)
        return aggregated

    def _note_site_audit(self, outcome: RoundOutcome, reply: Message, site_id: str) -> None:
        """Keep the newest audit head that ``site_id`` (the site bound to the reply's node) names in its reply."""
        record = reply.content.config_records.get(wire.SITE_RECORD)
        if record is not None and wire.AUDIT_HASH in record:
            try:
                outcome.site_audit_heads[site_id] = (as_str(record, wire.AUDIT_HASH), as_int(record, wire.AUDIT_LENGTH))
            except RecordValueError as err:
                logger.warning("site %s named a malformed audit head: %s", site_id, err)
