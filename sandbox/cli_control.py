"""``sandbox suspend|resume|terminate RUN_DIR --reason ...``: a regulator's controls over a running trial."""

from __future__ import annotations

from pathlib import Path

import typer

from sandbox.trial_control import Action, request_action
from trialcore.cli_output import OutputFormat, emit_json, guarded

ReasonOption = typer.Option(..., "--reason", help="Why (one line; it goes into the audit chain).")
FormatOption = typer.Option(OutputFormat.text, "--format", help="text or json.")
RunDirArgument = typer.Argument(..., help="The running trial's folder, runs/<trial-id>/<run-id>/.")


def _request(run_dir: Path, action: Action, reason: str, output: OutputFormat) -> None:
    request = guarded(output, lambda: request_action(run_dir, action, reason, shown_as=str(run_dir)))
    if output is OutputFormat.json:
        emit_json(
            {
                "ok": True,
                "run_dir": str(run_dir),
                "action": request.action.value,
                "reason": request.reason,
                "requested_at": request.requested_at,
            }
        )
    else:
        print(
            f"{request.action.value} requested for {run_dir}; the coordinator honours it before the next round and audits it."
        )


def suspend(run_dir: Path = RunDirArgument, reason: str = ReasonOption, output: OutputFormat = FormatOption) -> None:
    """Suspend a running trial before its next round (it waits until resumed or terminated)."""
    _request(run_dir, Action.suspend, reason, output)


def resume(run_dir: Path = RunDirArgument, reason: str = ReasonOption, output: OutputFormat = FormatOption) -> None:
    """Resume a suspended trial."""
    _request(run_dir, Action.resume, reason, output)


def terminate(run_dir: Path = RunDirArgument, reason: str = ReasonOption, output: OutputFormat = FormatOption) -> None:
    """Terminate a running trial before its next round; it writes its report with state 'terminated'."""
    _request(run_dir, Action.terminate, reason, output)
