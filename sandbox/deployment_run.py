"""Run a trial on Flower's deployment engine: a SuperLink reached over TLS, one authenticated SuperNode per site.

What ``sandbox run --engine deployment --superlink HOST:PORT`` does after the same pre-flight as
in simulation:

1. waits (bounded) for the SuperLink; unreachable is exit 6 and nothing is written;
2. binds each site to the node its published key is registered under (:mod:`sandbox.node_bindings`);
3. submits this project as a Flower app with ``flwr run`` (Flower's own CLI, a private
   ``FLWR_HOME`` naming only this SuperLink and its CA); the SuperLink runs the same ServerApp
   as ``flwr run`` does (:mod:`sandbox.server_app`: pre-flight again, metrics, audit, report)
   with the run folder, metrics port, node bindings and the coordinator's key file (the path, read
   by the ServerApp on the SuperLink's machine to sign report.json; the key itself never travels)
   in its run config;
4. follows the run through the Control API until Flower says it finished, reporting rounds from
   the run's audit chain; returns the report the ServerApp wrote.

If the SuperLink stops answering mid-run for longer than ``wait_seconds``, the run folder gets
``engine-unreachable.json`` (written whole, atomically) and the error is exit 6; the report is
never half-written (the ServerApp writes it atomically, or not at all), and ``sandbox audit
verify`` says the run was interrupted.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from sandbox.engine_choice import Engine, EngineChoice
from sandbox.node_bindings import bindings_text, bound_nodes
from sandbox.resolved_trial import ResolvedTrial
from sandbox.run_engine_record import record_engine
from sandbox.run_resume import ResumePoint
from sandbox.server_app import new_run_id
from sandbox.superlink_control import SuperLinkAddress, SuperLinkClient, unreachable, wait_reachable
from sandbox.time_bounds import TimeBounds, run_config_key
from sandbox.trial_run import FLOWER_ENVIRONMENT, RunResult
from trialcore import layout, wire
from trialcore.atomic_file import write_json_atomic
from trialcore.errors import BadInputError, Problem, ServiceUnavailable

logger = logging.getLogger(__name__)

PROJECT_DIR = Path(__file__).resolve().parents[1]
"""The Flower app ``flwr run`` packs: this project's folder (its pyproject.toml names the apps)."""
CONNECTION = "sandbox"
ROUND_EVENT = "round-aggregated"
SKIPPED_EVENT = "round-skipped"


