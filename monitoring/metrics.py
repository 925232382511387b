"""Every Prometheus metric the sandbox exports, defined in this one module.

A regulator watches a running trial through these series; the dashboard
(``monitoring/grafana``) and the alert rules (``monitoring/prometheus``) use only
the names defined here, and a test pins that.

Conventions (house style): ``sandbox_`` prefix, base units (seconds, ratios in
[0, 1], privacy epsilon and delta dimensionless), counters end in ``_total``,
ratios in ``_ratio``. Every series carries ``trial`` and ``run_id`` (one value per
run, so two runs of one trial id are two sets of series and an alert of one run
never continues into the next); site series also carry ``site`` and
``jurisdiction``. Labels are low cardinality: sites, reasons and rules are fixed
at construction and anything else is a :class:`ValueError`.

What is present when:

* counters start at 0 for every known label combination (every site x reason,
  site x rule, site), so ``increase()`` sees the first event; in a federation larger
  than :data:`~monitoring.cardinality.FULL_DETAIL_MAX_SITES` they appear at a site's
  first event instead, and each site exports only the compact set of per-site series
  (:mod:`monitoring.cardinality`);
* trial progress (``sandbox_round``, ``sandbox_participants_active``,
  ``sandbox_trial_state`` = planned, ``sandbox_build_info``) is present at once;
* measured values (privacy, accuracy, loss, AUROC and its coverage, fairness
  gap and its noise, secure aggregation flag, audit head) appear only once set: an absent series
  means "not measured yet", never 0.

``sandbox_privacy_budget_used_ratio{budget}`` is spent / budget of each budget a
site answers to: ``budget="trial"`` (this trial's spend against the spec's budget)
and ``budget="dataset"`` (the dataset's spend across trials against the site
policy's budget). The larger of the two is the one that binds; alerts watch both.

``sandbox_trial_state`` ends in ``finished``, ``terminated`` or
``budget-exhausted`` (:data:`ENDED_STATES`); a scraper that last saw one of those
knows the trial ended and did not crash.

Per-site statistics of a site whose test part is below the minimum cohort size
are never set: the caller suppresses them and calls
:meth:`SandboxMetrics.suppress_small_cell` instead, every round, which counts
each withheld statistic (:data:`SITE_STATISTICS`, data minimisation safeguard,
GDPR Art. 89(1)). Such a site is also left out of the fairness gap.

This module only observes: it never changes trial state.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, Info

from monitoring.cardinality import FULL_DETAIL_MAX_SITES, exports_full_detail
from monitoring.labels import (
    BUDGETS,
    ENDED_STATES,
    SPLITS,
    TRIAL_STATES,
    check_audit_hash,
    check_known,
    check_number,
    check_unique,
)

__all__ = [
    "BUDGETS",
    "ENDED_STATES",
    "ROUND_DURATION_BUCKETS_SECONDS",
    "SITE_STATISTICS",
    "SPLITS",
    "TRIAL_STATES",
    "SandboxMetrics",
]

ROUND_DURATION_BUCKETS_SECONDS: tuple[float, ...] = (
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
)
"""Histogram buckets for one federated round, 0.1 s to 10 min (seconds)."""

_RUN = ("trial", "run_id")
_SITE = (*_RUN, "site", "jurisdiction")

SITE_STATISTICS: tuple[str, ...] = tuple(f"{split}_{kind}" for split in SPLITS for kind in ("accuracy", "loss"))
"""The per-site statistics a round releases; a small-cell site withholds each of them every round."""


def _distribution_version(name: str) -> str:
    """Installed version of distribution ``name``, or ``"unknown"``."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


