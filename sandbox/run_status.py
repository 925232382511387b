"""``sandbox status RUN_DIR``: one screen on a running or finished trial, read only.

What it shows comes from the run folder (the coordinator's audit chain, and report.json once the
run ended) and, while the trial runs, from its metrics endpoint (the URL the run left in
``metrics-url``): state, round, each site's participation and epsilon against budget, the last
incidents and the chain heads. It never writes anything and never changes the trial.

States: the report's end state when report.json exists; ``interrupted`` for a chain without a
final entry whose metrics endpoint does not answer (killed), ``running`` / ``suspended`` while the
endpoint answers; see :mod:`sandbox.run_state`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from sandbox.run_evidence_checks import read_entries
from sandbox.run_state import INTERRUPTED, run_state
from trialcore import layout
from trialcore.audit_verify import verify_chain
from trialcore.errors import BadInputError, Problem, SandboxError, show_value

LAST_INCIDENTS = 5
_TIMEOUT_SECONDS = 2.0


def _scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
    """The metrics at ``url`` by (name, labels), or None when the endpoint does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_SECONDS) as response:
            text = response.read().decode("utf-8")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return {
        (s.name, frozenset(s.labels.items())): float(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _site_value(metrics: Mapping[tuple[str, frozenset[tuple[str, str]]], float], name: str, site: str) -> float | None:
    for (found, labels), value in metrics.items():
        if found == name and ("site", site) in labels:
            return value
    return None


def run_status(run_dir: Path) -> dict[str, Any]:
    """The status document of ``run_dir`` (see the module docstring).

    Raises
    ------
    BadInputError
        When ``run_dir`` holds no coordinator chain (not a run folder).
    """
    chain = run_dir / layout.AUDIT_FILE
    if not chain.is_file():
        raise BadInputError(
            f"Not a run folder: '{run_dir}'",
            [Problem(str(run_dir), "", show_value(str(run_dir)), f"a run folder holding {layout.AUDIT_FILE}")],
        )
    checked = verify_chain(chain)
    entries = read_entries(chain) if checked.ok else []
    report = _report(run_dir)
    url_file = run_dir / layout.METRICS_URL_FILE
    url = url_file.read_text(encoding="utf-8").strip() if url_file.is_file() else None
    metrics = _scrape(url) if url and report is None else None
    if metrics is not None and not any(("run_id", run_dir.name) in labels for _, labels in metrics):
        metrics = None  # the port now serves another run: this one is not running
    state = report["state"] if report is not None else run_state(chain)
    if state == INTERRUPTED and metrics is not None:
        state = "suspended" if _suspended(entries) else "running"
    started: Mapping[str, Any] = next((e["payload"] for e in entries if e["event"] == "trial-started"), {})
    sites = list(started.get("sites") or [])
    rounds = [e["payload"] for e in entries if e["event"] == "round-aggregated"]
    current = max([e["payload"].get("round", 0) for e in entries if e["event"] == "round-configured"] + [0])
    return {
        "run_dir": str(run_dir),
        "trial_id": entries[0]["trial_id"] if entries else None,
        "state": state,
        "round": current,
        "rounds_planned": started.get("rounds"),
        "rounds_completed": len(rounds),
        "metrics_url": url,
        "metrics_live": metrics is not None,
        "sites": [_site(site, rounds, report, metrics) for site in sites],
        "last_incidents": [e["payload"] for e in entries if e["event"] == "policy-violation"][-LAST_INCIDENTS:],
        "chain": {"intact": checked.ok, "length": checked.length, "head": checked.head_hash, "problem": checked.reason},
        "recorded_heads": (report or {}).get("audit"),
    }


def _suspended(entries: list[Mapping[str, Any]]) -> bool:
    control = [e["event"] for e in entries if e["event"] in ("trial-suspended", "trial-resumed")]
    return bool(control) and control[-1] == "trial-suspended"


def _report(run_dir: Path) -> dict[str, Any] | None:
    try:
        report = json.loads((run_dir / layout.REPORT_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def _site(
    site_id: str,
    rounds: list[Mapping[str, Any]],
    report: Mapping[str, Any] | None,
    metrics: Mapping[tuple[str, frozenset[tuple[str, str]]], float] | None,
) -> dict[str, Any]:
    trained = [r["round"] for r in rounds if site_id in (r.get("trained_sites") or [])]
    refused = [r["round"] for r in rounds if any(x.get("site_id") == site_id for x in r.get("refusals") or [])]
    epsilon: float | None = None
    budget: float | None = None
    if report is not None:
        privacy: Mapping[str, Any] = next(
            (s["privacy"] for s in report.get("sites", []) if s.get("site_id") == site_id), {}
        )
        epsilon, budget = privacy.get("trial_epsilon"), privacy.get("trial_epsilon_budget")
    elif metrics is not None:
        epsilon = _site_value(metrics, "sandbox_privacy_trial_epsilon_spent", site_id)
        budget = _site_value(metrics, "sandbox_privacy_trial_epsilon_budget", site_id)
    return {
        "site_id": site_id,
        "rounds_trained": trained,
        "rounds_refused": refused,
        "trial_epsilon": epsilon,
        "trial_epsilon_budget": budget,
    }


def status_error(run_dir: Path) -> SandboxError | None:
    """A bad-input error for a path that is not a folder, else None."""
    if run_dir.is_dir():
        return None
    return BadInputError(
        f"Not a run folder: '{run_dir}'", [Problem(str(run_dir), "", "not a folder", "a run folder runs/<trial>/<run>")]
    )
