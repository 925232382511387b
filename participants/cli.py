"""The ``participants`` command, for institutions: check a site's data before joining a pilot."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console

from participants.cli_join import join, withdraw
from participants.contract_data import load_site_records, mapped_source
from participants.data_checks import DataCheck, check_contract_data
from participants.errors import DataSourceError
from participants.released_values import COUNT_GRANULARITY
from participants.site_config import LoadedSiteConfig, load_site_config
from participants.site_guard import site_policy
from trialcore.cli_output import OutputFormat, emit_json, guarded
from trialcore.errors import terminal_safe
from trialcore.spec_loading import load_spec

DEFAULT_MIN_COHORT_SIZE = 11
"""The minimum cohort of the profile when the site has no policy yet (the sandbox's default)."""

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


def _profile_limits(site: LoadedSiteConfig) -> tuple[int, int]:
    """The site policy's minimum cohort and count granularity for its profile (the sandbox's defaults without one)."""
    if not site.config.policy:
        return DEFAULT_MIN_COHORT_SIZE, COUNT_GRANULARITY
    policy = site_policy(site)
    return policy.min_cohort_size, policy.count_granularity


def _contract_check(site: LoadedSiteConfig, trial: str) -> tuple[dict[str, Any], DataCheck | None]:
    loaded = load_spec(trial)
    contract = loaded.spec.data
    source = mapped_source(site.config.data)
    if contract is None or source is None:
        data = load_site_records(site, contract)
        return {"num_features": data.num_features, "num_train": data.num_train, "num_test": data.num_test}, None
    min_cohort_size, count_granularity = _profile_limits(site)
    check = check_contract_data(
        site, source, contract, min_cohort_size=min_cohort_size, count_granularity=count_granularity
    )
    if not check.ok:
        raise DataSourceError(
            f"Data of site {site.config.site_id} do not meet the data contract of trial {loaded.spec.trial_id!r}",
            [*check.problems, *check.findings],
        )
    data = load_site_records(site, contract)
    summary = {
        "trial_id": loaded.spec.trial_id,
        "num_features": data.num_features,
        "num_train": data.num_train,
        "num_test": data.num_test,
        "rows_read": check.rows,
    }
    return summary, check


@app.command("check-data")
def check_data(
    site_config: str = typer.Argument(..., help="The site's node config (YAML)."),
    trial: str | None = typer.Option(
        None, "--trial", help="A trial spec whose data contract the site's data must meet (mapping in the node config)."
    ),
    output: OutputFormat = typer.Option(OutputFormat.text, "--format", help="text or json."),
) -> None:
    """Load the site's data through its connector and print counts and data checks (no records are printed).

    With --trial, the data are read under the trial's data contract: every problem (missing
    column, value out of range, unknown code) is listed together and exits 2; findings (share
    missing, constant or uncollected features, class balance) are listed with the profile the
    site may publish.
    """

    def load() -> tuple[dict[str, Any], DataCheck | None]:
        site = load_site_config(site_config)
        head: dict[str, Any] = {
            "site_id": site.config.site_id,
            "jurisdiction": site.config.jurisdiction,
            "data_source": site.config.data.kind,
        }
        if trial is not None:
            summary, check = _contract_check(site, trial)
            return {**head, **summary}, check
        data = load_site_records(site, None)
        return {**head, "num_features": data.num_features, "num_train": data.num_train, "num_test": data.num_test}, None

    summary, check = guarded(output, load)
    findings = [p.as_dict() for p in check.findings] if check is not None else []
    profile = check.profile if check is not None else None
    if output is OutputFormat.json:
        emit_json({"ok": True, **summary, "findings": findings, "profile": profile})
        return
    Console().print(" ".join(f"{k}={v}" for k, v in summary.items()))
    for finding in check.findings if check is not None else []:
        sys.stderr.write(f"finding: {finding.line()}\n")
    if profile is not None:
        line = (
            f"profile (counts rounded down to {profile['count_granularity']}, null below "
            f"{profile['min_cohort_size']}): {json.dumps(profile)}"
        )
        sys.stdout.write(terminal_safe(line) + "\n")


def main() -> None:
    """Console-script entry point."""
    app()
