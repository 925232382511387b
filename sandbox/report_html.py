"""``report.html``: the exit report a person reads, written from report.json alone.

The page is self-contained: its styles are inline and its plots are inline SVG
(:mod:`sandbox.report_plots`); it loads nothing from the network and runs no script. Its
sections follow a sandbox exit report (AI Act Art. 57(7)): the plan and its validity,
participants and jurisdictions, approvals and policy hashes (the consent matrix), privacy spent
per site against budget, per-site and pooled results over rounds, the fairness gap,
enforcement actions and incidents with their deadlines, the audit verification result, and
deviations from the spec.

Small-cell rules hold as in the JSON: the page shows only what report.json releases; a site
whose statistics were withheld shows "withheld (small cohort)", never a number.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sandbox.html_parts import STYLE, cell, figure, pairs, table
from sandbox.report_plots import accuracy_plot, epsilon_plot, rejections_plot, release_epsilon
from sandbox.run_verify import Check, verify_run
from trialcore import layout
from trialcore.atomic_file import write_bytes_atomic

WITHHELD = "withheld (small cohort)"


def _plan(report: Mapping[str, Any]) -> str:
    plan = dict(report.get("plan") or {})
    spec = report.get("spec") or {}
    items = {
        "trial": f"{report.get('trial_id')}: {report.get('title')}",
        **plan,
        "rounds planned / completed": f"{report.get('rounds_planned')} / {report.get('rounds_completed')}",
        "spec file (copy in the run folder)": f"{spec.get('file')} (SHA-256 {spec.get('file_sha256')})",
        "spec hash": report.get("spec_hash"),
        "how to recompute the spec hash": spec.get("how_to_recompute_hash"),
    }
    validity = [
        (site["site_id"], d["clause"], "permits" if d["permit"] else "denies", d["reason"])
        for site in report.get("sites", [])
        for d in site.get("preflight") or []
        if d["clause"] in ("validity", "sandbox-plan", "ethics-approval")
    ]
    training = report.get("training") or {}
    settings = {
        "minimum participants per round": training.get("min_participants"),
        "local training": json.dumps(training.get("local_training")),
        "privacy": json.dumps(training.get("privacy")),
        "strategy": json.dumps(training.get("strategy") or report.get("strategy")),
        "model": json.dumps(report.get("model")),
        "secure aggregation": (training.get("secure_aggregation") or {}).get("why_not", "n/a"),
    }
    return (
        "<h2>1. The plan and its validity</h2>"
        + pairs(items)
        + "<h3>Validity at pre-flight (per site's policy)</h3>"
        + table(("site", "clause", "decision", "reason"), validity)
        + "<h3>Settings</h3>"
        + pairs(settings)
    )


def _participants(report: Mapping[str, Any]) -> str:
    rows = []
    for site in report.get("sites", []):
        withheld = site.get("suppressed")
        rows.append(
            (
                site["site_id"],
                site.get("jurisdiction"),
                site.get("institution"),
                "; ".join(f"{k}: {v}" for k, v in (site.get("legal_bases") or {}).items()) or None,
                site.get("transfer_mechanism"),
                WITHHELD if withheld else site.get("num_train"),
                WITHHELD if withheld else site.get("num_test"),
            )
        )
    aggregator = (report.get("plan") or {}).get("aggregator_jurisdiction")
    return (
        f"<h2>2. Participants and jurisdictions</h2><p>The coordinator aggregates in <b>{cell(aggregator)}</b>.</p>"
        + table(
            (
                "site",
                "jurisdiction",
                "institution",
                "legal basis",
                "transfer mechanism",
                "train records",
                "test records",
            ),
            rows,
        )
    )


def _approvals(report: Mapping[str, Any]) -> str:
    consent = report.get("consent") or {}
    rows = []
    for site in report.get("sites", []):
        entry = (consent.get("sites") or {}).get(site["site_id"], {})
        rows.append(
            (
                site["site_id"],
                entry.get("state"),
                entry.get("approved_at"),
                f"<code>{cell(entry.get('approver_key_fingerprint'))}</code>",
                f"<code>{cell(site.get('policy_hash'))}</code>",
                f"<code>{cell(entry.get('signature'))}</code>",
            )
        )
    all_consent = consent.get("all_consent")
    return (
        "<h2>3. Approvals and policy hashes (consent matrix)</h2>"
        f"<p>Every site consented to spec <code>{cell(consent.get('spec_hash'))}</code>: "
        f"<b>{cell('yes' if all_consent else 'no')}</b>.</p>"
        + table(("site", "approval", "approved at", "approver key", "policy hash", "signature"), rows, raw=True)
    )


def _privacy(report: Mapping[str, Any]) -> str:
    rows = []
    for site in report.get("sites", []):
        p = site.get("privacy") or {}
        releases = p.get("trial_epsilon_by_release")
        rows.append(
            (
                site["site_id"],
                p.get("trial_epsilon"),
                p.get("trial_epsilon_budget"),
                ", ".join(f"{k} {release_epsilon(v):.4g}" for k, v in releases.items())
                if isinstance(releases, dict)
                else "training",
                p.get("epsilon_spent"),
                p.get("epsilon_budget"),
                p.get("delta"),
                p.get("epsilon_source"),
                p.get("budget_exhausted_at_round"),
            )
        )
    scope = report.get("privacy_scope") or {}
    caveats = "".join(f"<li>{html.escape(str(item))}</li>" for item in scope.get("does_not_cover") or [])
    return (
        "<h2>4. Privacy spent per site against budget</h2>"
        + table(
            (
                "site",
                "epsilon this trial",
                "trial budget",
                "by release",
                "epsilon on dataset",
                "dataset budget",
                "delta",
                "source",
                "budget exhausted at round",
            ),
            rows,
        )
        + figure("epsilon", epsilon_plot(report), "Epsilon per site for this trial against the trial's budget.")
        + f"<p>{cell(scope.get('covers'))}</p><p>Not covered:</p><ul>{caveats}</ul>"
    )


def _results(report: Mapping[str, Any]) -> str:
    final = report.get("final") or {}
    g = final.get("global") or {}
    rows = []
    for site in report.get("sites", []):
        stats = site.get("final")
        if site.get("suppressed") or stats is None:
            rows.append((site["site_id"], WITHHELD if site.get("suppressed") else None, None, None))
        else:
            rows.append((site["site_id"], stats.get("test_accuracy"), stats.get("test_auroc"), stats.get("test_loss")))
    rows.append(("global (pooled)", g.get("test_accuracy"), g.get("test_auroc"), g.get("test_loss")))
    gaps = [(r["round"], r.get("fairness_accuracy_gap")) for r in report.get("rounds") or []]
    return (
        "<h2>5. Results per site and pooled, over rounds</h2>"
        + figure("accuracy", accuracy_plot(report), "Test accuracy per site (released rounds only) and pooled.")
        + "<h3>Final round</h3>"
        + table(("site", "test accuracy", "test AUROC", "test loss"), rows)
        + f"<p class='muted'>Pooled AUROC covers {cell(g.get('auroc_sites'))} site(s), {cell(g.get('auroc_num_test'))} of "
        f"{cell(g.get('num_test'))} test records.</p>"
        + "<h2>6. Fairness gap</h2>"
        + f"<p>Final gap between the best and worst site's test accuracy: <b>{cell(final.get('fairness_accuracy_gap'))}</b>.</p>"
        + table(("round", "accuracy gap (max - min over released sites)"), gaps)
    )


def _incidents(report: Mapping[str, Any]) -> str:
    incidents = report.get("incidents") or []
    rows = [
        (
            i.get("round"),
            i.get("site_id"),
            i.get("rule"),
            i.get("severity"),
            i.get("action"),
            i.get("reporting_deadline"),
            i.get("detail"),
        )
        for i in incidents
    ]
    return (
        "<h2>7. Enforcement actions and incidents</h2>"
        + (
            table(("round", "site", "rule", "severity", "action", "report to the authority by", "detail"), rows)
            if rows
            else "<p>No incident was recorded.</p>"
        )
        + figure(
            "rejections", rejections_plot(report), "Refusals by sites and updates rejected by screening, per round."
        )
    )


def _verification(checks: Sequence[Check]) -> str:
    rows = [
        (f"<span class='{'ok' if c.ok else 'fail'}'>{'ok' if c.ok else 'FAILED'}</span>", cell(c.name), cell(c.detail))
        for c in checks
    ]
    verdict = "verified" if all(c.ok for c in checks) else "FAILED"
    return (
        f"<h2>8. Audit verification</h2><p>When this page was written, <code>sandbox audit verify</code> found the run "
        f"folder <b>{verdict}</b>. Run it again on the folder you were sent (see the README): this page is not proof.</p>"
        + table(("result", "check", "detail"), rows, raw=True)
    )


def _deviations(report: Mapping[str, Any]) -> str:
    items = []
    if report.get("state") != "finished":
        items.append(f"The trial ended <b>{cell(report.get('state'))}</b>, not finished.")
    if (report.get("rounds_completed") or 0) < (report.get("rounds_planned") or 0):
        items.append(
            f"Stopped early: {cell(report.get('rounds_completed'))} of {cell(report.get('rounds_planned'))} rounds."
        )
    for r in report.get("rounds") or []:
        if not r.get("aggregated"):
            items.append(f"Round {r['round']} aggregated nothing (the previous global model was kept).")
        for refusal in r.get("refusals") or []:
            items.append(f"Round {r['round']}: site {cell(refusal['site_id'])} refused: {cell(refusal['reason'])}")
    for incident in report.get("incidents") or []:
        if incident.get("action") in ("exclude", "suspend", "terminate"):
            items.append(
                f"Round {incident['round']}: {cell(incident['action'])} ({cell(incident['site_id'])}, {cell(incident['rule'])})."
            )
    failure = report.get("failure")
    if failure:
        items.append(f"Failure: {cell(failure.get('summary'))}")
    body = "".join(f"<li>{item}</li>" for item in items) or "<li>None: the trial ran as specified.</li>"
    return f"<h2>9. Deviations from the spec</h2><ul>{body}</ul>"


def render_html(report: Mapping[str, Any], checks: Sequence[Check]) -> str:
    """The whole page for ``report`` and the verification ``checks`` of its run folder."""
    signer = report.get("signer") or {}
    title = f"Exit report: {report.get('trial_id')} run {report.get('run_id')}"
    header = (
        f"<h1>{cell(report.get('title'))}</h1><p>Trial <code>{cell(report.get('trial_id'))}</code>, run "
        f"<code>{cell(report.get('run_id'))}</code>: <span class='state'>{cell(report.get('state'))}</span>, "
        f"{cell(report.get('started_at'))} to {cell(report.get('finished_at'))}. Purpose: {cell(report.get('purpose'))}.</p>"
        f"<p class='muted'>report.json is signed by coordinator key <code>{cell(signer.get('key_fingerprint'))}</code> "
        f"({'pinned' if signer.get('pinned') else 'not pinned: a key made for this run only'}).</p>"
    )
    sections = [
        _plan(report),
        _participants(report),
        _approvals(report),
        _privacy(report),
        _results(report),
        _incidents(report),
        _verification(checks),
        _deviations(report),
    ]
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>'
        f"<body>{header}{''.join(sections)}</body></html>\n"
    )


def write_html_report(run_dir: Path, *, coordinator_key: Ed25519PublicKey | None = None) -> Path:
    """Write ``report.html`` beside the run folder's report.json (verifying the folder first); return its path.

    ``coordinator_key`` pins the signer in the verification section (``sandbox run`` knows its own key).

    Raises
    ------
    OSError, ValueError
        When report.json cannot be read as JSON.
    """
    report = json.loads((run_dir / layout.REPORT_FILE).read_text(encoding="utf-8"))
    checks = verify_run(run_dir, coordinator_key=coordinator_key)
    path = run_dir / layout.HTML_REPORT_FILE
    write_bytes_atomic(path, render_html(report, checks).encode("utf-8"))
    return path
