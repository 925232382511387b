"""A trial recorder's state as JSON, and back: what a resumed run carries over from the killed one.

The report of a resumed run is one report: its round history, site counts, suppressions, site audit
heads, incidents, privacy figures and budget stops run from round 1, and its ``started_at`` is the
original start. The live metrics of the new process are rebuilt from the same state (counters of
completed rounds, rejections, violations and suppressions; the gauges of the last round and of
each site's privacy), so a dashboard shows the whole run, not only the rounds after the resume.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sandbox.trial_recorder import TrialRecorder


def recorder_state(recorder: TrialRecorder) -> dict[str, Any]:
    """What :func:`restore_recorder` needs, JSON-ready."""
    return {
        "started_at": recorder.started_at.isoformat(),
        "rounds": recorder.rounds,
        "site_counts": recorder.site_counts,
        "suppressed_sites": sorted(recorder.suppressed_sites),
        "site_heads": {site: list(head) for site, head in recorder.site_heads.items()},
        "incidents": recorder.incidents,
        "skipped_rounds": sorted(recorder.skipped_rounds),
        "consent": recorder.consent,
        "privacy": recorder.privacy,
        "budget_exhausted_sites": recorder.budget_exhausted_sites,
    }


def restore_recorder(recorder: TrialRecorder, state: dict[str, Any]) -> None:
    """Give ``recorder`` (just made for the resumed run) the killed run's state and matching metrics."""
    recorder.started_at = datetime.fromisoformat(str(state["started_at"]))
    recorder.rounds = list(state["rounds"])
    recorder.site_counts = dict(state["site_counts"])
    recorder.suppressed_sites = set(state["suppressed_sites"])
    recorder.site_heads = {site: (str(h), int(n)) for site, (h, n) in state["site_heads"].items()}
    recorder.incidents = list(state["incidents"])
    recorder.skipped_rounds = {int(r) for r in state["skipped_rounds"]}
    recorder.consent = state["consent"]
    recorder.privacy = dict(state["privacy"])
    recorder.budget_exhausted_sites = {site: int(r) for site, r in state["budget_exhausted_sites"].items()}
    _restore_metrics(recorder)


def _restore_metrics(recorder: TrialRecorder) -> None:
    metrics = recorder.metrics
    known = set(metrics.sites)
    for entry in recorder.rounds:
        for rejection in entry["rejections"]:
            if rejection["site_id"] in known:
                metrics.reject_update(rejection["site_id"], rejection["reason"])
        for site in entry["suppressed_sites"]:
            if site in known:
                metrics.suppress_small_cell(site)
        metrics.finish_round(entry["round"], entry["duration_seconds"], len(entry["trained_sites"]))
    for incident in recorder.incidents:
        if incident["site_id"] in known and incident["rule"] in metrics.rules:
            metrics.record_violation(incident["site_id"], incident["rule"])
    for site, figures in recorder.privacy.items():
        if site in known:
            metrics.set_privacy(
                site,
                epsilon_spent=figures["epsilon_spent"],
                epsilon_budget=figures["epsilon_budget"],
                delta=figures["delta"],
            )
            metrics.set_trial_privacy(
                site, epsilon_spent=figures["trial_epsilon"], epsilon_budget=figures["trial_epsilon_budget"]
            )
    for site in recorder.budget_exhausted_sites:
        if site in known:
            metrics.set_budget_exhausted(site)
    if recorder.rounds:
        _restore_last_round(recorder, recorder.rounds[-1])


def _restore_last_round(recorder: TrialRecorder, last: dict[str, Any]) -> None:
    metrics = recorder.metrics
    for site, stats in last["sites"].items():
        if site in metrics.sites:
            metrics.set_site_metrics(site, "test", accuracy=stats["test_accuracy"], loss=stats["test_loss"])
    g = last["global"]
    if g is not None:
        metrics.set_global_metrics(
            "test",
            accuracy=g["test_accuracy"],
            auroc=g["test_auroc"],
            auroc_sites=g["auroc_sites"],
            auroc_test_records=g["auroc_num_test"],
        )
    if last.get("fairness_accuracy_gap_noise_std") is not None:
        metrics.set_fairness_gap_noise(last["fairness_accuracy_gap_noise_std"])
    if last["fairness_accuracy_gap"] is not None:
        metrics.set_fairness_gap(last["fairness_accuracy_gap"])