def flower_home(folder: Path, address: SuperLinkAddress) -> Path:
    """A private ``FLWR_HOME`` whose only connection, ``sandbox``, is this SuperLink with its CA."""
    lines = [
        "[superlink]",
        f'default = "{CONNECTION}"',
        "",
        f"[superlink.{CONNECTION}]",
        f'address = "{address.address}"',
    ]
    if address.root_certificates is not None:
        lines.append(f'root-certificates = "{address.root_certificates.resolve()}"')
    else:
        lines.append("insecure = true")
    (folder / "config.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def _toml_string(value: str) -> str:
    return "'" + value.replace("'", "") + "'"


def submit_run(address: SuperLinkAddress, run_config: Mapping[str, str | int | float], *, wait_seconds: float) -> int:
    """``flwr run <project> sandbox --run-config ...``; the Flower run id.

    Raises
    ------
    ServiceUnavailable
        ``flwr run`` could not reach the SuperLink within ``wait_seconds``.
    """
    if not (PROJECT_DIR / "pyproject.toml").is_file():
        raise BadInputError(
            "Cannot submit the trial",
            [Problem(str(PROJECT_DIR), "", "no pyproject.toml", "the project's source folder (the Flower app)")],
        )
    overrides = " ".join(
        f"{key}={_toml_string(value) if isinstance(value, str) else value}" for key, value in run_config.items()
    )
    flwr = Path(sys.executable).parent / "flwr"
    with tempfile.TemporaryDirectory(prefix="sandbox-flwr-home-") as home:
        env = {**os.environ, **FLOWER_ENVIRONMENT, "FLWR_HOME": str(flower_home(Path(home), address))}
        try:
            completed = subprocess.run(
                [str(flwr), "run", str(PROJECT_DIR), CONNECTION, "--run-config", overrides, "--format", "json"],
                env=env,
                capture_output=True,
                text=True,
                timeout=max(wait_seconds, 30.0) + 60.0,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            raise unreachable(address, f"flwr run did not return within {err.timeout:.0f} s") from err
    try:
        document = json.loads(completed.stdout[completed.stdout.find("{") :])
    except ValueError:
        document = {}
    if completed.returncode != 0 or not document.get("success"):
        detail = (document.get("error") or completed.stderr or completed.stdout or "no output").strip()
        raise ServiceUnavailable(
            f"flwr run could not start the trial on the SuperLink at {address.address}",
            [Problem("--superlink", "", detail.splitlines()[-1][:200], "a SuperLink that accepts the run")],
        )
    return int(document["run-id"])


def rounds_done(run_dir: Path) -> int:
    """How many rounds the run's coordinator chain shows aggregated or skipped so far."""
    try:
        text = (run_dir / layout.AUDIT_FILE).read_text(encoding="utf-8")
    except OSError:
        return 0
    return sum(
        1 for line in text.splitlines() if f'"event":"{ROUND_EVENT}"' in line or f'"event":"{SKIPPED_EVENT}"' in line
    )


def record_unreachable(run_dir: Path, address: SuperLinkAddress, flower_run_id: int, last_seen: str) -> None:
    """Write ``engine-unreachable.json`` into the run folder (atomically)."""
    write_json_atomic(
        run_dir / layout.ENGINE_UNREACHABLE_FILE,
        {
            "superlink": address.address,
            "flower_run_id": flower_run_id,
            "last_answer_at": last_seen,
            "detected_at": datetime.now(UTC).isoformat(),
            "state": "interrupted",
            "report_written": (run_dir / layout.REPORT_FILE).is_file(),
        },
    )


def run_in_deployment(
    trial: ResolvedTrial,
    *,
    address: SuperLinkAddress,
    runs_root: Path,
    metrics_port: int,
    wait_seconds: float = 30.0,
    poll_seconds: float = 2.0,
    on_round: Callable[[int], None] | None = None,
    on_submitted: Callable[[Path, int], None] | None = None,
    coordinator_key: Path | None = None,
    resume: ResumePoint | None = None,
    linger_seconds: float = 0.0,
    bounds: TimeBounds | None = None,
) -> RunResult:
    """Run ``trial`` through the SuperLink at ``address``; its run folder and report.

    ``coordinator_key`` is the coordinator's private key file that signs report.json
    (:mod:`sandbox.report_signature`); None = a key made for this run only. ``resume`` goes on
    with an interrupted run in its own folder from its checkpoint (a new Flower run, the same
    trial run: :mod:`sandbox.coordinator_process`); ``linger_seconds`` keeps the ServerApp
    serving its final metrics. ``bounds`` (:mod:`sandbox.time_bounds`) reach the ServerApp as the
    run config's ``timeout-NAME-seconds`` keys; a new run records its engine and bounds in its
    folder (:mod:`sandbox.run_engine_record`) for ``--resume``.

    Raises
    ------
    ServiceUnavailable
        The SuperLink cannot be reached at start, or stops answering for ``wait_seconds`` mid-run (exit 6).
    BadInputError
        A site's node key is not published or not registered.
    """
    loaded = trial.loaded
    bounds = bounds or TimeBounds()
    wait_reachable(address, wait_seconds=wait_seconds)
    client = SuperLinkClient(address, wait_seconds=wait_seconds)
    try:
        bindings = bound_nodes(loaded, client.nodes())
        if resume is not None:
            run_dir = resume.run_dir.resolve()
        else:
            run_dir = layout.run_dir(runs_root, loaded.spec.trial_id, new_run_id()).resolve()
        run_config: dict[str, str | int | float] = {
            wire.TRIAL_SPEC: str(loaded.path),
            wire.RUN_DIR: str(run_dir),
            wire.METRICS_PORT: metrics_port,
            wire.FEDERATION_DIR: str(loaded.federation_dir),
            wire.NODE_BINDINGS: bindings_text(bindings),
            wire.LINGER_SECONDS: float(linger_seconds),
            **{run_config_key(name): seconds for name, seconds in bounds.as_json().items()},
        }
        if coordinator_key is not None:
            run_config[wire.COORDINATOR_KEY] = str(coordinator_key.resolve())
        if resume is not None:
            run_config[wire.RESUME_RUN] = 1
        else:
            choice = EngineChoice(Engine.deployment, address.address, address.root_certificates)
            record_engine(run_dir, choice, bounds)
        flower_run_id = submit_run(address, run_config, wait_seconds=wait_seconds)
        if on_submitted is not None:
            on_submitted(run_dir, flower_run_id)
        last_seen = datetime.now(UTC).isoformat()
        shown = 0
        while True:
            try:
                status = client.run_status(flower_run_id)
            except ServiceUnavailable:
                record_unreachable(run_dir, address, flower_run_id, last_seen)
                raise
            last_seen = datetime.now(UTC).isoformat()
            done = rounds_done(run_dir)
            if on_round is not None and done > shown:
                on_round(done)
                shown = done
            if status.finished:
                break
            time.sleep(poll_seconds)
    finally:
        client.close()
    report_path = run_dir / layout.REPORT_FILE
    if not report_path.is_file():
        raise RuntimeError(
            f"Flower run {flower_run_id} ended {status.sub_status or status.status} without a report "
            f"({status.details or 'no details'}); see the SuperLink's log and {run_dir / layout.AUDIT_FILE}"
        )
    report = json.loads(report_path.read_text(encoding="utf-8"))
    return RunResult(run_dir=run_dir, report=report, metrics_url=f"http://127.0.0.1:{metrics_port}/metrics")
