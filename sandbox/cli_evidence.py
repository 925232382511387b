"""``sandbox report RUN_DIR`` (writes report.html) and ``sandbox status RUN_DIR`` (reads, never writes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from trialcore.cli_output import OutputFormat, emit_json, guarded
from trialcore.errors import BadInputError, Problem, terminal_safe

FormatOption = typer.Option(
    OutputFormat.text, "--format", help="text for people, json for machines (one document on stdout)."
)


def report(
    run_dir: Path = typer.Argument(..., help="A run folder (runs/<trial-id>/<run-id>) holding report.json."),
    coordinator_key: Path | None = typer.Option(
        None,
        "--coordinator-key",
        help="The coordinator's public key (PEM), to pin the signer in the page's verification.",
    ),
    output: OutputFormat = FormatOption,
) -> None:
    """Write report.html beside report.json: the exit report for people, self-contained (no network), with plots."""
    from sandbox.report_html import write_html_report  # matplotlib: only when a report is drawn
    from sandbox.report_signature import load_public_key

    key = guarded(output, lambda: load_public_key(coordinator_key)) if coordinator_key is not None else None

    def write() -> Path:
        try:
            return write_html_report(run_dir, coordinator_key=key)
        except (OSError, ValueError) as err:
            raise BadInputError(
                f"Cannot read the report of '{run_dir}'",
                [Problem(str(run_dir / "report.json"), "", str(err)[:120], "a report.json written by sandbox run")],
            ) from err

    path = guarded(output, write)
    if output is OutputFormat.json:
        emit_json({"ok": True, "report_html": str(path)})
    else:
        print(terminal_safe(f"wrote {path}"))


def status(
    run_dir: Path = typer.Argument(..., help="A run folder (runs/<trial-id>/<run-id>)."),
    output: OutputFormat = FormatOption,
) -> None:
    """One screen on a running or finished trial: state, round, each site's participation and epsilon, last incidents, chain heads. Changes nothing."""
    from sandbox.run_status import run_status, status_error

    def read() -> dict[str, Any]:
        error = status_error(run_dir)
        if error is not None:
            raise error
        return run_status(run_dir)

    found = guarded(output, read)
    if output is OutputFormat.json:
        emit_json(found)
        return
    print_status(Console(), found)


def _fmt(value: Any) -> str:
    return "n/a" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))


def print_status(console: Console, found: dict[str, Any]) -> None:
    """The status document as a title line, a table per site, the incidents and the heads."""
    live = " (metrics live)" if found["metrics_live"] else ""
    console.print(
        f"[bold]{found['trial_id']}[/bold] {found['run_dir']}: [bold]{found['state']}[/bold]{live}, round "
        f"{found['round']} of {_fmt(found['rounds_planned'])} ({found['rounds_completed']} completed)",
        soft_wrap=True,
    )
    table = Table(title_justify="left")
    for column in ("site", "rounds trained", "rounds refused", "epsilon: trial / budget"):
        table.add_column(column)
    for site in found["sites"]:
        table.add_row(
            site["site_id"],
            str(len(site["rounds_trained"])),
            ", ".join(map(str, site["rounds_refused"])) or "-",
            f"{_fmt(site['trial_epsilon'])} / {_fmt(site['trial_epsilon_budget'])}",
        )
    console.print(table)
    for incident in found["last_incidents"]:
        console.print(
            f"incident round {incident.get('round')}: {incident.get('site_id')} {incident.get('rule')} -> "
            f"{incident.get('action')} (report by {incident.get('reporting_deadline')})",
            soft_wrap=True,
        )
    chain = found["chain"]
    console.print(
        f"coordinator chain: {'intact' if chain['intact'] else 'BROKEN: ' + str(chain['problem'])}, "
        f"{chain['length']} entries, head {chain['head']}",
        soft_wrap=True,
    )
    heads = found.get("recorded_heads") or {}
    for site_id, head in sorted((heads.get("sites") or {}).items()):
        console.print(f"site {site_id} chain head {head.get('hash')} ({head.get('length')} entries)", soft_wrap=True)
    if not found["metrics_live"] and found["state"] in ("running", "interrupted"):
        console.print("the run's metrics endpoint does not answer: figures are those of the audit chain", style="dim")
