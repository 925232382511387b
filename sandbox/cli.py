"""The ``sandbox`` command: for researchers (validate, run) and regulators (audit verify).

Exit codes (one table for every command; see README):
0 ok, 1 internal error (a bug), 2 bad input, 3 refused by policy, 4 privacy budget exhausted,
5 integrity check failed, 6 a required service unreachable.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from monitoring.exporter import DEFAULT_LINGER_SECONDS
from participants.approval_keys import load_private_key
from sandbox.cli_approvals import approve, certs_app
from sandbox.cli_certs import ca, node_key, server
from sandbox.cli_control import resume, suspend, terminate
from sandbox.cli_deployment import (
    RootCertificatesOption,
    SuperLinkOption,
    WaitOption,
    nodes_app,
    run_deployment,
)
from sandbox.cli_evidence import report as report_command
from sandbox.cli_evidence import status as status_command
from sandbox.cli_policies import check, policies_app, show_preflight
from sandbox.cli_privacy import privacy_app
from sandbox.consent import clear_trial
from sandbox.engine_choice import Engine, engine_choice
from sandbox.federation import load_federation
from sandbox.resolved_trial import resolve_trial
from sandbox.run_state import INTERRUPTED, REPORT_MISSING, run_state
from trialcore.audit_entry import ChainHead
from trialcore.audit_verify import verify_chain
from trialcore.cli_output import OutputFormat, configure_logging, emit_json, guarded, plain
from trialcore.errors import BadInputError, ExitCode, Problem, show_value, terminal_safe
from trialcore.spec_loading import LoadedSpec, load_spec

logger = logging.getLogger(__name__)
CONTEXT = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    name="sandbox",
    help="Federated regulatory sandbox: define, check, run and audit cross-border trials.",
    context_settings=CONTEXT,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
audit_app = typer.Typer(help="Verify tamper-evident audit chains.", context_settings=CONTEXT, no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(policies_app, name="policies")
app.add_typer(privacy_app, name="privacy")
app.add_typer(nodes_app, name="nodes")
app.command("check")(check)
app.command("approve")(approve)
app.add_typer(certs_app, name="certs")
certs_app.command("ca")(ca)
certs_app.command("server")(server)
certs_app.command("node-key")(node_key)
app.command("report")(report_command)
app.command("status")(status_command)
for _command in (suspend, resume, terminate):
    app.command()(_command)

FormatOption = typer.Option(
    OutputFormat.text, "--format", help="text for people, json for machines (one document on stdout)."
)
stderr = Console(stderr=True)


def load_checked_spec(spec_path: str) -> LoadedSpec:
    """The spec, with its strategy parameters checked against the chosen Flower strategy (exit 2 if not)."""
    from sandbox.strategy_choice import check_strategy  # imports Flower: only when a spec is checked

    return check_strategy(load_spec(spec_path))


def check_runs_root(runs_root: Path, trial_id: str) -> None:
    """Refuse (exit 2) a ``--runs-root`` the run folder cannot be made in, before the engine starts.

    The nearest existing folder on the way to ``runs_root/<trial-id>`` must be a folder the sandbox
    may write in; a file anywhere on that way is named.
    """
    shown = str(runs_root)
    target = runs_root / trial_id
    probe = target
    while True:
        try:
            info = probe.stat()
        except (FileNotFoundError, NotADirectoryError):
            if probe.parent == probe:
                break
            probe = probe.parent
            continue
        except OSError as err:
            raise BadInputError(
                f"Cannot use --runs-root '{shown}'",
                [
                    Problem(
                        "--runs-root",
                        "",
                        f"{show_value(str(probe))} ({err.strerror})",
                        "a folder the sandbox can write in",
                    )
                ],
            ) from err
        if not stat.S_ISDIR(info.st_mode):
            found = f"{show_value(str(probe))} is a file, not a folder"
            raise BadInputError(
                f"Cannot use --runs-root '{shown}'",
                [
                    Problem(
                        "--runs-root",
                        "",
                        found,
                        "a folder (or a path where one can be made) for runs/<trial-id>/<run-id>/",
                    )
                ],
            )
        if not os.access(probe, os.W_OK | os.X_OK):
            raise BadInputError(
                f"Cannot use --runs-root '{shown}'",
                [
                    Problem(
                        "--runs-root",
                        "",
                        f"{show_value(str(probe))} is not writable",
                        "a folder the sandbox can write in",
                    )
                ],
            )
        return


def _load_all(spec_path: str) -> LoadedSpec:
    loaded = load_checked_spec(spec_path)
    load_federation(loaded)
    return loaded


@app.command()
def validate(
    spec: str = typer.Argument(..., help="Trial spec (YAML)."),
    output: OutputFormat = FormatOption,
) -> None:
    """Check a trial spec and its federation; print every problem at once (exit 2) or a summary."""
    loaded = guarded(output, lambda: _load_all(spec))
    summary = spec_summary(loaded)
    if output is OutputFormat.json:
        emit_json({"ok": True, **summary})
        return
    console = Console()
    table = Table(title=f"Trial '{loaded.spec.trial_id}' is valid", show_header=False, title_justify="left")
    for key, value in summary.items():
        if key != "participants":
            table.add_row(key, plain(value))
    table.add_row("participants", ", ".join(f"{p['site_id']} ({p['jurisdiction']})" for p in summary["participants"]))
    console.print(table)


def spec_summary(loaded: LoadedSpec) -> dict[str, Any]:
    """The one-screen summary of a valid spec."""
    spec = loaded.spec
    privacy = spec.privacy
    return {
        "spec_file": loaded.shown_as,
        "spec_hash": loaded.spec_hash,
        "trial_id": spec.trial_id,
        "title": spec.title,
        "purpose": spec.purpose,
        "model": spec.model.name,
        "strategy": spec.strategy.name,
        "rounds": spec.rounds,
        "min_participants": spec.min_participants,
        "local_training": f"{spec.local_training.epochs} epoch(s), batch {spec.local_training.batch_size}, lr {spec.local_training.learning_rate}",
        "privacy": f"epsilon budget {privacy.epsilon_budget} per site for this trial, delta {privacy.delta}, {privacy.accountant} accountant"
        + (
            f", DP-SGD noise {privacy.noise_multiplier}, clip {privacy.max_grad_norm}"
            if privacy.noise_multiplier
            else ", no DP-SGD"
        ),
        "aggregator_jurisdiction": spec.aggregator.jurisdiction,
        "federation": str(loaded.federation_dir),
        "seed": spec.seed,
        "participants": [{"site_id": p.site_id, "jurisdiction": p.jurisdiction} for p in spec.participants],
    }


@app.command()
def run(
    spec: str | None = typer.Argument(None, help="Trial spec (YAML); with --resume, the run's own spec by default."),
    runs_root: Path = typer.Option(Path("runs"), "--runs-root", help="Where runs/<trial-id>/<run-id>/ is written."),
    metrics_port: int = typer.Option(
        9464,
        "--metrics-port",
        min=0,
        max=65535,
        help="Port to serve Prometheus metrics on 127.0.0.1 (0 = any free port).",
    ),
    linger_seconds: float = typer.Option(
        DEFAULT_LINGER_SECONDS,
        "--linger-seconds",
        min=0,
        help="Keep serving the final metrics this long after the trial ends, so Prometheus scrapes the end state "
        "(default: three scrape intervals of the shipped Prometheus config; 0 = stop at once).",
    ),
    output: OutputFormat = FormatOption,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Flower's and Ray's logs."),
    engine: Engine | None = typer.Option(
        None,
        "--engine",
        help="simulation (one process tree, the demo) or deployment (a SuperLink and one SuperNode per site); "
        "default: the spec's engine section, else simulation.",
    ),
    superlink: str | None = SuperLinkOption,
    root_certificates: Path | None = RootCertificatesOption,
    wait_seconds: float = WaitOption,
    resume: Path | None = typer.Option(
        None, "--resume", help="Go on with this interrupted (killed) run folder from its last completed round."
    ),
    cpus_per_site: float = typer.Option(
        1.0, "--cpus-per-site", min=0.01, help="CPUs Ray reserves for each simulated site (fewer sites run at once)."
    ),
    timeouts: list[str] = typer.Option(
        [],
        "--timeout",
        help="NAME=SECONDS: nodes-connect (120), first-reply (300), round-reply (1800), engine-stop (30); "
        "a trial that waits longer ends failed, exit 6.",
    ),
    coordinator_key: Path | None = typer.Option(
        None,
        "--coordinator-key",
        help="The coordinator's Ed25519 private key (sandbox certs new-key) that signs report.json; "
        "without it the run signs with a key made for it alone, and verification says the signer is not pinned.",
    ),
) -> None:
    """Pre-flight a trial against every site's policy and signed approval (exit 3 if refused, 5 if an approval fails its check), then run it in Flower's simulation engine or, with --engine deployment, through a SuperLink (exit 6 if unreachable), serving metrics. A trial in which a site cannot take part fails (exit 1); one in which no round aggregated fails too (exit 3); a site or the engine that does not answer within its time bound fails it with exit 6."""
    # Imported here: the simulation stack (Flower, Ray, torch, Opacus) takes seconds to load.
    from sandbox.report_html import write_html_report
    from sandbox.run_inputs import run_inputs
    from sandbox.run_view import RoundProgress, print_failure, print_leftovers, print_run_summary, run_summary
    from sandbox.site_failures import FAILED_STATE, FAILURE_EXIT_CODES
    from sandbox.trial_recorder import BUDGET_EXHAUSTED_STATE
    from sandbox.trial_run import run_in_simulation

    configure_logging(verbose)
    inputs = guarded(
        output,
        lambda: run_inputs(
            spec,
            resume=resume,
            timeouts=timeouts,
            runs_root=runs_root,
            load=load_checked_spec,
            check_runs_root=check_runs_root,
        ),
    )
    loaded = inputs.loaded
    if coordinator_key is not None:
        guarded(output, lambda: load_private_key(coordinator_key))
    trial = guarded(output, lambda: resolve_trial(loaded))
    clearance = guarded(output, lambda: clear_trial(trial))
    if clearance.verdict.refused:
        stderr.print("[bold red]Refused by policy before round 1; nothing ran.[/bold red] Why not:")
        show_preflight(clearance.verdict, output, permits=False)
        raise typer.Exit(int(ExitCode.REFUSED_BY_POLICY))
    print_leftovers(stderr, inputs.resume, runs_root / loaded.spec.trial_id)
    noise = loaded.spec.privacy.evaluation_noise_multiplier
    progress = RoundProgress(loaded.spec.rounds, enabled=not verbose, evaluation_noise_multiplier=noise)

    def served(url: str) -> None:
        stderr.print(f"Serving metrics for Prometheus at [bold]{url}[/bold] while the trial runs")

    chosen = engine_choice(
        loaded,
        engine=engine,
        superlink=superlink,
        root_certificates=root_certificates,
        recorded=inputs.recorded_engine,
    )
    if chosen.engine is Engine.deployment:
        result = run_deployment(
            trial,
            superlink=chosen.superlink,
            root_certificates=chosen.root_certificates,
            runs_root=runs_root,
            metrics_port=metrics_port,
            wait_seconds=wait_seconds,
            output=output,
            progress=lambda done: stderr.print(f"round {done} of {loaded.spec.rounds} done"),
            coordinator_key=coordinator_key,
            resume=inputs.resume,
            linger_seconds=linger_seconds,
            bounds=inputs.bounds,
        )
    else:
        with progress:
            result = guarded(
                output,
                lambda: run_in_simulation(
                    trial,
                    runs_root=runs_root,
                    metrics_port=metrics_port,
                    on_metrics_served=served,
                    on_round=progress.update,
                    linger_seconds=linger_seconds,
                    clearance=clearance,
                    show_engine_logs=verbose,
                    bounds=inputs.bounds,
                    resume=inputs.resume,
                    client_cpus=cpus_per_site,
                    coordinator_key=coordinator_key,
                ),
            )
    # After the trial (outside the bench's timing): people read it, no run needs it.
    signer = load_private_key(coordinator_key).public_key() if coordinator_key is not None else None
    try:
        write_html_report(result.run_dir, coordinator_key=signer)
    except Exception as err:  # the trial's outcome and exit code stand; the page can be written later
        logger.exception("report.html was not written")
        stderr.print(
            f"report.html was not written ({type(err).__name__}); write it with: sandbox report {result.run_dir}"
        )
    summary = {**run_summary(result), "evaluation_noise_multiplier": noise}
    terminated = summary["state"] == "terminated"
    if output is OutputFormat.json:
        emit_json({"ok": summary["state"] == "finished", **summary})
    else:
        print_run_summary(Console(), summary)
    if summary["state"] == FAILED_STATE:
        print_failure(stderr, summary)
        raise typer.Exit(int(FAILURE_EXIT_CODES.get(summary["failure"]["kind"], ExitCode.INTERNAL_ERROR)))
    if terminated:
        stderr.print(
            "[bold red]The trial was terminated on request before it finished[/bold red] (see the audit chain for the reason)."
        )
        raise typer.Exit(int(ExitCode.REFUSED_BY_POLICY))
    if summary["state"] == BUDGET_EXHAUSTED_STATE:
        exhausted = ", ".join(f"{site} (round {r})" for site, r in summary.get("budget_exhausted_sites", {}).items())
        stderr.print(
            "[bold red]The trial stopped early: too few sites have privacy budget left[/bold red] "
            f"(refused for budget: {exhausted}). Each site's ledger and report.json show its spend; "
            "lower the rounds, raise the noise multiplier, or wait for a new budget period."
        )
        raise typer.Exit(int(ExitCode.BUDGET_EXHAUSTED))


@audit_app.command("verify")
def audit_verify(
    path: Path = typer.Argument(..., help="A run folder (runs/<trial-id>/<run-id>), or one audit chain (audit.jsonl)."),
    report: Path | None = typer.Option(
        None, "--report", help="report.json holding the chain's recorded head (detects truncation); chains only."
    ),
    coordinator_key: Path | None = typer.Option(
        None,
        "--coordinator-key",
        help="The coordinator's public key (PEM) the report must be signed by; run folders only. Without it the key "
        "stored in the run folder is used, and the signer is not pinned.",
    ),
    site_chains: str | None = typer.Option(
        None,
        "--site-chains",
        help="SITE=FOLDER[,SITE=FOLDER...]: the state folder (or chain file) of each site that keeps its chain "
        "outside the run folder; run folders only.",
    ),
    output: OutputFormat = FormatOption,
) -> None:
    """Verify a run folder (signature, every chain, model and spec hashes, cross-references, ledgers, metrics: one line per check) or one chain; exit 0 if intact, 5 naming the first failure; for a run's chain, also say whether the run ended or was interrupted."""
    if path.is_dir():
        from sandbox.cli_verify import verify_run_folder

        verify_run_folder(path, coordinator_key=coordinator_key, site_chains=site_chains, output=output)
        return
    if coordinator_key is not None or site_chains is not None:
        guarded(output, lambda: _run_folder_only(path))
    expected = guarded(output, lambda: _expected_head(path, report)) if report is not None else None
    result = guarded(output, lambda: verify_chain(path, expected_head=expected))
    state = run_state(path) if result.ok else None
    if output is OutputFormat.json:
        emit_json(
            {
                "ok": result.ok,
                "exit_code": 0 if result.ok else int(ExitCode.INTEGRITY_FAILED),
                **result.as_json(),
                "run_state": state,
            }
        )
    elif result.ok:
        print(terminal_safe(f"{path}: intact, {result.length} entries, head {result.head_hash}"))
        if state is not None:
            print(terminal_safe(f"{path}: {RUN_STATE_LINES.get(state, f'run {state}')}"))
    else:
        sys.stderr.write(result.message() + "\n")
    if not result.ok:
        raise typer.Exit(int(ExitCode.INTEGRITY_FAILED))


def _run_folder_only(path: Path) -> None:
    raise BadInputError(
        f"--coordinator-key and --site-chains check a run folder, not '{path}'",
        [Problem(str(path), "", "not a folder", "a run folder runs/<trial-id>/<run-id> (or drop those options)")],
    )


RUN_STATE_LINES = {
    INTERRUPTED: "run interrupted: no final entry and no report.json (the run was killed, or is still running)",
    REPORT_MISSING: "run ended but report.json is missing beside its chain",
}


def _expected_head(chain: Path, report_path: Path) -> ChainHead:
    """The head recorded in report.json for ``chain`` (the coordinator's or a site's)."""
    from sandbox.report_heads import recorded_head

    return recorded_head(report_path, chain)


def main() -> None:
    """Console-script entry point."""
    app()
