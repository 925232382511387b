"""The demo trial end to end: it learns, it leaves its evidence, and a regulator can scrape it."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch

from participants.embedded_data import embedded_partition
from participants.released_values import released_count
from participants.site_data import split_records
from tests.demo_accuracy import true_pooled_test_accuracy
from tests.integration.conftest import DemoRun
from tests.prometheus_server import require_promtool
from trialcore.audit_entry import ChainHead
from trialcore.audit_verify import verify_chain

pytestmark = pytest.mark.integration


def pooled_test_labels() -> np.ndarray:
    labels = [split_records(*embedded_partition(p), test_fraction=0.25).y_test for p in range(4)]
    return np.concatenate(labels)


def released_counts() -> list[tuple[int, int]]:
    """Each demo site's (train, test) counts as it releases them: rounded down to 10 records."""
    parts = [split_records(*embedded_partition(p), test_fraction=0.25) for p in range(4)]
    return [(released_count(d.num_train), released_count(d.num_test)) for d in parts]


def test_global_model_beats_majority_baseline_and_reaches_093(demo_run: DemoRun) -> None:
    """The federated model clears 0.93 pooled test accuracy and beats always guessing the majority class."""
    labels = pooled_test_labels()
    majority = max(labels.mean(), 1 - labels.mean())
    accuracy = true_pooled_test_accuracy(demo_run.run_dir)
    assert demo_run.report["final"]["global"]["num_test"] == sum(test for _, test in released_counts())
    assert accuracy >= 0.93
    assert accuracy > majority
    released = demo_run.report["final"]["global"]["test_accuracy"]
    assert 0.0 <= released <= 1.0, "what the sites released: accuracy from noised sums, clamped to [0, 1]"


def test_report_names_every_site_with_counts_and_round_history(demo_run: DemoRun) -> None:
    """report.json carries the spec hash, each site's id, jurisdiction and counts, and per-round metrics."""
    report = demo_run.report
    assert len(report["spec_hash"]) == 64
    assert [(s["site_id"], s["jurisdiction"]) for s in report["sites"]] == [
        ("de-berlin", "DE"),
        ("fr-lyon", "FR"),
        ("gb-leeds", "GB"),
        ("ch-zurich", "CH"),
    ]
    assert [(s["num_train"], s["num_test"]) for s in report["sites"]] == released_counts(), "counts rounded to 10"
    assert len({s["num_train"] for s in report["sites"]}) == 4, "sites differ in size (non-IID)"
    assert report["rounds_completed"] == report["rounds_planned"] == len(report["rounds"]) == 10
    for entry in report["rounds"]:
        assert set(entry["sites"]) == {"de-berlin", "fr-lyon", "gb-leeds", "ch-zurich"}
        assert 0.0 <= entry["global"]["test_accuracy"] <= 1.0


def test_run_folder_holds_model_audit_and_metrics(demo_run: DemoRun) -> None:
    """The run folder holds a loadable model.pt, an intact audit chain matching the report, and metrics.prom."""
    state = torch.load(demo_run.run_dir / "model.pt", weights_only=True)
    assert state["0.weight"].shape == (1, 30)
    head = demo_run.report["audit"]["coordinator"]
    result = verify_chain(
        demo_run.run_dir / "audit.jsonl", expected_head=ChainHead(hash=head["hash"], length=head["length"])
    )
    assert result.ok, result.message()
    assert (
        result.length == 1 + 1 + 1 + 1 + 1 + 2 * 10 + 1
    )  # started, pre-flight, consent, regulator keys, features, 10 x (configured, aggregated), finished
    assert (demo_run.run_dir / "metrics.prom").read_text().count("sandbox_global_accuracy") > 0


def test_metrics_snapshot_passes_promtool(demo_run: DemoRun) -> None:
    """promtool check metrics accepts the metrics.prom a run leaves behind."""
    promtool = require_promtool()
    text = (demo_run.run_dir / "metrics.prom").read_bytes()
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=60)
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()