class SandboxMetrics:
    """The metrics of one trial, registered in an injected registry (one trial per registry).

    Parameters
    ----------
    registry:
        Where to register; tests pass a fresh ``CollectorRegistry()``.
    trial_id:
        Value of the ``trial`` label on every series.
    run_id:
        Value of the ``run_id`` label on every series (one per run of the trial).
    sites:
        ``(site_id, jurisdiction)`` pairs of the participating sites.
    reasons:
        Every reason an update can be rejected for (``reason`` label).
    rules:
        Every policy rule that can be violated (``rule`` label).
    full_detail_max_sites:
        Largest federation that exports every per-site series; above it the compact set
        (:mod:`monitoring.cardinality`). ``detailed`` says which one this trial exports.

    Raises
    ------
    ValueError
        Empty trial or run id, or a duplicate site, reason or rule.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        trial_id: str,
        run_id: str,
        sites: Sequence[tuple[str, str]],
        reasons: Sequence[str],
        rules: Sequence[str],
        full_detail_max_sites: int = FULL_DETAIL_MAX_SITES,
    ) -> None:
        if not trial_id:
            raise ValueError("trial_id must be a non-empty string")
        if not run_id:
            raise ValueError("run_id must be a non-empty string")
        check_unique("site", [site for site, _ in sites])
        self.trial_id = trial_id
        self.run_id = run_id
        self._run = (trial_id, run_id)
        self.jurisdictions: dict[str, str] = dict(sites)
        self.reasons = check_unique("reason", reasons)
        self.rules = check_unique("rule", rules)
        self.detailed = exports_full_detail(len(self.jurisdictions), max_sites=full_detail_max_sites)
        self._lock = threading.Lock()
        self._audit_length = 0
        self._audit_hash: str | None = None
        r = registry

        self.epsilon_spent = Gauge(
            "sandbox_privacy_epsilon_spent",
            "Epsilon spent on a site's dataset so far, across trials, as its privacy ledger records (dimensionless).",
            _SITE,
            registry=r,
        )
        self.epsilon_budget = Gauge(
            "sandbox_privacy_epsilon_budget",
            "Epsilon budget of a site's dataset under the site's own policy, across trials (dimensionless).",
            _SITE,
            registry=r,
        )
        self.trial_epsilon_spent = Gauge(
            "sandbox_privacy_trial_epsilon_spent",
            "Epsilon this trial has spent at a site, as its privacy ledger records (dimensionless).",
            _SITE,
            registry=r,
        )
        self.trial_epsilon_budget = Gauge(
            "sandbox_privacy_trial_epsilon_budget",
            "Epsilon the trial spec allows each site to spend on this trial (dimensionless).",
            _SITE,
            registry=r,
        )
        self.budget_used = Gauge(
            "sandbox_privacy_budget_used_ratio",
            "Epsilon spent over epsilon budget, per budget a site answers to: budget=trial (this trial, the spec's "
            "budget) or budget=dataset (every trial on the site's dataset, the site policy's budget) (ratio).",
            (*_SITE, "budget"),
            registry=r,
        )
        self.budget_exhausted = Gauge(
            "sandbox_privacy_budget_exhausted",
            "1 once a site has refused a round because its privacy budget cannot pay for it, else 0.",
            _SITE,
            registry=r,
        )
        self.delta = Gauge(
            "sandbox_privacy_delta", "Delta of a site's (epsilon, delta) guarantee (probability).", _SITE, registry=r
        )
        self.rounds_completed = Counter("sandbox_rounds_completed", "Federated rounds completed.", _RUN, registry=r)
        self.round = Gauge("sandbox_round", "Current federated round (1-based; 0 before the first).", _RUN, registry=r)
        self.round_duration = Histogram(
            "sandbox_round_duration_seconds",
            "Wall-clock duration of a federated round (seconds).",
            _RUN,
            buckets=ROUND_DURATION_BUCKETS_SECONDS,
            registry=r,
        )
        self.participants_active = Gauge(
            "sandbox_participants_active",
            "Sites that trained in the last round (0 when none could, e.g. every site out of privacy budget).",
            _RUN,
            registry=r,
        )
        self.site_accuracy = Gauge(
            "sandbox_site_accuracy", "Global model accuracy on a site's split (ratio).", (*_SITE, "split"), registry=r
        )
        self.site_loss = Gauge(
            "sandbox_site_loss", "Global model loss on a site's split (loss units).", (*_SITE, "split"), registry=r
        )
        self.global_accuracy = Gauge(
            "sandbox_global_accuracy", "Accuracy over all reporting sites (ratio).", (*_RUN, "split"), registry=r
        )
        self.global_auroc = Gauge(
            "sandbox_global_auroc",
            "Test-record-weighted mean of the per-site ROC AUCs of the sites it covers (ratio); "
            "see sandbox_global_auroc_sites and sandbox_global_auroc_test_records.",
            (*_RUN, "split"),
            registry=r,
        )
        self.global_auroc_sites = Gauge(
            "sandbox_global_auroc_sites",
            "Sites whose AUROC sandbox_global_auroc averages (released and defined: both classes present).",
            (*_RUN, "split"),
            registry=r,
        )
        self.global_auroc_records = Gauge(
            "sandbox_global_auroc_test_records",
            "Test records of the sites sandbox_global_auroc covers (records).",
            (*_RUN, "split"),
            registry=r,
        )
        self.fairness_gap = Gauge(
            "sandbox_fairness_accuracy_gap",
            "Max minus min site test accuracy, unsuppressed sites (ratio).",
            _RUN,
            registry=r,
        )
        self.fairness_gap_noise = Gauge(
            "sandbox_fairness_accuracy_gap_noise_std",
            "Standard deviation of the noise in the fairness gap (ratio); the gap is published only when it is "
            "small enough to read.",
            _RUN,
            registry=r,
        )
        self.updates_rejected = Counter(
            "sandbox_updates_rejected", "Model updates rejected by the coordinator.", (*_SITE, "reason"), registry=r
        )
        self.policy_violations = Counter(
            "sandbox_policy_violations", "Policy rule violations detected.", (*_SITE, "rule"), registry=r
        )
        self.small_cell_suppressed = Counter(
            "sandbox_small_cell_suppressed",
            "Per-site statistics withheld because the cohort is below the minimum size: one per statistic "
            "(train/test accuracy and loss) per round.",
            _SITE,
            registry=r,
        )
        self.trial_state = Enum(
            "sandbox_trial_state", "Lifecycle state of the trial.", _RUN, states=list(TRIAL_STATES), registry=r
        )
        self.secure_aggregation = Gauge(
            "sandbox_secure_aggregation_enabled",
            "1 if updates are securely aggregated, else 0.",
            _RUN,
            registry=r,
        )
        self.audit_entries = Counter(
            "sandbox_audit_entries", "Entries in the coordinator's audit chain.", _RUN, registry=r
        )
        self.audit_head = Gauge(
            "sandbox_audit_head_info", "Hash of the newest audit chain entry (always 1).", (*_RUN, "hash"), registry=r
        )
        self.build = Info("sandbox_build", "Versions of the sandbox and of Flower.", _RUN, registry=r)

        t = self._run
        for site, jurisdiction in sites if self.detailed else ():
            for reason in self.reasons:
                self.updates_rejected.labels(*t, site, jurisdiction, reason)
            for rule in self.rules:
                self.policy_violations.labels(*t, site, jurisdiction, rule)
            self.small_cell_suppressed.labels(*t, site, jurisdiction)
            self.budget_exhausted.labels(*t, site, jurisdiction).set(0)
        self.rounds_completed.labels(*t)
        self.round.labels(*t).set(0)
        self.round_duration.labels(*t)
        self.participants_active.labels(*t).set(0)
        self.trial_state.labels(*t).state(TRIAL_STATES[0])
        self.audit_entries.labels(*t)
        self.build.labels(*t).info(
            {"version": _distribution_version("regulatory-sandbox"), "flwr": _distribution_version("flwr")}
        )

    @property
    def sites(self) -> tuple[str, ...]:
        """Known site ids, in construction order."""
        return tuple(self.jurisdictions)

    def _site(self, site: str) -> tuple[str, str, str, str]:
        """Label values ``(trial, run_id, site, jurisdiction)``; ValueError for an unknown site."""
        check_known("site", site, self.sites)
        return (*self._run, site, self.jurisdictions[site])

    def set_privacy(self, site: str, *, epsilon_spent: float, epsilon_budget: float, delta: float) -> None:
        """Record a site's privacy accounting (a compact trial exports only the used ratio).

        Parameters
        ----------
        site:
            Known site id.
        epsilon_spent, epsilon_budget:
            Privacy loss spent so far and granted in total (dimensionless, >= 0).
        delta:
            Delta of the (epsilon, delta) guarantee (probability in [0, 1]).
        """
        labels = self._site(site)
        spent = check_number("epsilon_spent", epsilon_spent)
        budget = check_number("epsilon_budget", epsilon_budget)
        probability = check_number("delta", delta, high=1.0)
        if self.detailed:
            self.epsilon_spent.labels(*labels).set(spent)
            self.epsilon_budget.labels(*labels).set(budget)
            self.delta.labels(*labels).set(probability)
        self.budget_used.labels(*labels, "dataset").set(_used_ratio(spent, budget))

    def set_trial_privacy(self, site: str, *, epsilon_spent: float, epsilon_budget: float) -> None:
        """Record what this trial has spent at ``site`` and the trial's own budget (dimensionless, >= 0).

        A compact trial (:mod:`monitoring.cardinality`) exports only the used ratio.
        """
        labels = self._site(site)
        spent = check_number("trial epsilon_spent", epsilon_spent)
        budget = check_number("trial epsilon_budget", epsilon_budget)
        if self.detailed:
            self.trial_epsilon_spent.labels(*labels).set(spent)
            self.trial_epsilon_budget.labels(*labels).set(budget)
        self.budget_used.labels(*labels, "trial").set(_used_ratio(spent, budget))

    def set_budget_exhausted(self, site: str) -> None:
        """Mark that ``site`` refused a round for lack of privacy budget (it trains no more in this trial)."""
        self.budget_exhausted.labels(*self._site(site)).set(1)

    def start_round(self, round: int) -> None:
        """Mark federated round ``round`` (1-based) as in progress."""
        self.round.labels(*self._run).set(check_number("round", round))

    def finish_round(self, round: int, duration_seconds: float, participants: int) -> None:
        """Record a completed round, its wall-clock duration (seconds) and how many sites replied."""
        number = check_number("round", round)
        seconds = check_number("duration_seconds", duration_seconds)
        active = check_number("participants", participants, high=float(len(self.jurisdictions)))
        t = self._run
        self.round.labels(*t).set(number)
        self.rounds_completed.labels(*t).inc()
        self.round_duration.labels(*t).observe(seconds)
        self.participants_active.labels(*t).set(active)

    def set_participants_active(self, participants: int) -> None:
        """Show how many sites trained in the last round, for a round that did not finish (e.g. a budget stop)."""
        active = check_number("participants", participants, high=float(len(self.jurisdictions)))
        self.participants_active.labels(*self._run).set(active)

    def set_site_metrics(self, site: str, split: str, *, accuracy: float, loss: float) -> None:
        """Record the global model's accuracy (ratio 0-1) and loss (>= 0) on a site's split.

        Never call this for a site whose split is below the minimum cohort size;
        call :meth:`suppress_small_cell` instead. A compact trial exports the test split only.
        """
        labels = (*self._site(site), check_known("split", split, SPLITS))
        checked_accuracy = check_number("accuracy", accuracy, high=1.0)
        checked_loss = check_number("loss", loss)
        if self.detailed or split == "test":
            self.site_accuracy.labels(*labels).set(checked_accuracy)
            self.site_loss.labels(*labels).set(checked_loss)

    def set_global_metrics(
        self,
        split: str,
        *,
        accuracy: float,
        auroc: float | None,
        auroc_sites: int = 0,
        auroc_test_records: int = 0,
    ) -> None:
        """Record the global model's pooled accuracy and AUROC on ``split`` (ratios 0-1).

        ``auroc_sites`` and ``auroc_test_records`` say what the AUROC covers: how many sites
        and how many of their test records it averages over. ``auroc=None`` (undefined, e.g.
        one class only) leaves the AUROC series and its coverage as they were.
        """
        labels = (*self._run, check_known("split", split, SPLITS))
        self.global_accuracy.labels(*labels).set(check_number("accuracy", accuracy, high=1.0))
        if auroc is not None:
            sites = check_number("auroc_sites", auroc_sites, low=1.0, high=float(len(self.jurisdictions)))
            records = check_number("auroc_test_records", auroc_test_records, low=1.0)
            self.global_auroc.labels(*labels).set(check_number("auroc", auroc, high=1.0))
            self.global_auroc_sites.labels(*labels).set(sites)
            self.global_auroc_records.labels(*labels).set(records)

    def set_fairness_gap(self, gap: float) -> None:
        """Record max - min per-site test accuracy over non-suppressed sites (ratio 0-1)."""
        self.fairness_gap.labels(*self._run).set(check_number("gap", gap, high=1.0))

    def set_fairness_gap_noise(self, noise_std: float) -> None:
        """Record the noise standard deviation of the fairness gap (ratio; may exceed 1 on small test parts)."""
        self.fairness_gap_noise.labels(*self._run).set(check_number("gap noise", noise_std))

    def reject_update(self, site: str, reason: str) -> None:
        """Count one update from ``site`` rejected for a known ``reason``."""
        labels = self._site(site)
        self.updates_rejected.labels(*labels, check_known("reason", reason, self.reasons)).inc()

    def record_violation(self, site: str, rule: str) -> None:
        """Count one violation of a known policy ``rule`` at ``site``."""
        labels = self._site(site)
        self.policy_violations.labels(*labels, check_known("rule", rule, self.rules)).inc()

    def suppress_small_cell(self, site: str) -> None:
        """Count the statistics ``site`` withheld this round (cohort below minimum): one per :data:`SITE_STATISTICS`.

        Call it once per round per withheld site, so the counter grows with every round withheld.
        """
        self.small_cell_suppressed.labels(*self._site(site)).inc(len(SITE_STATISTICS))

    def set_state(self, state: str) -> None:
        """Show the trial's lifecycle state, one of :data:`TRIAL_STATES`."""
        self.trial_state.labels(*self._run).state(check_known("trial state", state, TRIAL_STATES))

    def set_secure_aggregation(self, enabled: bool) -> None:
        """Show whether updates are combined by secure aggregation (1) or not (0)."""
        self.secure_aggregation.labels(*self._run).set(1 if enabled else 0)

    def set_audit_head(self, hash: str, length: int) -> None:
        """Mirror the coordinator's audit chain: its newest entry's hash and its length (entries).

        Only the current head is exported: the previous ``hash`` child is removed.
        ``sandbox_audit_entries_total`` grows by the number of new entries.

        Raises
        ------
        ValueError
            A malformed hash, or a length smaller than the one already seen (the
            chain only grows).
        """
        check_audit_hash(hash)
        count = int(check_number("length", length))
        t = self._run
        with self._lock:
            if count < self._audit_length:
                raise ValueError(f"audit chain length went down from {self._audit_length} to {count}")
            self.audit_entries.labels(*t).inc(count - self._audit_length)
            self._audit_length = count
            if self._audit_hash is not None and self._audit_hash != hash:
                self.audit_head.remove(*t, self._audit_hash)
            self.audit_head.labels(*t, hash).set(1)
            self._audit_hash = hash


def _used_ratio(spent: float, budget: float) -> float:
    """``spent / budget``; a zero budget is fully used (1.0) even before anything is spent."""
    return spent / budget if budget > 0 else 1.0
