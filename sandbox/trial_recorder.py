"""Keeps the evidence of one run: the coordinator's audit chain, the live metrics and report.json.

It observes the governed strategy (:class:`sandbox.governed_strategy.RoundObserver`) and never
changes the trial. Every step is one audit entry; every round updates the metrics and the
report's history; the end writes ``model.pt``, ``report.json`` and ``metrics.prom`` atomically.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from flwr.app import ArrayRecord, MetricRecord
from prometheus_client import CollectorRegistry

from monitoring.exporter import write_textfile
from monitoring.metrics import SandboxMetrics
from participants.record_values import as_float
from participants.site_config import LoadedSiteConfig
from policies import PrivacyCost
from sandbox.enforcement import Incident
from sandbox.ledger_view import SOURCE_LEDGER, SOURCE_NONE, SOURCE_REPLY, visible_ledger
from sandbox.release_noise import FAIRNESS_GAP_MAX_NOISE_STD, fairness_gap_noise_std
from sandbox.report_record import copy_spec, model_file_record, model_record
from sandbox.report_signature import CoordinatorKey, coordinator_key, write_signed_report
from sandbox.report_sites import mean_over_sites
from sandbox.round_outcome import RoundOutcome, SiteRoundMetrics
from sandbox.site_chains import site_heads
from sandbox.site_failures import FAILED_STATE, SiteFailure, distinct
from sandbox.trial_control import ControlRequest
from sandbox.update_screening import SITE_REFUSED
from trialcore import layout, wire
from trialcore.atomic_file import write_bytes_atomic
from trialcore.audit_chain import AuditChain
from trialcore.spec_loading import LoadedSpec

logger = logging.getLogger(__name__)

DEFAULT_MIN_COHORT_SIZE = 11
"""Smallest cohort any released per-site statistic may describe, until policies set it."""

REPORT_SCHEMA = "sandbox-report/1"

BUDGET_EXHAUSTED_STATE = "budget-exhausted"
"""The trial's end state when too few sites had privacy budget left to go on (``sandbox run`` exits 4)."""

PRIVACY_SCOPE = {
    "covers": (
        "Record-level (epsilon, delta)-differential privacy of everything each site released in this trial, "
        "composed in one accountant per site (trial_epsilon; each kind alone in trial_epsilon_by_release): its "
        "model updates (dp-sgd: Poisson sampling, per-sample clipping, Gaussian noise), its feature statistics "
        "(feature-statistics: Gaussian noise on sums of values clipped to the data contract's public ranges, once "
        "before round 1) and its evaluation results on the test part (evaluation: Gaussian noise on clipped "
        "sums, each evaluated round). epsilon_spent adds every earlier trial on the same dataset."
    ),
    "does_not_cover": [
        "Client sampling is not amplified: Flower picks a fixed number of sites each round, so no "
        "site-level subsampling is credited.",
        "Record counts are treated as public: they are released rounded down to the site policy's "
        "data.count_granularity (default 10), and whether a statistic is withheld as a small cell (minimum cohort "
        "size) depends on exact counts.",
        "Simulated sites (the demo) draw DP-SGD noise, batches and release noise from the trial seed so runs are "
        "reproducible: anyone who knows the seed could regenerate the noise. Real sites draw them from a secret "
        "source.",
        "Noise is drawn in floating point; attacks on the low-order bits of floating-point noise (Mironov 2012) "
        "are not defended against.",
        "A site's epsilon across trials is only as complete as its ledger: real sites must keep one in their state "
        "folder; simulated sites start a fresh ledger every run.",
        "epsilon_source says where each site's figures come from: site-ledger (its ledger under the run folder, "
        "read at the end, so a charge whose reply was lost still counts), site-reply (its last reply that carried "
        "them; a real site's ledger is out of the coordinator's sight, and a charge made before a failed reply "
        "shows only in the site's own ledger: `sandbox privacy ledger` there) or no-charge.",
    ],
}
"""What the epsilon in the report does and does not cover, for regulators reading it."""


def _now() -> datetime:
    return datetime.now(UTC)


