"""The coordinator's deployment commands: ``sandbox nodes register`` and the deployment half of ``sandbox run``.

``sandbox nodes register SPEC --superlink HOST:PORT --root-certificates ca.pem`` registers the node
key every site of the trial publishes in its federation (``<site-id>.node.pub``) with the SuperLink,
so those SuperNodes, and no others, can connect (the SuperLink runs with
``--enable-supernode-auth``). ``sandbox run SPEC --engine deployment --superlink HOST:PORT
--root-certificates ca.pem`` runs the trial through that SuperLink (:mod:`sandbox.deployment_run`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from sandbox.node_bindings import SiteNode, register_sites
from sandbox.superlink_control import SuperLinkAddress, SuperLinkClient, parse_address, wait_reachable
from trialcore.cli_output import OutputFormat, emit_json, guarded
from trialcore.errors import BadInputError, Problem
from trialcore.spec_loading import load_spec

CONTEXT = {"help_option_names": ["-h", "--help"]}
nodes_app = typer.Typer(
    help="SuperNodes of a deployment: register the sites' published node keys with the SuperLink.",
    context_settings=CONTEXT,
    no_args_is_help=True,
)
DEFAULT_WAIT_SECONDS = 30.0


SuperLinkOption = typer.Option(
    None, "--superlink", help="The SuperLink as HOST:PORT (deployment engine).", envvar="SANDBOX_SUPERLINK"
)
RootCertificatesOption = typer.Option(
    None,
    "--root-certificates",
    help="CA certificate the SuperLink's TLS certificate is checked against (sandbox certs ca).",
    envvar="SANDBOX_ROOT_CERTIFICATES",
)
WaitOption = typer.Option(
    DEFAULT_WAIT_SECONDS,
    "--wait-seconds",
    min=1,
    help="How long to wait for an unreachable SuperLink before giving up (exit 6).",
)


def superlink_address(superlink: str | None, root_certificates: Path | None) -> SuperLinkAddress:
    """The SuperLink to use; TLS is required (``--root-certificates``) unless SANDBOX_INSECURE_SUPERLINK=1."""
    problems = []
    if not superlink:
        problems.append(Problem("--superlink", "", "nothing", "HOST:PORT of the SuperLink (the deployment engine)"))
    if root_certificates is None and os.environ.get("SANDBOX_INSECURE_SUPERLINK") != "1":
        problems.append(
            Problem("--root-certificates", "", "nothing", "the CA certificate of the SuperLink's TLS (ca.pem)")
        )
    if problems:
        raise BadInputError("The deployment engine needs a SuperLink reached over TLS", problems)
    assert superlink is not None
    return parse_address(superlink, root_certificates=root_certificates)


@nodes_app.command("register")
def register(
    spec: str = typer.Argument(..., help="Trial spec (YAML); its federation holds each site's <site-id>.node.pub."),
    superlink: str | None = SuperLinkOption,
    root_certificates: Path | None = RootCertificatesOption,
    wait_seconds: float = WaitOption,
    output: OutputFormat = typer.Option(OutputFormat.text, "--format", help="text or json."),
) -> None:
    """Register every site's published node key with the SuperLink (already registered keys are kept)."""

    def act() -> list[SiteNode]:
        loaded = load_spec(spec)
        address = superlink_address(superlink, root_certificates)
        wait_reachable(address, wait_seconds=wait_seconds)
        client = SuperLinkClient(address, wait_seconds=wait_seconds)
        try:
            return register_sites(loaded, client)
        finally:
            client.close()

    nodes = guarded(output, act)
    if output is OutputFormat.json:
        emit_json({"ok": True, "nodes": [node.__dict__ for node in nodes]})
        return
    console = Console()
    for node in nodes:
        state = "registered" if node.newly_registered else "already registered"
        console.print(f"{node.site_id}: node {node.node_id} ({state}; key {node.fingerprint[:16]})")


def run_deployment(
    trial: Any,
    *,
    superlink: str | None,
    root_certificates: Path | None,
    runs_root: Path,
    metrics_port: int,
    wait_seconds: float,
    output: OutputFormat,
    progress: Any,
    coordinator_key: Path | None = None,
    resume: Any = None,
    linger_seconds: float = 0.0,
    bounds: Any = None,
) -> Any:
    """The deployment half of ``sandbox run``: the run's :class:`~sandbox.trial_run.RunResult`.

    ``resume`` (a :class:`~sandbox.run_resume.ResumePoint`), ``linger_seconds`` and the time
    ``bounds`` (a :class:`~sandbox.time_bounds.TimeBounds`) reach the ServerApp through the run config.
    """
    from sandbox.deployment_run import run_in_deployment

    stderr = Console(stderr=True)
    address = guarded(output, lambda: superlink_address(superlink, root_certificates))

    def submitted(run_dir: Path, flower_run_id: int) -> None:
        stderr.print(f"Flower run {flower_run_id} started on the SuperLink at {address.address}; run folder {run_dir}")

    return guarded(
        output,
        lambda: run_in_deployment(
            trial,
            address=address,
            runs_root=runs_root,
            metrics_port=metrics_port,
            wait_seconds=wait_seconds,
            on_round=progress,
            on_submitted=submitted,
            coordinator_key=coordinator_key,
            resume=resume,
            linger_seconds=linger_seconds,
            bounds=bounds,
        ),
    )
