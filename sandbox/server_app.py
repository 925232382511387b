"""The Flower ServerApp that runs a trial: the governed strategy around the trial's Flower strategy.

``flwr run .`` loads ``app`` (``sandbox.server_app:app``) and reads the run config keys
``trial-spec`` (absolute path), ``runs-root`` and ``metrics-port``. ``sandbox run`` builds its own
app with :func:`make_server_app` so it can inject the metrics registry and a progress callback.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp
from prometheus_client import CollectorRegistry

from monitoring.exporter import serve
from monitoring.metrics import SandboxMetrics
from participants.model import build_model
from policies import Clause
from sandbox.bounded_grid import BoundedGrid, EngineStopped
from sandbox.checkpoint import Checkpoint, remove_checkpoint, save_checkpoint
from sandbox.consent import APPROVAL_CLAUSE, Clearance, approval_status, clear_trial, consent_matrix
from sandbox.coordinator_process import coordinator_process, linger_seconds, resume_checkpoint
from sandbox.enforcement import ENFORCEMENT_RULES, Enforcer
from sandbox.feature_scaling import FeatureScaling, pooled_feature_scaling
from sandbox.governed_strategy import GovernedStrategy, PrivacyBudgetStop
from sandbox.node_loss import SITE_UNAVAILABLE
from sandbox.policy_limits import enforcement_ladder, max_update_l2_norm, min_cohort_size
from sandbox.recorder_state import recorder_state, restore_recorder
from sandbox.report_record import trial_record
from sandbox.report_signature import coordinator_key
from sandbox.resolved_trial import ResolvedTrial, resolve_trial
from sandbox.round_outcome import RoundOutcome
from sandbox.sandbox_plan import regulator_keys
from sandbox.site_failures import ENGINE_UNAVAILABLE, FAILED_STATE, NOTHING_AGGREGATED, TrialFailed
from sandbox.strategy_choice import build_inner_strategy
from sandbox.time_bounds import TimeBounds
from sandbox.trial_control import TrialControl, TrialTerminated
from sandbox.trial_recorder import BUDGET_EXHAUSTED_STATE, TrialRecorder
from sandbox.update_screening import SCREENING_REASONS, SITE_REFUSED, TRUST_REASONS
from trialcore import layout, wire
from trialcore.atomic_file import write_bytes_atomic
from trialcore.canonical_json import canonical_json
from trialcore.spec_loading import LoadedSpec, load_spec

logger = logging.getLogger(__name__)

REJECTION_REASONS = (SITE_REFUSED, *SCREENING_REASONS, *TRUST_REASONS, SITE_UNAVAILABLE)
"""Reasons an update can be rejected (label ``reason``); each starts at 0 for every site."""
GUARD_CLAUSES = (
    wire.QUESTION_BUDGET_CLAUSE,
    wire.MESSAGE_TYPE_CLAUSE,
    wire.PARTICIPANTS_CLAUSE,
    wire.FEATURE_SCALING_CLAUSE,
)
"""Clauses a site's guard names that are no policy clause (the trial asked what the site refuses)."""
POLICY_RULES = tuple(
    dict.fromkeys((*(clause.value for clause in Clause), APPROVAL_CLAUSE, *ENFORCEMENT_RULES, *GUARD_CLAUSES))
)
"""Policy rules that can be violated (label ``rule``); each starts at 0 for every site."""


@dataclass
class TrialHooks:
    """What ``sandbox run`` injects into the ServerApp and gets back from it."""

    registry: CollectorRegistry
    metrics: SandboxMetrics
    on_round: Callable[[RoundOutcome], None] | None = None
    clearance: Clearance | None = None
    """The pre-flight and consent that let the trial start (both go into the audit chain); None only in benchmarks."""
    report: dict[str, Any] | None = field(default=None)
    bounds: TimeBounds = field(default_factory=TimeBounds)
    """How long the trial waits for sites and the engine (:mod:`sandbox.time_bounds`)."""
    engine_stopped: threading.Event | None = None
    """Set by whoever runs the engine when it stopped: the ServerApp stops waiting and records why (None: not watched)."""
    engine_error: str | None = None
    """One line: why the engine stopped (set before ``engine_stopped``)."""
    server_done: threading.Event = field(default_factory=threading.Event)
    """Set when the ServerApp has ended (its report written, or it raised)."""
    interrupted: bool = False
    """Set with ``engine_stopped`` when the user interrupted the run (Ctrl-C): it stays ``interrupted``, resumable."""
    resume: Checkpoint | None = None
    """Where a killed run stands: the trial goes on from there in the same run folder (``sandbox run --resume``)."""
    coordinator_key: Path | None = None
    """The coordinator's Ed25519 private key that signs report.json; None = a key made for the run only."""


