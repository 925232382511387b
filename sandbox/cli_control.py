"""``sandbox suspend|resume|terminate RUN_DIR --reason ... --key KEY``: a regulator's signed controls over a running trial.

The request is signed with the regulator's Ed25519 private key (``sandbox certs new-key``); the
coordinator honours it only if the trial's sandbox plan names that key as the regulator's
(:mod:`sandbox.sandbox_plan`, recorded in the run's chain as ``regulator-keys``). An unsigned
request exits 3 (refused by policy), one signed by any other key exits 5 (integrity); both are
still handed to the coordinator, which refuses and audits them (``control-refused``).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from participants.approval_keys import load_private_key
from sandbox.signed_control import UNSIGNED
from sandbox.trial_control import Action, request_action
from trialcore.cli_output import OutputFormat, emit_json, guarded
from trialcore.errors import ExitCode
from trialcore.layout import AUDIT_FILE

ReasonOption = typer.Option(..., "--reason", help="Why (one line; it goes into the audit chain).")
FormatOption = typer.Option(OutputFormat.text, "--format", help="text or json.")
RunDirArgument = typer.Argument(..., help="The running trial's folder, runs/<trial-id>/<run-id>/.")
KeyOption = typer.Option(
    None,
    "--key",
    help="The regulator's Ed25519 private key; the trial's sandbox plan must name its public key. Unsigned requests are refused (exit 3).",
    envvar="SANDBOX_REGULATOR_KEY",
)


def recorded_regulator(run_dir: Path) -> list[str]:
    """The regulator key fingerprints the run recorded at its start (none if it recorded none yet)."""
    try:
        lines = (run_dir / AUDIT_FILE).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == "regulator-keys" and entry.get("actor") == "coordinator":
            return [str(f) for f in entry.get("payload", {}).get("fingerprints", [])]
    return []


def _request(run_dir: Path, action: Action, reason: str, key_path: Path | None, output: OutputFormat) -> None:
    key = guarded(output, lambda: load_private_key(key_path)) if key_path is not None else None
    request, refused = guarded(
        output,
        lambda: request_action(
            run_dir, action, reason, shown_as=str(run_dir), key=key, regulator=recorded_regulator(run_dir)
        ),
    )
    code = 0
    if refused is not None:
        code = int(ExitCode.REFUSED_BY_POLICY if refused == UNSIGNED else ExitCode.INTEGRITY_FAILED)
    if output is OutputFormat.json:
        emit_json(
            {
                "ok": refused is None,
                "exit_code": code,
                "run_dir": str(run_dir),
                "action": request.action.value,
                "reason": request.reason,
                "requested_at": request.requested_at,
                "refused": refused,
            }
        )
    elif refused == UNSIGNED:
        typer.echo(
            f"error: {action.value} refused: the request is not signed; sign it with the regulator's key (--key) "
            "named by the trial's sandbox plan. The attempt is audited.",
            err=True,
        )
    elif refused is not None:
        typer.echo(
            f"error: {action.value} refused ({refused}): the key is not the regulator's named by the trial's "
            "sandbox plan, or the signature does not verify. The attempt is audited.",
            err=True,
        )
    else:
        print(
            f"{request.action.value} requested for {run_dir}; the coordinator honours it before the next round and audits it."
        )
    if code:
        raise typer.Exit(code)


def suspend(
    run_dir: Path = RunDirArgument,
    reason: str = ReasonOption,
    key: Path | None = KeyOption,
    output: OutputFormat = FormatOption,
) -> None:
    """Suspend a running trial before its next round (it waits until resumed or terminated); signed by the regulator."""
    _request(run_dir, Action.suspend, reason, key, output)


def resume(
    run_dir: Path = RunDirArgument,
    reason: str = ReasonOption,
    key: Path | None = KeyOption,
    output: OutputFormat = FormatOption,
) -> None:
    """Resume a suspended trial; signed by the regulator."""
    _request(run_dir, Action.resume, reason, key, output)


def terminate(
    run_dir: Path = RunDirArgument,
    reason: str = ReasonOption,
    key: Path | None = KeyOption,
    output: OutputFormat = FormatOption,
) -> None:
    """Terminate a running trial before its next round; it writes its report with state 'terminated'. Signed by the regulator."""
    _request(run_dir, Action.terminate, reason, key, output)
