"""Run a trial in Flower's simulation engine, in this process (what ``sandbox run`` does).

Flower's ``run_simulation`` is deprecated in 1.42 but is the only in-process entry point; flwr is
pinned, and its one deprecation warning is filtered by name below. The ServerApp runs in a thread
of this process, so the metrics registry and the progress callback are passed in directly, and
metrics are served on loopback for the whole trial. Flower's and Ray's own logs go to the run
folder's ``engine.log`` (:mod:`sandbox.engine_log`); the simulated sites' output reaches the
console only with ``show_engine_logs`` (``sandbox run --verbose``), and stays in Ray's session
folder otherwise.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from monitoring.exporter import serve
from participants.client_app import make_client_app
from sandbox.consent import Clearance
from sandbox.engine_choice import Engine, EngineChoice
from sandbox.engine_log import engine_log
from sandbox.engine_processes import EngineWatch, end_processes
from sandbox.resolved_trial import ResolvedTrial
from sandbox.round_outcome import RoundOutcome
from sandbox.run_engine_record import record_engine
from sandbox.run_resume import ResumePoint
from sandbox.server_app import TrialHooks, make_server_app, new_metrics, new_run_id
from sandbox.time_bounds import TimeBounds
from trialcore import layout, wire
from trialcore.atomic_file import write_bytes_atomic
from trialcore.spec_loading import LoadedSpec

logger = logging.getLogger(__name__)

FLOWER_ENVIRONMENT = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "RAY_DEDUP_LOGS": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
}


@dataclass(frozen=True)
class RunResult:
    """Where the run left its evidence, and its report."""

    run_dir: Path
    report: dict[str, Any]
    metrics_url: str


def simulated_site_settings(loaded: LoadedSpec, run_dir: Path) -> dict[str, str]:
    """The run settings a simulated site needs: the run folder (its state) and the federation it belongs to."""
    return {
        wire.RUN_DIR: str(run_dir.resolve()),
        wire.FEDERATION_DIR: str(loaded.federation_dir),
        wire.FEDERATION_SITES: ",".join(loaded.spec.site_ids),
    }


def run_in_simulation(
    trial: ResolvedTrial,
    *,
    runs_root: Path,
    metrics_port: int,
    on_metrics_served: Callable[[str], None] | None = None,
    on_round: Callable[[RoundOutcome], None] | None = None,
    linger_seconds: float = 0.0,
    clearance: Clearance | None = None,
    show_engine_logs: bool = False,
    bounds: TimeBounds | None = None,
    resume: ResumePoint | None = None,
    client_cpus: float = 1.0,
    coordinator_key: Path | None = None,
) -> RunResult:
    """Run ``trial`` with one simulated SuperNode per participant; return its run folder and report.

    ``clearance`` is the permitting pre-flight and consent the caller ran (recorded in the audit chain).
    Metrics are served from before round 1 until ``linger_seconds`` after the trial ends, so a
    Prometheus scraping every few seconds also records the final state. ``show_engine_logs``
    also prints Flower's, Ray's and the simulated sites' logs on the console. ``bounds`` are the
    time bounds (:mod:`sandbox.time_bounds`); ``resume`` goes on with a killed run in its own folder
    (:mod:`sandbox.run_resume`); ``client_cpus`` is what Ray reserves per simulated site. ``coordinator_key``
    signs report.json (:mod:`sandbox.report_signature`); None = a key made for this run only.
    """
    loaded = trial.loaded
    bounds = bounds or TimeBounds()
    os.environ.update(FLOWER_ENVIRONMENT)
    run_dir = resume.run_dir if resume is not None else layout.run_dir(runs_root, loaded.spec.trial_id, new_run_id())
    registry = CollectorRegistry()
    hooks = TrialHooks(
        registry=registry,
        metrics=new_metrics(loaded, registry, run_id=run_dir.name),
        on_round=on_round,
        clearance=clearance,
        bounds=bounds,
        resume=resume.checkpoint if resume is not None else None,
        engine_stopped=threading.Event(),
        coordinator_key=coordinator_key,
    )
    server_app = make_server_app({wire.RUN_DIR: str(run_dir.resolve())}, hooks, trial)
    client_app = make_client_app(simulated_site_settings(loaded, run_dir))
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume is None:
        record_engine(run_dir, EngineChoice(Engine.simulation, None, None), bounds)
    with serve(registry, port=metrics_port) as server, EngineWatch(run_dir) as watch:
        if on_metrics_served is not None:
            on_metrics_served(server.url)
        write_bytes_atomic(run_dir / layout.METRICS_URL_FILE, f"{server.url}\n".encode())
        with engine_log(run_dir.resolve() / layout.ENGINE_LOG_FILE, also_console=show_engine_logs):
            _run_engine(
                lambda: _run_simulation(
                    server_app,
                    client_app,
                    num_supernodes=len(loaded.spec.participants),
                    sites_to_console=show_engine_logs,
                    client_cpus=client_cpus,
                ),
                hooks,
                watch,
            )
        time.sleep(linger_seconds)
    if hooks.report is None:
        raise RuntimeError("the simulation ended without a report; see the Flower log above")
    return RunResult(run_dir=run_dir, report=hooks.report, metrics_url=server.url)


def _run_engine(start: Callable[[], None], hooks: TrialHooks, watch: EngineWatch) -> None:
    """Run the engine (``start``) in its own thread, within the time bounds of ``hooks``.

    The engine failing (Ray cannot start its workers) stops the ServerApp's waits at once, and it
    records the failure within ``engine-stop`` seconds. When the ServerApp has ended but the engine
    does not stop within ``engine-stop`` seconds (a simulated site stuck in a handler), its worker
    processes are ended.
    """
    bound = hooks.bounds.engine_stop_seconds
    errors: list[BaseException] = []

    def engine() -> None:
        try:
            start()
        except BaseException as err:  # reported below, in the caller's thread
            errors.append(err)

    thread = threading.Thread(target=engine, name="flower-simulation", daemon=True)
    thread.start()
    try:
        while thread.is_alive() and not hooks.server_done.is_set():
            thread.join(0.2)
    except KeyboardInterrupt:  # Ctrl-C: stop waiting, leave the run interrupted (resumable), as a kill would
        hooks.interrupted = True
        if hooks.engine_stopped is not None:
            hooks.engine_stopped.set()
        hooks.server_done.wait(bound)
        raise
    if thread.is_alive():  # the ServerApp ended: the engine stops on its own, or is stopped
        thread.join(bound)
        if thread.is_alive():
            stuck = watch.engine()
            logger.warning("the engine did not stop within %g s; ending its %d process(es)", bound, len(stuck))
            end_processes(stuck)
            thread.join(bound)
    elif not hooks.server_done.is_set():  # the engine ended first: it failed, or the ServerApp never ran
        hooks.engine_error = root_cause(errors[0]) if errors else "the engine ended before the trial did"
        if hooks.engine_stopped is not None:
            hooks.engine_stopped.set()
        hooks.server_done.wait(bound)
    if errors and hooks.report is None:
        raise errors[0]


def root_cause(error: BaseException) -> str:
    """One line naming the innermost cause of ``error`` (Flower wraps Ray's errors twice)."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}"[:300]


class _DriverThreadWarning(logging.Filter):
    """Drops Ray's one "SIGTERM handler is not set because current thread is not the main thread" record.

    The engine runs in its own thread so that its failure cannot hang the trial (:func:`_run_engine`);
    without Ray's handler a SIGTERM ends the process at once, which leaves an ``interrupted`` run
    that ``sandbox run --resume`` continues, as after ``kill -9``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("SIGTERM handler is not set")


class _RunSimulationDeprecation(logging.Filter):
    """Drops Flower's one "DEPRECATED FEATURE: The `run_simulation` function ..." log record.

    flwr 1.42 logs (not warns) this deprecation; flwr is pinned and run_simulation is the only
    in-process entry point, so this single record, and nothing else, is filtered.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            str(record.msg).startswith("DEPRECATED FEATURE")
            and "run_simulation" in " ".join(map(str, record.args or ()))
        )


def _run_simulation(
    server_app: Any, client_app: Any, *, num_supernodes: int, sites_to_console: bool, client_cpus: float
) -> None:
    from flwr.simulation import run_simulation

    flower_logger = logging.getLogger("flwr")
    deprecation = _RunSimulationDeprecation()
    flower_logger.addFilter(deprecation)
    ray_worker_logger = logging.getLogger("ray._private.worker")
    driver_thread = _DriverThreadWarning()
    ray_worker_logger.addFilter(driver_thread)
    try:
        run_simulation(
            server_app=server_app,
            client_app=client_app,
            num_supernodes=num_supernodes,
            backend_config={
                "client_resources": {"num_cpus": client_cpus, "num_gpus": 0.0},
                "init_args": {"log_to_driver": sites_to_console},
            },
        )
    finally:
        flower_logger.removeFilter(deprecation)
        ray_worker_logger.removeFilter(driver_thread)
