"""The ``participants`` command, for institutions: check a site's data before joining a pilot."""

from __future__ import annotations

import typer
from rich.console import Console

from participants.cli_join import join, withdraw
from participants.site_config import load_site_config
from participants.site_data import load_site_data
from trialcore.cli_output import OutputFormat, emit_json, guarded

app = typer.Typer(
    name="participants",
    help="For institutions: check the site's own config and data, join a trial's federation, withdraw (records never leave the site).",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """For institutions taking part in a trial."""


app.command("join")(join)
app.command("withdraw")(withdraw)


@app.command("check-data")
def check_data(
    site_config: str = typer.Argument(..., help="The site's node config (YAML)."),
    output: OutputFormat = typer.Option(OutputFormat.text, "--format", help="text or json."),
) -> None:
    """Load the site's data through its connector and print counts (no records are printed)."""

    def load() -> dict[str, object]:
        site = load_site_config(site_config)
        data = load_site_data(site)
        return {
            "site_id": site.config.site_id,
            "jurisdiction": site.config.jurisdiction,
            "data_source": site.config.data.kind,
            "num_features": data.num_features,
            "num_train": data.num_train,
            "num_test": data.num_test,
        }

    summary = guarded(output, load)
    if output is OutputFormat.json:
        emit_json({"ok": True, **summary})
    else:
        Console().print(" ".join(f"{k}={v}" for k, v in summary.items()))


def main() -> None:
    """Console-script entry point."""
    app()
