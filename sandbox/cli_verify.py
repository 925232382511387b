"""``sandbox audit verify RUN_DIR``: one line per check of a run folder, exit 5 naming the first failure."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from sandbox.report_signature import load_public_key
from sandbox.run_verify import Check, verify_run
from trialcore.cli_output import OutputFormat, emit_json, guarded
from trialcore.errors import BadInputError, ExitCode, Problem, show_value, terminal_safe


def parse_site_chains(text: str | None) -> dict[str, Path]:
    """``SITE=FOLDER[,SITE=FOLDER...]`` as a map; exit 2 naming each malformed item."""
    if not text:
        return {}
    found: dict[str, Path] = {}
    problems = []
    for item in text.split(","):
        site, sep, folder = item.partition("=")
        if not sep or not site.strip() or not folder.strip():
            problems.append(Problem("--site-chains", "", show_value(item), "SITE=FOLDER items separated by commas"))
            continue
        found[site.strip()] = Path(folder.strip())
    if problems:
        raise BadInputError("Cannot read --site-chains", problems)
    return found


def verify_run_folder(
    run_dir: Path, *, coordinator_key: Path | None, site_chains: str | None, output: OutputFormat
) -> list[Check]:
    """Run every check of :mod:`sandbox.run_verify`, print them, and exit 5 if any failed."""
    key = guarded(output, lambda: load_public_key(coordinator_key)) if coordinator_key is not None else None
    chains = guarded(output, lambda: parse_site_chains(site_chains))
    checks = verify_run(run_dir, coordinator_key=key, site_chains=chains)
    failed = [check for check in checks if not check.ok]
    if output is OutputFormat.json:
        emit_json(
            {
                "ok": not failed,
                "exit_code": int(ExitCode.INTEGRITY_FAILED) if failed else 0,
                "run_dir": str(run_dir),
                "signer_pinned": coordinator_key is not None,
                "checks": [check.as_json() for check in checks],
                "first_failure": failed[0].as_json() if failed else None,
            }
        )
    else:
        for check in checks:
            print(terminal_safe(check.line()))
        if failed:
            sys.stderr.write(
                terminal_safe(f"{run_dir}: verification failed at {failed[0].name}: {failed[0].detail}") + "\n"
            )
        else:
            print(terminal_safe(f"{run_dir}: verified ({len(checks)} checks)"))
    if failed:
        raise typer.Exit(int(ExitCode.INTEGRITY_FAILED))
    return checks
