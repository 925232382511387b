"""Issue 18, item 7: a site that dies after charging its ledger is reported at its ledger's epsilon.

The real ServerApp runs the demo (cut to two rounds) against the real ClientApp in this process
(a small in-memory grid, no Ray). fr-lyon charges its ledger for round 2 and then crashes before
its reply leaves, as a site killed between its charge and its reply. The trial fails (the site
cannot take part); report.json, the live metrics and metrics.prom must still show what fr-lyon's
ledger holds: round 2's training charge, not the figures its last reply reported.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pytest
from flwr.app import Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.supercore.task_identity import TaskIdentity
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from participants.privacy_ledger import PrivacyLedger
from sandbox.consent import clear_trial
from sandbox.resolved_trial import resolve_trial
from sandbox.server_app import TrialHooks, make_server_app, new_metrics
from tests.approved_demo import DEMO_SITES, DemoCopy
from tests.integration.hostile_sites import make_crashing_client_app
from trialcore import layout, wire
from trialcore.audit_verify import verify_chain
from trialcore.spec_loading import load_spec

CRASHING_SITE = "fr-lyon"


@pytest.fixture(autouse=True)
def task_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flower messages need the task's identity, which the ServerApp process normally sets."""
    for name in ("_run_id", "_node_id", "_task_id"):
        monkeypatch.setattr(TaskIdentity, name, 1)


class _InProcessGrid:
    """Delivers each message to ``client_app`` in this process: node 100 + i is demo site i."""

    def __init__(self, client_app: ClientApp) -> None:
        self.client_app = client_app
        self.contexts = {
            100 + i: Context(
                run_id=7, node_id=100 + i, node_config={"partition-id": i}, state=RecordDict(), run_config={}
            )
            for i in range(len(DEMO_SITES))
        }

    def get_node_ids(self) -> list[int]:
        return list(self.contexts)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> list[Message]:
        return [self.client_app(m, self.contexts[m.metadata.dst_node_id]) for m in messages]


def test_a_site_crashing_after_its_charge_is_reported_at_its_ledgers_epsilon(
    approved_demo: DemoCopy, tmp_path: Path
) -> None:
    """report.json, the metrics and metrics.prom show the ledger's two charges of the site that died after charging."""
    spec_text = approved_demo.spec.read_text(encoding="utf-8").replace("rounds: 10", "rounds: 2")
    approved_demo.spec.write_text(spec_text, encoding="utf-8")
    approved_demo.approve()
    trial = resolve_trial(load_spec(approved_demo.spec))
    run_dir = tmp_path / "run"
    settings = {
        wire.FEDERATION_DIR: str(approved_demo.sites_dir),
        wire.FEDERATION_SITES: ",".join(DEMO_SITES),
        wire.RUN_DIR: str(run_dir),
    }
    registry = CollectorRegistry()
    hooks = TrialHooks(
        registry=registry,
        metrics=new_metrics(trial.loaded, registry, run_id=run_dir.name),
        clearance=clear_trial(trial),
    )
    grid = _InProcessGrid(make_crashing_client_app(settings, site_id=CRASHING_SITE, server_round=2))
    context = Context(run_id=7, node_id=0, node_config={}, state=RecordDict(), run_config={})
    make_server_app({wire.RUN_DIR: str(run_dir)}, hooks, trial)(grid, context)  # type: ignore[arg-type]

    report = hooks.report
    assert report is not None and report["state"] == "failed"
    (error,) = report["failure"]["site_errors"]
    assert (error["site_id"], error["phase"], error["server_round"]) == (CRASHING_SITE, "train", 2)
    site_dir = layout.simulated_site_dir(run_dir, CRASHING_SITE)
    (ledger_path,) = (site_dir / "privacy").glob("*.ledger.jsonl")
    charges = PrivacyLedger(ledger_path).charges()
    training = [c.round for c in charges if c.release == "dp-sgd"]
    assert training == [1, 2], "round 2 was charged, then the site died before replying"
    last = charges[-1]
    assert (last.release, last.round) == ("dp-sgd", 2), "the training charge of round 2 is the ledger's last"

    (lyon,) = [s["privacy"] for s in report["sites"] if s["site_id"] == CRASHING_SITE]
    assert lyon["last_charged_round"] == 2 and lyon["epsilon_source"] == "site-ledger"
    assert lyon["trial_epsilon"] == last.trial_epsilon and lyon["epsilon_spent"] == last.cumulative_epsilon
    assert json.loads((run_dir / "report.json").read_text(encoding="utf-8"))["sites"] == report["sites"]
    labels = {"trial": "cancer-risk-demo", "run_id": "run", "site": CRASHING_SITE, "jurisdiction": "FR"}
    assert registry.get_sample_value("sandbox_privacy_trial_epsilon_spent", labels) == last.trial_epsilon
    assert registry.get_sample_value("sandbox_privacy_epsilon_spent", labels) == last.cumulative_epsilon
    written = {
        (s.name, s.labels.get("site")): s.value
        for family in text_string_to_metric_families((run_dir / "metrics.prom").read_text(encoding="utf-8"))
        for s in family.samples
    }
    assert written[("sandbox_privacy_trial_epsilon_spent", CRASHING_SITE)] == last.trial_epsilon
    events = [json.loads(line) for line in (run_dir / "audit.jsonl").read_text(encoding="utf-8").splitlines()]
    (reconciled,) = [e["payload"] for e in events if e["event"] == "privacy-reconciled"]
    assert reconciled["site_id"] == CRASHING_SITE and reconciled["reported_round"] == 1
    assert reconciled["ledger_round"] == 2 and verify_chain(run_dir / "audit.jsonl").ok
