"""``sandbox privacy``: compute epsilon for DP-SGD settings, and read a site's privacy ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from participants.privacy_ledger import PrivacyLedger, summarise
from trialcore.cli_output import OutputFormat, emit_json, guarded, plain
from trialcore.errors import BadInputError, Problem
from trialcore.layout import LEDGER_SUFFIX, PRIVACY_DIR
from trialcore.privacy_accountant import ACCOUNTANT_CHOICES, Mechanism, epsilon, parse_accountant

privacy_app = typer.Typer(
    help="Privacy accounting: epsilon of DP-SGD settings, and a site's privacy ledger.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
)
FormatOption = typer.Option(
    OutputFormat.text, "--format", help="text for people, json for machines (one document on stdout)."
)
OPTIONS = ("--noise-multiplier", "--sample-rate", "--steps", "--delta")


@privacy_app.command("epsilon")
def epsilon_command(
    noise_multiplier: float = typer.Option(
        ..., "--noise-multiplier", help="DP-SGD noise std over the clipping norm (> 0)."
    ),
    sample_rate: float = typer.Option(..., "--sample-rate", help="Poisson sampling rate of each step, in (0, 1]."),
    steps: int = typer.Option(..., "--steps", help="DP-SGD steps (>= 0)."),
    delta: float = typer.Option(..., "--delta", help="Delta of the (epsilon, delta) guarantee, in (0, 1)."),
    accountant: str = typer.Option(
        "rdp", "--accountant", help=f"One of: {ACCOUNTANT_CHOICES} (the Gaussian/CLT accountant is refused)."
    ),
    output: OutputFormat = FormatOption,
) -> None:
    """Epsilon of STEPS DP-SGD steps at one noise multiplier and sample rate, by Opacus's accountant."""
    chosen = guarded(output, lambda: parse_accountant(accountant))
    mechanism = Mechanism(noise_multiplier=noise_multiplier, sample_rate=sample_rate, steps=steps)
    value = guarded(
        output, lambda: epsilon([mechanism], delta=delta, accountant=chosen, source="command line", names=OPTIONS)
    )
    if output is OutputFormat.json:
        emit_json(
            {
                "epsilon": value,
                "accountant": chosen.value,
                "noise_multiplier": noise_multiplier,
                "sample_rate": sample_rate,
                "steps": steps,
                "delta": delta,
            }
        )
        return
    print(
        f"epsilon = {value:.4f}  ({chosen.value} accountant; noise multiplier {noise_multiplier:g}, "
        f"sample rate {sample_rate:g}, {steps} steps, delta {delta:g})"
    )


def _ledger_files(path: Path) -> list[Path]:
    """The ledger at ``path``, or every ledger in the folder ``path`` (a site's ``<state_dir>/privacy``)."""
    if path.is_file() or path.is_symlink():
        return [path]
    if path.is_dir():
        found = [
            p
            for p in sorted(path.glob(f"*{LEDGER_SUFFIX}")) or sorted(path.glob(f"{PRIVACY_DIR}/*{LEDGER_SUFFIX}"))
            if p.is_file()
        ]
        if found:
            return found
    raise BadInputError(
        f"No privacy ledger at {path}",
        [
            Problem(
                str(path),
                "",
                "nothing readable",
                f"a ledger file (<state_dir>/privacy/<dataset>{LEDGER_SUFFIX}), its privacy folder or the state folder",
            )
        ],
    )


@privacy_app.command("ledger")
def ledger_command(
    path: Path = typer.Argument(..., help="A site's ledger file, or its privacy folder (<state_dir>/privacy)."),
    output: OutputFormat = FormatOption,
) -> None:
    """A site's spend per trial and what is left of its budget (exit 5 if the ledger is damaged)."""
    files = guarded(output, lambda: _ledger_files(path))
    summaries: list[dict[str, Any]] = []
    for file in files:
        charges = guarded(output, PrivacyLedger(file).charges)
        summaries.append({"path": str(file), **summarise(charges)})
    if output is OutputFormat.json:
        emit_json({"ledgers": summaries})
        return
    console = Console()
    for summary in summaries:
        if not summary["charges"]:
            console.print(plain(f"{summary['path']}: no charges yet: nothing spent."))
            continue
        table = Table(
            title=f"Privacy ledger of site {summary['site_id']}, dataset {summary['dataset']} ({summary['path']})",
            title_justify="left",
        )
        for column in (
            "trial",
            "rounds charged",
            "steps",
            "trial epsilon / budget",
            "delta",
            "accountant",
            "dataset epsilon after",
        ):
            table.add_column(column)
        for trial in summary["trials"]:
            table.add_row(
                trial["trial_id"],
                str(trial["rounds"]),
                str(trial["steps"]),
                f"{trial['trial_epsilon']:.4f} / {trial['trial_epsilon_budget']:g}",
                f"{trial['delta']:g}",
                trial["accountant"],
                f"{trial['cumulative_epsilon_after']:.4f}",
            )
        console.print(table)
        console.print(
            f"Spent {summary['epsilon_spent']:.4f} of {summary['epsilon_budget']:g}; "
            f"left {summary['epsilon_remaining']:.4f} (epsilon at the latest charge's delta)."
        )