def test_prometheus_scraped_the_same_accuracy_as_the_report(demo_run: DemoRun) -> None:
    """A real Prometheus that scraped the running trial holds the per-site and global accuracy of report.json."""
    prometheus = demo_run.prometheus
    trial = demo_run.report["trial_id"]
    global_series = prometheus.query(f'last_over_time(sandbox_global_accuracy{{trial="{trial}",split="test"}}[10m])')
    assert len(global_series) == 1
    assert float(global_series[0]["value"][1]) == pytest.approx(
        demo_run.report["final"]["global"]["test_accuracy"], abs=1e-9
    )
    sites = prometheus.query(f'last_over_time(sandbox_site_accuracy{{trial="{trial}",split="test"}}[10m])')
    scraped = {s["metric"]["site"]: float(s["value"][1]) for s in sites}
    expected = {s["site_id"]: s["final"]["test_accuracy"] for s in demo_run.report["sites"]}
    assert scraped == pytest.approx(expected, abs=1e-9)
    rounds = prometheus.query(f'last_over_time(sandbox_rounds_completed_total{{trial="{trial}"}}[10m])')
    assert float(rounds[0]["value"][1]) == 10


def test_demo_prints_where_metrics_are_served_and_each_round(demo_run: DemoRun) -> None:
    """sandbox run tells the user where to scrape metrics and prints per-round accuracy on stderr."""
    assert "Serving metrics for Prometheus at http://127.0.0.1:" in demo_run.stderr
    assert "round 10: global test accuracy" in demo_run.stderr


def test_each_site_keeps_an_intact_chain_cross_referenced_with_the_coordinator(demo_run: DemoRun) -> None:
    """Each simulated site's own chain verifies against the head in report.json and names the coordinator's round entries."""
    import json

    coordinator = [json.loads(line) for line in (demo_run.run_dir / "audit.jsonl").read_text().splitlines()]
    round_entries = {e["payload"]["round"]: e for e in coordinator if e["event"] == "round-configured"}
    aggregated = {e["payload"]["round"]: e for e in coordinator if e["event"] == "round-aggregated"}
    for site_id, head in demo_run.report["audit"]["sites"].items():
        path = demo_run.run_dir / head["path"]
        result = verify_chain(path, expected_head=ChainHead(hash=head["hash"], length=head["length"]))
        assert result.ok, result.message()
        entries = [json.loads(line) for line in path.read_text().splitlines()]
        updates = [e for e in entries if e["event"] == "update-sent"]
        assert len(updates) == 10
        for update in updates:
            assert update["payload"]["coordinator_entry"] == round_entries[update["payload"]["round"]]["hash"]
        last = entries[-1]
        assert aggregated[10]["payload"]["site_audit_entries"][site_id] == last["hash"]
    assert set(demo_run.report["audit"]["sites"]) == {"de-berlin", "fr-lyon", "gb-leeds", "ch-zurich"}


def test_consent_matrix_is_reported_and_audited(demo_run: DemoRun) -> None:
    """report.json and the audit chain hold the consent matrix: every site approved this exact spec hash, and by which key."""
    import json

    consent = demo_run.report["consent"]
    assert consent["spec_hash"] == demo_run.report["spec_hash"] and consent["all_consent"] is True
    assert list(consent["sites"]) == ["de-berlin", "fr-lyon", "gb-leeds", "ch-zurich"]
    for site in consent["sites"].values():
        assert site["approved"] is True and site["required"] is True and site["spec_hash"] == consent["spec_hash"]
        assert len(site["approver_key_fingerprint"]) == 64
    assert len({site["approver_key_fingerprint"] for site in consent["sites"].values()}) == 4, (
        "each site has its own approver"
    )
    entries = [json.loads(line) for line in (demo_run.run_dir / "audit.jsonl").read_text().splitlines()]
    (audited,) = [e for e in entries if e["event"] == "consent-matrix"]
    assert audited["payload"] == consent
    assert [e["event"] for e in entries].index("consent-matrix") < [e["event"] for e in entries].index(
        "round-configured"
    )
