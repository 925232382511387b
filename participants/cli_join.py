"""``participants join`` (check the site, then start its SuperNode) and ``participants withdraw``."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

from participants.join_checks import JoinCheck, check_site
from participants.site_config import LoadedSiteConfig, load_site_config
from participants.supernode_process import SupernodeSettings, run_supernode
from participants.withdrawal import withdraw as withdraw_site
from trialcore.cli_output import OutputFormat, emit_json, guarded
from trialcore.errors import BadInputError, Problem, ServiceUnavailable, show_value

FormatOption = typer.Option(OutputFormat.text, "--format", help="text or json.")
stderr = Console(stderr=True)


def _superlink(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadInputError(
            "Bad --superlink", [Problem("--superlink", "", show_value(value), "HOST:PORT of the SuperLink")]
        )
    return host.strip("[]"), int(port)


def _wait_reachable(host: str, port: int, wait_seconds: float) -> None:
    import socket
    import time

    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            with socket.create_connection((host, port), timeout=2.0):
                return
        except OSError as err:
            if time.monotonic() >= deadline:
                raise ServiceUnavailable(
                    f"The SuperLink at {host}:{port} is unreachable",
                    [
                        Problem(
                            "--superlink",
                            "",
                            f"{err.strerror or type(err).__name__} for {wait_seconds:g} s",
                            "a running SuperLink (ask the trial's coordinator)",
                        )
                    ],
                ) from err
        time.sleep(0.5)


def join(
    superlink: str = typer.Option(..., "--superlink", help="The coordinator's SuperLink, HOST:PORT."),
    site_config: Path = typer.Option(..., "--site-config", help="The site's own node config (YAML)."),
    root_certificates: Path = typer.Option(
        ..., "--root-certificates", help="The CA certificate of the SuperLink's TLS (from the coordinator)."
    ),
    auth_key: Path = typer.Option(
        ..., "--auth-key", help="The node's private key (sandbox certs node-key; it never leaves the site)."
    ),
    spec: Path | None = typer.Option(
        None, "--spec", help="Also check that this trial lists the site and that its signed approval is valid."
    ),
    port: int = typer.Option(9094, "--port", min=1, max=65535, help="Port of the SuperNode's own Runtime API."),
    wait_seconds: float = typer.Option(
        60.0, "--wait-seconds", min=1, help="How long to wait for an unreachable SuperLink before giving up (exit 6)."
    ),
    check_only: bool = typer.Option(False, "--check-only", help="Run the site's checks and stop."),
    output: OutputFormat = FormatOption,
) -> None:
    """Check the site on its own machine (policy in force, data, cohort, approvals, state folder, node key), then start its SuperNode."""

    def checked() -> tuple[JoinCheck, LoadedSiteConfig]:
        site = load_site_config(site_config)
        if not root_certificates.is_file():
            raise BadInputError(
                "No CA certificate",
                [Problem("--root-certificates", "", show_value(str(root_certificates)), "the CA file (ca.pem)")],
            )
        return check_site(site, auth_key=auth_key, spec=spec), site

    check, site = guarded(output, checked)
    if not check.ok:
        guarded(output, lambda: _raise(BadInputError("The site is not ready to join", check.problems)))
    if output is OutputFormat.json and check_only:
        emit_json({"ok": True, "checks": check.seen})
        return
    stderr.print("Site checks passed: " + ", ".join(f"{k}={v}" for k, v in check.seen.items()))
    if check_only:
        return
    host, port_number = guarded(output, lambda: _superlink(superlink))
    guarded(output, lambda: _wait_reachable(host, port_number, wait_seconds))
    settings = SupernodeSettings(
        superlink=superlink,
        root_certificates=root_certificates,
        auth_key=auth_key,
        site=site,
        port=port,
        wait_seconds=wait_seconds,
    )

    def echo(line: str) -> None:
        sys.stderr.write(line + "\n")

    code, why = run_supernode(settings, echo=echo)
    if output is OutputFormat.json:
        emit_json({"ok": code == 0, "exit_code": code, "why": why})
    else:
        stderr.print(("" if code == 0 else "error: ") + why)
    raise typer.Exit(code)


def _raise(error: Exception) -> None:
    raise error


def withdraw(
    trial_id: str = typer.Argument(..., help="The trial the site stops taking part in."),
    site_config: Path = typer.Option(..., "--site-config", help="The site's own node config (YAML)."),
    reason: str = typer.Option(..., "--reason", help="Why (one line; it goes into the site's audit chain)."),
    output: OutputFormat = FormatOption,
) -> None:
    """Withdraw the site from a trial: from the next message on, its SuperNode refuses that trial (audited here and at the coordinator)."""
    withdrawal = guarded(output, lambda: withdraw_site(load_site_config(site_config), trial_id, reason))
    if output is OutputFormat.json:
        emit_json({"ok": True, **withdrawal.__dict__})
        return
    print(
        f"{withdrawal.site_id} withdrew from trial {withdrawal.trial_id!r} at {withdrawal.withdrawn_at}; "
        "its SuperNode refuses every further message of that trial."
    )


__all__ = ["join", "withdraw"]