def new_run_id(clock: Callable[[], datetime] | None = None) -> str:
    """A sortable run id from the UTC start time, e.g. ``20261125T101500Z``."""
    moment = clock() if clock is not None else datetime.now(UTC)
    return moment.strftime("%Y%m%dT%H%M%S%fZ")


def new_metrics(loaded: LoadedSpec, registry: CollectorRegistry, *, run_id: str) -> SandboxMetrics:
    """The metric families of one run of the trial (label ``run_id``), every site's counters at 0."""
    return SandboxMetrics(
        registry,
        trial_id=loaded.spec.trial_id,
        run_id=run_id,
        sites=[(p.site_id, p.jurisdiction) for p in loaded.spec.participants],
        reasons=REJECTION_REASONS,
        rules=POLICY_RULES,
    )


def train_config(loaded: LoadedSpec) -> ConfigRecord:
    """What every site is sent each round: the trial spec itself and its hash (Flower adds ``server-round``).

    Sites derive model, local training and DP settings from the spec, after checking it against
    its hash and their own policy (:mod:`participants.site_guard`), never from loose keys.
    """
    return ConfigRecord(
        {
            wire.TRIAL_ID: loaded.spec.trial_id,
            wire.SPEC_HASH: loaded.spec_hash,
            wire.SPEC_JSON: canonical_json(loaded.spec.model_dump(mode="json")).decode("utf-8"),
        }
    )


def round_config(grid: Grid, loaded: LoadedSpec, *, min_cohort_size: int) -> ConfigRecord:
    """The trial's config record completed with the federation-wide feature scaling (asks every site once)."""
    return committed_round_config(grid, loaded, min_cohort_size=min_cohort_size)[0]


def committed_round_config(
    grid: Grid,
    loaded: LoadedSpec,
    *,
    min_cohort_size: int,
    site_nodes: Mapping[str, int] | None = None,
    bounds: TimeBounds | None = None,
) -> tuple[ConfigRecord, FeatureScaling]:
    """:func:`round_config` and the scaling with what each node committed to (its site and count).

    ``site_nodes`` (deployment): each site's authenticated node; no other node can commit for it.
    """
    config = train_config(loaded)
    config[wire.MIN_COHORT_SIZE] = min_cohort_size
    bounds = bounds or TimeBounds()
    scaling = pooled_feature_scaling(
        grid,
        config,
        num_sites=len(loaded.spec.participants),
        num_features=loaded.spec.model.input_features,
        site_ids=loaded.spec.site_ids,
        site_nodes=site_nodes,
        contract=loaded.spec.data,
        timeout_seconds=bounds.first_reply_seconds,
        connect_timeout_seconds=bounds.nodes_connect_seconds,
    )
    config[wire.FEATURE_MEAN] = scaling.mean
    config[wire.FEATURE_STD] = scaling.std
    if scaling.median:
        config[wire.FEATURE_MEDIAN] = scaling.median
    return config, scaling