class TrialRecorder:
    """Evidence of one run in ``run_dir``: ``audit.jsonl``, ``report.json``, ``model.pt``, ``metrics.prom``.

    Parameters
    ----------
    loaded:
        The trial spec in force (its hash goes into every audit entry and the report).
    run_dir:
        ``runs/<trial-id>/<run-id>/``; created if missing.
    run_id:
        The run's id (the last part of ``run_dir``).
    metrics:
        Where to publish live metrics.
    registry:
        The registry ``metrics`` lives in; written to ``metrics.prom`` at the end.
    on_round:
        Called after each round with its outcome (the CLI's progress bar).
    min_cohort_size:
        Per-site statistics of a site whose test part is smaller are withheld (small-cell suppression).
    privacy_costs:
        The pre-flight's privacy dry run per site; its ``spent_before`` is the spend shown until
        the site's first charge reports its ledger.
    signer:
        The coordinator's key that signs report.json (:mod:`sandbox.report_signature`); None = a
        key made for this run only.
    record:
        The report's plan, training, software and per-site sections
        (:func:`sandbox.report_record.trial_record`), gathered before round 1.
    site_configs:
        Site id -> its node config, to find the chain each site keeps (:mod:`sandbox.site_chains`).
    """

    def __init__(
        self,
        loaded: LoadedSpec,
        run_dir: Path,
        *,
        run_id: str,
        metrics: SandboxMetrics,
        registry: CollectorRegistry,
        on_round: Callable[[RoundOutcome], None] | None = None,
        min_cohort_size: int = DEFAULT_MIN_COHORT_SIZE,
        privacy_costs: Mapping[str, PrivacyCost] | None = None,
        clock: Callable[[], datetime] = _now,
        signer: CoordinatorKey | None = None,
        record: Mapping[str, Any] | None = None,
        site_configs: Mapping[str, LoadedSiteConfig] | None = None,
    ) -> None:
        self.loaded = loaded
        self.run_dir = run_dir
        self.run_id = run_id
        self.metrics = metrics
        self.registry = registry
        self.on_round = on_round
        self.min_cohort_size = min_cohort_size
        self.clock = clock
        self.signer = signer or coordinator_key(None)
        self.record_extra = dict(record or {})
        self.site_configs = dict(site_configs or {})
        self.spec_copy: dict[str, Any] | None = None
        run_dir.mkdir(parents=True, exist_ok=True)
        spec = loaded.spec
        self.audit = AuditChain.open(
            run_dir / layout.AUDIT_FILE,
            actor="coordinator",
            trial_id=spec.trial_id,
            spec_hash=loaded.spec_hash,
            clock=clock,
        )
        self.rounds: list[dict[str, Any]] = []
        self.site_counts: dict[str, dict[str, int]] = {}
        self.suppressed_sites: set[str] = set()
        self.site_heads: dict[str, tuple[str, int]] = {}
        self.rejections: dict[int, list[dict[str, str]]] = {}
        self.incidents: list[dict[str, Any]] = []
        self.skipped_rounds: set[int] = set()
        self.started_at = clock()
        self.state = "planned"
        self.consent: dict[str, Any] | None = None
        """The consent matrix (:func:`sandbox.consent.consent_matrix`), reported under ``consent``."""
        self.dry_run = dict(privacy_costs or {})
        self.privacy: dict[str, dict[str, Any]] = {}
        """Site id -> the site's newest ledger figures (from its last charge), for the report."""
        self.ledger_sites: set[str] = set()
        """Sites whose ledger the coordinator read at the end (simulated sites: under the run folder)."""
        self.ledger_problems: dict[str, str] = {}
        """Site id -> why its ledger under the run folder could not be read."""
        self.budget_exhausted_sites: dict[str, int] = {}
        """Site id -> the round it first refused for lack of privacy budget."""
        self.preprocessing: dict[str, Any] | None = None
        """Under a data contract: the normalisation used, the sites pooled and the epsilon it cost (``preprocessing``)."""
        self.failure: dict[str, Any] | None = None
        """Why the trial failed (kind, summary, each site error), reported under ``failure``; None if it did not."""
        for participant in spec.participants:
            cost = self.dry_run.get(participant.site_id)
            metrics.set_privacy(
                participant.site_id,
                epsilon_spent=cost.spent_before if cost else 0.0,
                epsilon_budget=cost.epsilon_budget if cost else spec.privacy.epsilon_budget,
                delta=spec.privacy.delta,
            )
            metrics.set_trial_privacy(
                participant.site_id, epsilon_spent=0.0, epsilon_budget=spec.privacy.epsilon_budget
            )

    # -- audit ---------------------------------------------------------------------------------

    def record(self, event: str, payload: dict[str, Any]) -> str:
        """Append one audit entry and mirror the chain head into the metrics; return its hash."""
        entry = self.audit.append(event, payload)
        head = self.audit.head
        self.metrics.set_audit_head(head.hash, head.length)
        return entry.hash

    # -- lifecycle -----------------------------------------------------------------------------

    def trial_started(self, *, time_bounds: dict[str, float] | None = None) -> None:
        """Audit the start, with the time bounds (seconds by name) the trial waits under."""
        spec = self.loaded.spec
        self.state = "running"
        self.spec_copy = copy_spec(self.loaded, self.run_dir)
        self.metrics.set_state("running")
        self.metrics.set_secure_aggregation(False)
        self.record(
            "trial-started",
            {
                "run_id": self.run_id,
                "spec_file": self.loaded.shown_as,
                "purpose": spec.purpose,
                "sites": [p.site_id for p in spec.participants],
                "rounds": spec.rounds,
                "strategy": spec.strategy.name,
                **({"time_bounds": time_bounds} if time_bounds is not None else {}),
            },
        )

    def resumed(self, *, last_completed_round: int, time_bounds: dict[str, float] | None = None) -> None:
        """Audit that this run, found ``interrupted``, goes on after its last completed round (``--resume``)."""
        self.state = "running"
        self.metrics.set_state("running")
        self.metrics.set_secure_aggregation(False)
        self.record(
            "trial-resumed",
            {
                "run_id": self.run_id,
                "found": "interrupted",
                "last_completed_round": last_completed_round,
                "resumes_at_round": last_completed_round + 1,
                **({"time_bounds": time_bounds} if time_bounds is not None else {}),
            },
        )

    def round_started(self, server_round: int) -> str:
        self.metrics.start_round(server_round)
        return self.record("round-configured", {"round": server_round})

    def update_rejected(self, server_round: int, site_id: str, reason: str, detail: str) -> None:
        """Count, audit and report one update kept out of the aggregate (a refusal or a failed screening)."""
        if site_id in self.metrics.sites:
            self.metrics.reject_update(site_id, reason)
        else:  # an error reply from a node that never named its site: no label value to count it under
            logger.warning(
                "round %s: rejection from unnamed %s (%s) is audited but not counted", server_round, site_id, reason
            )
        rejection = {"site_id": site_id, "reason": reason, "detail": detail}
        self.rejections.setdefault(server_round, []).append(rejection)
        self.record("update-rejected", {"round": server_round, **rejection})

    def incident_recorded(self, incident: Incident) -> None:
        """Count, audit and report one policy violation and the action taken."""
        if incident.site_id in self.metrics.sites and incident.rule in self.metrics.rules:
            self.metrics.record_violation(incident.site_id, incident.rule)
        elif incident.site_id in self.metrics.sites:  # a clause a site named that no rule label has
            logger.warning("incident of unknown rule %.63r is audited but not counted", incident.rule)
        self.incidents.append(asdict(incident))
        self.record("policy-violation", asdict(incident))

    def privacy_reported(self, server_round: int, site_id: str, figures: MetricRecord) -> None:
        """Publish a site's ledger after its charge for this round (what the site's ledger now holds)."""
        spent, budget, delta = (
            as_float(figures, k) for k in (wire.EPSILON_SPENT, wire.EPSILON_BUDGET, wire.PRIVACY_DELTA)
        )
        if site_id in self.metrics.sites:
            self.metrics.set_privacy(site_id, epsilon_spent=spent, epsilon_budget=budget, delta=delta)
            self.metrics.set_trial_privacy(
                site_id,
                epsilon_spent=as_float(figures, wire.TRIAL_EPSILON),
                epsilon_budget=as_float(figures, wire.TRIAL_EPSILON_BUDGET),
            )
        self.privacy[site_id] = {
            "epsilon_spent": spent,
            "epsilon_budget": budget,
            "trial_epsilon": as_float(figures, wire.TRIAL_EPSILON),
            "trial_epsilon_budget": as_float(figures, wire.TRIAL_EPSILON_BUDGET),
            "trial_epsilon_by_release": {
                kind: as_float(figures, key) if key in figures else 0.0
                for kind, key in wire.TRIAL_EPSILON_BY_RELEASE.items()
            },
            "delta": delta,
            "last_charged_round": server_round,
        }

    def budget_exhausted(self, server_round: int, site_id: str, reason: str) -> None:
        """Audit and show that a site refused a round for lack of privacy budget."""
        if site_id not in self.budget_exhausted_sites:
            self.budget_exhausted_sites[site_id] = server_round
            if site_id in self.metrics.sites:
                self.metrics.set_budget_exhausted(site_id)
        self.record("privacy-budget-exhausted", {"round": server_round, "site_id": site_id, "reason": reason})

    def round_skipped(self, server_round: int, *, accepted: int, required: int) -> None:
        """Audit a round that aggregated nothing: the previous global model stays."""
        self.skipped_rounds.add(server_round)
        screened_out = sum(r["reason"] != SITE_REFUSED for r in self.rejections.get(server_round, []))
        # A budget stop ends the trial inside this round: show who trained in it now.
        self.metrics.set_participants_active(min(accepted + screened_out, len(self.metrics.sites)))
        self.record(
            "round-skipped", {"round": server_round, "accepted_updates": accepted, "min_participants": required}
        )

    def round_finished(self, outcome: RoundOutcome) -> None:
        for site_id, metrics in outcome.sites.items():
            self.site_counts[site_id] = {"num_train": metrics.num_train, "num_test": metrics.num_test}
        released = {s: m for s, m in outcome.sites.items() if m.num_test >= self.min_cohort_size}
        withheld = (outcome.sites.keys() - released.keys()) | {
            s for s in outcome.withheld_sites if s in self.metrics.sites
        }
        for site_id in withheld:  # counted every round: each round withholds the site's statistics again
            self.suppressed_sites.add(site_id)
            self.metrics.suppress_small_cell(site_id)
        for site_id, m in released.items():
            self.metrics.set_site_metrics(site_id, "test", accuracy=m.test_accuracy, loss=m.test_loss)
            if m.train_accuracy is not None and m.train_loss is not None:
                self.metrics.set_site_metrics(site_id, "train", accuracy=m.train_accuracy, loss=m.train_loss)
        g = outcome.global_metrics
        if g is not None:
            self.metrics.set_global_metrics(
                "test",
                accuracy=g.test_accuracy,
                auroc=g.test_auroc,
                auroc_sites=g.auroc_sites,
                auroc_test_records=g.auroc_num_test,
            )
        gap_noise = fairness_gap_noise_std(
            [(m.num_test, m.test_accuracy) for m in released.values()],
            noise_multiplier=self.loaded.spec.privacy.evaluation_noise_multiplier,
        )
        gap = fairness_gap([m.test_accuracy for m in released.values()])
        if gap_noise is not None and gap_noise > FAIRNESS_GAP_MAX_NOISE_STD:
            gap = None  # made of noise: not reported, and the fairness alert is not fed
        if gap_noise is not None:
            self.metrics.set_fairness_gap_noise(gap_noise)
        if gap is not None:
            self.metrics.set_fairness_gap(gap)
        self.metrics.finish_round(outcome.server_round, outcome.duration_seconds, len(outcome.trained_sites))
        entry = {
            "round": outcome.server_round,
            "duration_seconds": round(outcome.duration_seconds, 4),
            "trained_sites": sorted(outcome.trained_sites),
            "refusals": [{"site_id": s, "reason": r} for s, r in outcome.refusals],
            "rejections": self.rejections.pop(outcome.server_round, []),
            "aggregated": outcome.server_round not in self.skipped_rounds,
            "sites": {s: _site_stats(m) for s, m in sorted(released.items())},
            "suppressed_sites": sorted(withheld),
            "global": asdict(g) if g is not None else None,
            "fairness_accuracy_gap": gap,
            "fairness_accuracy_gap_noise_std": gap_noise,
            "site_audit_entries": {s: h for s, (h, _) in sorted(outcome.site_audit_heads.items())},
        }
        self.site_heads.update(outcome.site_audit_heads)
        self.rounds.append(entry)
        self.record("round-aggregated", entry)
        if self.on_round is not None:
            self.on_round(outcome)

    def control_changed(self, request: ControlRequest) -> None:
        """A regulator's suspend, resume or terminate request, honoured before the next round."""
        state = {"suspend": "suspended", "resume": "running", "terminate": "terminated"}[request.action.value]
        self.state = state
        self.metrics.set_state(state)
        event = {"suspend": "trial-suspended", "resume": "trial-resumed", "terminate": "trial-terminated"}[
            request.action.value
        ]
        self.record(
            event,
            {"reason": request.reason, "requested_at": request.requested_at, "before_round": len(self.rounds) + 1},
        )

    @property
    def aggregated_rounds(self) -> int:
        """Rounds whose updates moved the global model."""
        return sum(1 for entry in self.rounds if entry["aggregated"])

    def trial_failed(
        self, arrays: ArrayRecord | None, *, kind: str, summary: str, failures: list[SiteFailure]
    ) -> dict[str, Any]:
        """Audit each site failure and why the trial failed, then end it ``failed`` (see :meth:`trial_finished`).

        ``model.pt`` is written only if some round aggregated: the initial model is no result.
        """
        for failure in failures:
            self.record("site-internal-error", failure.as_json())
        self.failure = {
            "kind": kind,
            "summary": summary,
            "site_errors": [failure.as_json() for failure in distinct(failures)],
        }
        self.record("trial-failed", {"kind": kind, "summary": summary, "site_errors": len(failures)})
        return self.trial_finished(arrays if self.aggregated_rounds else None, state=FAILED_STATE)

    def trial_finished(self, arrays: ArrayRecord | None, *, state: str = "finished") -> dict[str, Any]:
        """Write ``model.pt``, the final audit entry, ``report.json`` and ``metrics.prom``; return the report.

        ``state`` is ``finished``, ``terminated`` when a regulator stopped the trial,
        ``budget-exhausted`` when too few sites could pay for another round, or ``failed``
        (:meth:`trial_failed`).
        """
        self.state = state
        self._reconcile_privacy()
        if arrays is not None:
            buffer = io.BytesIO()
            torch.save(arrays.to_torch_state_dict(), buffer)
            write_bytes_atomic(self.run_dir / layout.MODEL_FILE, buffer.getvalue())
        self.metrics.set_state(state)
        self.record(
            "trial-finished", {"state": state, "rounds_completed": len(self.rounds), "model_saved": arrays is not None}
        )
        report = self.report()
        write_signed_report(self.run_dir, report, self.signer)
        write_textfile(self.registry, self.run_dir / layout.METRICS_FILE)
        return report

    def _reconcile_privacy(self) -> None:
        """Make the report and metrics show what each visible site ledger holds for this trial.

        A site that charged its ledger and then failed sent no figures for that charge; its ledger
        (under the run folder for a simulated site) is the truth. Each correction is audited.
        """
        spec = self.loaded.spec
        for participant in spec.participants:
            site_id = participant.site_id
            found = visible_ledger(self.run_dir, site_id, trial_id=spec.trial_id)
            if isinstance(found, str):
                self.ledger_problems[site_id] = found
                self.record("privacy-ledger-unreadable", {"site_id": site_id, "reason": found})
                continue
            if found is None:
                continue
            self.ledger_sites.add(site_id)
            figures = found.as_report()
            reported = self.privacy.get(site_id)
            if reported is not None and all(reported[k] == v for k, v in figures.items()):
                continue
            self.record(
                "privacy-reconciled",
                {
                    "site_id": site_id,
                    "reported_round": reported["last_charged_round"] if reported else None,
                    "ledger_round": found.last_charged_round,
                    "ledger_charges": found.charges,
                    "trial_epsilon": found.trial_epsilon,
                    "epsilon_spent": found.epsilon_spent,
                },
            )
            self.privacy[site_id] = figures
            if site_id in self.metrics.sites:
                self.metrics.set_privacy(
                    site_id, epsilon_spent=found.epsilon_spent, epsilon_budget=found.epsilon_budget, delta=found.delta
                )
                self.metrics.set_trial_privacy(
                    site_id, epsilon_spent=found.trial_epsilon, epsilon_budget=found.trial_epsilon_budget
                )

    # -- report --------------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """The run's report as a JSON-ready dict (schema ``sandbox-report/1``)."""
        spec = self.loaded.spec
        last = self.rounds[-1] if self.rounds else None
        head = self.audit.head
        sites = []
        for participant in spec.participants:
            counts = self.site_counts.get(participant.site_id, {})
            suppressed = participant.site_id in self.suppressed_sites
            final = last["sites"].get(participant.site_id) if last is not None else None
            sites.append(
                {
                    "site_id": participant.site_id,
                    "jurisdiction": participant.jurisdiction,
                    "num_train": None if suppressed else counts.get("num_train"),
                    "num_test": None if suppressed else counts.get("num_test"),
                    "suppressed": suppressed,
                    "final": final,
                    "privacy": self._site_privacy(participant.site_id),
                    **self.record_extra.get("sites_extra", {}).get(participant.site_id, {}),
                }
            )
        return {
            "schema": REPORT_SCHEMA,
            "trial_id": spec.trial_id,
            "title": spec.title,
            "purpose": spec.purpose,
            "run_id": self.run_id,
            "spec_file": layout.SPEC_COPY_FILE,
            "spec_hash": self.loaded.spec_hash,
            "spec": self.spec_copy,
            "signer": self.signer.signer(),
            "state": self.state,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.clock().isoformat(),
            "model": model_record(spec),
            "model_file": model_file_record(self.run_dir),
            **{key: value for key, value in self.record_extra.items() if key != "sites_extra"},
            "strategy": spec.strategy.model_dump(mode="json"),
            "rounds_planned": spec.rounds,
            "rounds_completed": len(self.rounds),
            "min_cohort_size": self.min_cohort_size,
            "sites": sites,
            "final": {
                "global": last["global"] if last is not None else None,
                "fairness_accuracy_gap": last["fairness_accuracy_gap"] if last is not None else None,
                "mean_over_sites": (
                    mean_over_sites(
                        last["sites"], evaluation_noise_multiplier=self.loaded.spec.privacy.evaluation_noise_multiplier
                    )
                    if last is not None
                    else None
                ),
            },
            "preprocessing": self.preprocessing,
            "rounds": self.rounds,
            "failure": self.failure,
            "consent": self.consent,
            "incidents": self.incidents,
            "audit": {
                "coordinator": {"path": layout.AUDIT_FILE, "hash": head.hash, "length": head.length},
                "sites": site_heads(
                    self.run_dir,
                    {p.site_id: self.site_configs.get(p.site_id) for p in spec.participants},
                    trial_id=spec.trial_id,
                    reply_heads=self.site_heads,
                ),
            },
            "privacy_scope": {"accountant": spec.privacy.accountant, **PRIVACY_SCOPE},
        }

    def _site_privacy(self, site_id: str) -> dict[str, Any]:
        """A site's privacy figures for the report: its ledger after its last charge, and the dry run."""
        spec = self.loaded.spec
        cost = self.dry_run.get(site_id)
        reported = self.privacy.get(site_id)
        figures: dict[str, Any] = (
            reported
            if reported is not None
            else {
                "epsilon_spent": cost.spent_before if cost else 0.0,
                "epsilon_budget": cost.epsilon_budget if cost else spec.privacy.epsilon_budget,
                "trial_epsilon": 0.0,
                "trial_epsilon_budget": spec.privacy.epsilon_budget,
                "trial_epsilon_by_release": dict.fromkeys(wire.TRIAL_EPSILON_BY_RELEASE, 0.0),
                "delta": spec.privacy.delta,
                "last_charged_round": None,
            }
        )
        if site_id in self.ledger_sites:
            source = SOURCE_LEDGER
        elif reported is not None:
            source = SOURCE_REPLY
        else:
            source = SOURCE_NONE
        return {
            **figures,
            "epsilon_source": source,
            "ledger_problem": self.ledger_problems.get(site_id),
            "accountant": spec.privacy.accountant,
            "budget_exhausted_at_round": self.budget_exhausted_sites.get(site_id),
            "dry_run": cost.as_dict() if cost else None,
        }


def fairness_gap(accuracies: list[float]) -> float | None:
    """Max minus min of per-site test accuracies (ratio 0-1); None with no site."""
    return (max(accuracies) - min(accuracies)) if accuracies else None


def _site_stats(metrics: SiteRoundMetrics) -> dict[str, Any]:
    """A site's released round statistics for the report (its id is the key they sit under)."""
    stats = asdict(metrics)
    del stats["site_id"]
    return stats
