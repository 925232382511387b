"""``sandbox check`` (the "why not" pre-flight table) and ``sandbox policies list|show``."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from policies import ROW_COLUMNS, PreflightResult, list_presets, load_preset, preset_names, preset_text
from sandbox.consent import clear_trial
from sandbox.preflight import expected_privacy_stop
from sandbox.resolved_trial import resolve_trial
from trialcore.cli_output import OutputFormat, emit_json, guarded, plain
from trialcore.errors import BadInputError, ExitCode, Problem, show_value
from trialcore.spec_loading import load_spec

CONTEXT = {"help_option_names": ["-h", "--help"]}
policies_app = typer.Typer(
    help="The bundled jurisdiction presets (illustrative, not legal advice).",
    context_settings=CONTEXT,
    no_args_is_help=True,
)
FormatOption = typer.Option(
    OutputFormat.text, "--format", help="text for people, json for machines (one document on stdout)."
)


def check(
    spec: str = typer.Argument(..., help="Trial spec (YAML)."),
    permits: bool = typer.Option(True, "--permits/--denials-only", help="Show permitted clauses too."),
    output: OutputFormat = FormatOption,
) -> None:
    """Pre-flight a trial against every participant's policy and signed approval: a permit/deny table per site and clause (exit 3 if refused, 5 if an approval fails its integrity check)."""
    from sandbox.strategy_choice import check_strategy  # imports Flower: only when a spec is checked

    loaded = guarded(output, lambda: check_strategy(load_spec(spec)))
    trial = guarded(output, lambda: resolve_trial(loaded))
    result = guarded(output, lambda: clear_trial(trial)).verdict
    stop = expected_privacy_stop(result, min_participants=loaded.spec.min_participants)
    show_preflight(result, output, permits=permits, privacy_stop=stop)
    if result.refused:
        raise typer.Exit(int(ExitCode.REFUSED_BY_POLICY))


def show_preflight(
    result: PreflightResult, output: OutputFormat, *, permits: bool = True, privacy_stop: int | None = None
) -> None:
    """The permit/deny table (text, on stdout) or the pre-flight JSON document.

    ``privacy_stop`` is the round before which the dry run says too few sites could pay (see
    :func:`sandbox.preflight.expected_privacy_stop`).
    """
    if output is OutputFormat.json:
        emit_json(
            {
                "ok": not result.refused,
                "exit_code": int(ExitCode.REFUSED_BY_POLICY if result.refused else ExitCode.OK),
                **result.as_json(),
                "privacy_stop_expected_before_round": privacy_stop,
            }
        )
        return
    table = Table(
        title=f"Pre-flight of '{result.trial_id}': {'REFUSED' if result.refused else 'permitted'}", title_justify="left"
    )
    for column in ROW_COLUMNS:
        table.add_column(column, overflow="fold")
    for row in result.rows(include_permits=permits):
        style = "bold red" if row[2] in ("DENY", "INFEASIBLE") else None
        table.add_row(*(plain(cell) for cell in row), style=style)
    console = Console(width=200)
    console.print(table)
    if result.privacy_costs:
        console.print(privacy_dry_run_table(result))
    if privacy_stop is not None:
        console.print(
            f"[bold red]Warning:[/bold red] from round {privacy_stop} on, too few sites could pay for a round to reach "
            "the trial's min_participants: `sandbox run` would stop there with exit 4 (budget-exhausted)."
        )


def privacy_dry_run_table(result: PreflightResult) -> Table:
    """Per site: the epsilon the whole trial would spend against what the site's ledger has left."""
    table = Table(title="Privacy dry run (epsilon at the trial's delta; nothing has run)", title_justify="left")
    for column in (
        "site",
        "accountant",
        "spent before",
        "this trial",
        "after the trial",
        "dataset budget",
        "left now",
        "trial budget",
        "rounds that fit",
    ):
        table.add_column(column)
    for site_id, cost in sorted(result.privacy_costs.items()):
        short = cost.rounds_affordable < cost.rounds
        table.add_row(
            site_id,
            cost.accountant,
            f"{cost.spent_before:.3f}",
            f"{cost.trial_epsilon:.3f}",
            f"{cost.cumulative_after:.3f}",
            f"{cost.epsilon_budget:g}",
            f"{max(cost.epsilon_budget - cost.spent_before, 0.0):.3f}",
            f"{cost.trial_epsilon_budget:g}",
            f"{cost.rounds_affordable} of {cost.rounds}",
            style="bold red" if short else None,
        )
    return table


@policies_app.command("list")
def list_command(output: OutputFormat = FormatOption) -> None:
    """One line per bundled preset."""
    presets = list_presets()
    if output is OutputFormat.json:
        emit_json({"presets": [p.as_dict() for p in presets]})
        return
    for preset in presets:
        print(f"{preset.name:<16} {preset.title}: {preset.summary}")


@policies_app.command("show")
def show_command(
    name: str = typer.Argument(..., help="Preset name (see 'sandbox policies list')."),
    output: OutputFormat = FormatOption,
) -> None:
    """Print one preset: its YAML with the article each value comes from (json: its composed fields)."""

    def find() -> str:
        if name not in preset_names():
            raise BadInputError(
                f"Unknown preset {name!r}",
                [Problem("NAME", "", show_value(name), f"one of: {', '.join(preset_names())}")],
            )
        return name

    guarded(output, find)
    if output is OutputFormat.json:
        emit_json(guarded(output, lambda: load_preset(name).as_json()))
    else:
        print(preset_text(name) or "")