def run_trial(
    grid: Grid,
    trial: ResolvedTrial,
    run_dir: Path,
    hooks: TrialHooks,
    *,
    site_nodes: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Run the trial on ``grid`` with the governed strategy; return the report written to ``run_dir``.

    ``site_nodes`` binds each site to its authenticated node (deployment, :func:`parse_node_bindings`).

    The trial ends ``failed`` (:mod:`sandbox.site_failures`) when a site cannot take part (it stops
    at once: no more privacy is spent on it), when a site or the engine does not answer within its
    bound (:mod:`sandbox.time_bounds`), or when no round aggregated. With ``hooks.resume`` the run
    goes on from its checkpoint (:mod:`sandbox.checkpoint`) in the same folder and chain.
    """
    loaded, spec = trial.loaded, trial.spec
    verdict = hooks.clearance.verdict if hooks.clearance is not None else None
    regulator = regulator_keys(loaded)
    resume = hooks.resume
    if hooks.engine_stopped is not None:
        grid = BoundedGrid(grid, hooks.engine_stopped)
    statuses = hooks.clearance.statuses if hooks.clearance is not None else None
    recorder = TrialRecorder(
        loaded,
        run_dir,
        run_id=run_dir.name,
        metrics=hooks.metrics,
        registry=hooks.registry,
        on_round=hooks.on_round,
        min_cohort_size=min_cohort_size(verdict),
        privacy_costs=verdict.privacy_costs if verdict is not None else {},
        signer=coordinator_key(hooks.coordinator_key),
        record=trial_record(trial, verdict, statuses),
        site_configs=trial.sites,
    )

    def checkpoint(done: int, arrays: ArrayRecord | None) -> None:
        state = recorder_state(recorder)
        save_checkpoint(run_dir, Checkpoint(loaded.path, loaded.spec_hash, done, arrays, state))

    enforcer = Enforcer(run_dir, enforcement_ladder(verdict))
    strategy = GovernedStrategy(
        build_inner_strategy(spec),
        observer=recorder,
        max_update_l2_norm=max_update_l2_norm(verdict),
        min_participants=spec.min_participants,
        control=TrialControl(
            run_dir,
            on_change=recorder.control_changed,
            regulator=regulator.keys,
            on_refused=lambda request, why: recorder.record("control-refused", {**request, "why": why}),
        ),
        enforcer=enforcer,
        num_sites=len(spec.participants),
        rounds_done=resume.round if resume is not None else 0,
        on_round_end=checkpoint,
        round_reply_seconds=hooks.bounds.round_reply_seconds,
    )
    model = build_model(
        spec.model.name, num_features=spec.model.input_features, hidden_units=spec.model.hidden_units, seed=spec.seed
    )
    initial_arrays = ArrayRecord(model.state_dict())
    if resume is None:
        recorder.trial_started(time_bounds=hooks.bounds.as_json())
        checkpoint(0, None)
    else:
        restore_recorder(recorder, resume.recorder)
        recorder.resumed(last_completed_round=resume.round, time_bounds=hooks.bounds.as_json())
        strategy.budget_exhausted.update(recorder.budget_exhausted_sites)
        enforcer.replay(until_round=resume.round)
        initial_arrays = resume.arrays if resume.arrays is not None else initial_arrays
    if verdict is not None:
        summary = verdict.as_json()["summary"]
        recorder.record(
            "preflight-passed",
            {"sites": summary["sites"], "denials": summary["denials"], "findings": summary["findings"]},
        )
    recorder.consent = (
        hooks.clearance.consent if hooks.clearance is not None else consent_matrix(loaded, approval_status(trial))
    )
    recorder.record("consent-matrix", recorder.consent)
    recorder.record("regulator-keys", regulator.as_json())
    try:
        config, scaling = committed_round_config(
            grid, loaded, min_cohort_size=recorder.min_cohort_size, site_nodes=site_nodes, bounds=hooks.bounds
        )
        strategy.bind(scaling.commitments)
        committed = {c.site_id: c.num_examples for c in scaling.commitments.values()}
        recorder.preprocessing = scaling.preprocessing
        standardised: dict[str, Any] = {"num_features": spec.model.input_features, "committed_counts": committed}
        if scaling.preprocessing is not None:
            standardised["preprocessing"] = scaling.preprocessing
        recorder.record("features-standardised", standardised)
        result = strategy.start(
            grid=grid,
            initial_arrays=initial_arrays,
            num_rounds=spec.rounds - strategy.rounds_done,
            timeout=hooks.bounds.round_reply_seconds,
            train_config=config,
            evaluate_config=ConfigRecord(dict(config)),
        )
        final = result.arrays if result.arrays is not None else (resume.arrays if resume is not None else None)
        if recorder.aggregated_rounds:
            report = recorder.trial_finished(final)
        else:
            report = recorder.trial_failed(
                final,
                kind=NOTHING_AGGREGATED,
                summary="no round aggregated: every update was refused or rejected",
                failures=[],
            )
    except TrialTerminated:
        logger.warning("trial terminated by request before round %d", len(recorder.rounds) + 1)
        report = recorder.trial_finished(strategy.latest_arrays, state="terminated")
    except PrivacyBudgetStop as stop:
        logger.warning("trial stopped: %s", stop)
        recorder.record("trial-stopped-privacy-budget", {"reason": str(stop)})
        report = recorder.trial_finished(strategy.latest_arrays, state=BUDGET_EXHAUSTED_STATE)
    except TrialFailed as failed:
        report = recorder.trial_failed(
            strategy.latest_arrays, kind=failed.kind, summary=failed.summary, failures=failed.failures
        )
    except EngineStopped:
        if hooks.interrupted:
            raise
        cause = hooks.engine_error or "the engine stopped without saying why"
        report = recorder.trial_failed(
            strategy.latest_arrays, kind=ENGINE_UNAVAILABLE, summary=f"the engine stopped: {cause}", failures=[]
        )
    remove_checkpoint(run_dir)
    hooks.report = report
    return report


def parse_node_bindings(text: str) -> dict[str, int] | None:
    """``site-id=node-id,...`` (run config ``node-bindings``) as a mapping; None when empty (simulation).

    Raises
    ------
    ValueError
        A malformed entry (the coordinator's own ``sandbox run`` writes this value).
    """
    if not text.strip():
        return None
    bindings: dict[str, int] = {}
    for entry in text.split(","):
        site, _, node = entry.partition("=")
        bindings[site.strip()] = int(node)
    return bindings


def make_server_app(
    settings: Mapping[str, str], hooks: TrialHooks | None = None, trial: ResolvedTrial | None = None
) -> ServerApp:
    """A ServerApp for the spec and run folder in ``settings`` (``trial-spec``, ``run-dir``).

    ``sandbox run`` passes the ``trial`` it resolved and its ``hooks``; under ``flwr run`` (both None)
    the ServerApp loads, resolves and clears the trial itself, once.
    """
    server_app = ServerApp()

    @server_app.main()
    def _main(grid: Grid, context: Context) -> None:
        merged: dict[str, Any] = {**context.run_config, **settings}
        resolved = trial if trial is not None else resolve_trial(load_spec(str(merged[wire.TRIAL_SPEC])))
        # Under `flwr run` the run folder is named after Flower's run id, which the sites know too.
        runs_root = Path(str(merged.get(wire.RUNS_ROOT) or layout.DEFAULT_RUNS_ROOT))
        default_dir = layout.run_dir(runs_root, resolved.spec.trial_id, layout.flwr_run_name(context.run_id))
        run_dir = Path(str(merged.get(wire.RUN_DIR) or default_dir))
        site_nodes = parse_node_bindings(str(merged.get(wire.NODE_BINDINGS) or ""))
        if hooks is not None:
            try:
                run_trial(grid, resolved, run_dir, hooks, site_nodes=site_nodes)
            finally:
                hooks.server_done.set()
            return
        clearance = clear_trial(resolved)
        if clearance.verdict.refused:
            raise clearance.verdict.refusal()
        registry = CollectorRegistry()
        key = merged.get(wire.COORDINATOR_KEY)
        own = TrialHooks(
            registry=registry,
            metrics=new_metrics(resolved.loaded, registry, run_id=run_dir.name),
            clearance=clearance,
            bounds=TimeBounds().from_run_config(merged),
            coordinator_key=Path(str(key)) if key else None,
            resume=resume_checkpoint(run_dir, merged, spec_hash=resolved.loaded.spec_hash),
        )
        with (
            coordinator_process(run_dir),
            serve(registry, port=int(merged.get(wire.METRICS_PORT, 9464))) as server,
        ):
            logger.warning("serving metrics for Prometheus at %s", server.url)
            run_dir.mkdir(parents=True, exist_ok=True)  # sandbox status finds the running trial's metrics here
            write_bytes_atomic(run_dir / layout.METRICS_URL_FILE, f"{server.url}\n".encode())
            report = run_trial(grid, resolved, run_dir, own, site_nodes=site_nodes)
            time.sleep(linger_seconds(merged))
        if report["state"] == FAILED_STATE:  # say why, once per site error, and let Flower record the run as failed
            for error in report["failure"]["site_errors"]:
                logger.error("site %s: %s", error["site_id"], error["cause"])
            raise RuntimeError(f"trial {resolved.spec.trial_id} failed: {report['failure']['summary']} (see {run_dir})")

    return server_app


app = make_server_app({})
"""The ServerApp ``flwr run`` loads (``sandbox.server_app:app``)."""
