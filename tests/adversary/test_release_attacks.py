"""Attacks on what a site releases besides its model updates: feature sums and evaluation results are noised and charged."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Message

from participants.embedded_data import embedded_partition
from participants.evaluate_handler import EVALUATION_SENSITIVITY
from participants.record_values import as_floats
from participants.site_config import load_site_config
from participants.site_data import load_site_data
from tests.adversary.hostile_coordinator import HostileCoordinator, assert_refused, global_arrays, record_attack
from tests.approved_demo import DemoCopy
from trialcore import wire
from trialcore.feature_statistics import column_ranges, normalised_rows, sum_sensitivity
from trialcore.spec_loading import load_spec

SITE = "de-berlin"
CSV_SITE = "de-berlin-csv"
"""The same site (id, policy, approvals) reading a CSV extract of its records instead of the embedded share."""


@pytest.fixture
def coordinator(approved_demo: DemoCopy, tmp_path: Path) -> HostileCoordinator:
    return HostileCoordinator(approved_demo, tmp_path / "run")


def csv_site(demo: DemoCopy, rows: int) -> Path:
    """Point ``CSV_SITE``'s config at a CSV of the first ``rows`` records of de-berlin's share; return the CSV.

    The site is a real one (``simulated: false``: secret noise) keeping its ledger in a state folder
    that outlives trials, as a hospital's would.
    """
    features, labels = embedded_partition(0)
    path = demo.sites_dir / "de-berlin-extract.csv"
    header = ",".join([f"f{i}" for i in range(features.shape[1])] + ["malignant"])
    lines = [",".join([*(repr(float(v)) for v in x), str(int(y))]) for x, y in zip(features[:rows], labels[:rows])]
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    config = demo.site_config(SITE).read_text(encoding="utf-8")
    config = config.replace(
        "  kind: embedded-breast-cancer   # this site's share of scikit-learn's bundled breast-cancer set\n  partition: 0",
        "  kind: csv\n  path: de-berlin-extract.csv\n  target_column: malignant",
    ).replace("simulated: true", "simulated: false")
    assert "kind: csv" in config and "simulated: false" in config
    demo.site_config(CSV_SITE).write_text(config + "\nstate_dir: ../../site-state\n", encoding="utf-8")
    return path


def exact_clipped_sums(demo: DemoCopy) -> np.ndarray:
    """What the site's train part sums to, clipped and scaled as released, without noise (the attacker's target)."""
    contract = load_spec(demo.spec).spec.data
    assert contract is not None
    low, high = column_ranges(contract)
    data = load_site_data(load_site_config(demo.site_config(CSV_SITE)))
    return normalised_rows(data.x_train, low, high).sum(axis=0)


def released_sums(reply: Message) -> np.ndarray:
    assert not reply.has_error(), reply.error.reason if reply.has_error() else ""
    return np.asarray(as_floats(reply.content.metric_records[wire.METRICS_RECORD], wire.FEATURE_SUM))


def test_feature_sum_difference_between_two_trials_is_masked_by_charged_noise(
    approved_demo: DemoCopy, tmp_path: Path
) -> None:
    """A site's file gains one row between two trials: the released sums differ by noise of std sigma x sqrt(2d), each release charged."""
    spec = load_spec(approved_demo.spec).spec
    sigma = spec.privacy.feature_statistics_noise_multiplier
    sensitivity = sum_sensitivity(spec.model.input_features)
    features, _ = embedded_partition(0)
    second_spec = approved_demo.spec.with_name("second-trial.yaml")
    second_spec.write_text(
        approved_demo.spec.read_text(encoding="utf-8").replace("trial_id: cancer-risk-demo", "trial_id: second-trial"),
        encoding="utf-8",
    )
    approved_demo.approve(second_spec)
    coordinator = HostileCoordinator(approved_demo, tmp_path / "run")

    csv_site(approved_demo, rows=features.shape[0] - 1)
    first = released_sums(coordinator.send(CSV_SITE, coordinator.message(message_type="query", server_round=0)))
    exact_before = exact_clipped_sums(approved_demo)

    csv_site(approved_demo, rows=features.shape[0])  # one more patient
    document = load_spec(second_spec).spec.model_dump(mode="json")
    second = released_sums(
        coordinator.send(CSV_SITE, coordinator.message(document, message_type="query", server_round=0))
    )
    exact_after = exact_clipped_sums(approved_demo)

    # Without noise the difference would be exact; released, it is off by noise far wider than one record's span.
    error = (second - first) - (exact_after - exact_before)
    expected_std = sigma * sensitivity * math.sqrt(2)
    assert 0.6 * expected_std < float(np.std(error)) < 1.5 * expected_std
    assert expected_std > 10 * 2.0, "one record moves each sum by at most 2 (values scaled to [-1, 1])"
    state = approved_demo.root / "site-state"
    [ledger] = list((state / "privacy").glob("*.ledger.jsonl"))
    charges = [json.loads(line) for line in ledger.read_text(encoding="utf-8").splitlines()]
    assert [(c["trial_id"], c["release"], c["statistic"], c["round"]) for c in charges] == [
        ("cancer-risk-demo", "feature-statistics", "sums", 0),
        ("second-trial", "feature-statistics", "sums", 0),
    ]
    assert all((c["noise_multiplier"], c["sample_rate"], c["steps"]) == (sigma, 1.0, 1) for c in charges)
    assert charges[1]["cumulative_epsilon"] > charges[1]["trial_epsilon"], "both trials count against the dataset"
    for trial_id in ("cancer-risk-demo", "second-trial"):
        chain = [json.loads(line) for line in (state / trial_id / "audit.jsonl").read_text().splitlines()]
        [sent] = [e for e in chain if e["event"] == "feature-sums-sent"]
        assert sent["payload"]["release"]["noise_std"] == sigma * sensitivity
    record_attack(
        "feature-sum difference across two trials (file gains a row)",
        f"sums noised (std {sigma * sensitivity:.1f} per sum, secret), charged to the dataset's ledger each trial",
    )


def test_evaluation_probing_is_charged_per_round_and_capped(coordinator: HostileCoordinator) -> None:
    """Evaluations with crafted models: each round's one answer is noised and charged; extra probes refused, uncharged."""
    sigma = load_spec(coordinator.demo.spec).spec.privacy.evaluation_noise_multiplier
    epsilons = []
    for server_round in (1, 2, 3):
        crafted = global_arrays(scale=float(server_round))
        reply = coordinator.send(
            "gb-leeds", coordinator.message(message_type="evaluate", server_round=server_round, arrays=crafted)
        )
        assert not reply.has_error(), reply.error.reason if reply.has_error() else ""
        metrics = reply.content.metric_records[wire.METRICS_RECORD]
        assert not any("train" in key and key != wire.NUM_TRAIN_EXAMPLES for key in metrics), "no train-part metric"
        epsilons.append(metrics[wire.TRIAL_EPSILON])
        probe = coordinator.message(message_type="evaluate", server_round=server_round, arrays=global_arrays(scale=9))
        assert_refused(coordinator.send("gb-leeds", probe), wire.QUESTION_BUDGET_CLAUSE)
    charges = coordinator.charges("gb-leeds")
    assert [(c["release"], c["round"]) for c in charges] == [("evaluation", 1), ("evaluation", 2), ("evaluation", 3)]
    assert all((c["noise_multiplier"], c["sample_rate"], c["steps"]) == (sigma, 1.0, 1) for c in charges)
    assert epsilons == sorted(epsilons) and len(set(epsilons)) == 3, "every answer costs epsilon"
    assert [c["trial_epsilon"] for c in charges] == epsilons
    sent = coordinator.events("gb-leeds", "evaluation-sent")
    assert [e["payload"]["release"]["noise_std"] for e in sent] == [sigma * EVALUATION_SENSITIVITY] * 3
    record_attack(
        "evaluation probing with crafted models over rounds",
        f"1 noised answer per round (std {sigma * EVALUATION_SENSITIVITY:g} per sum), each charged; probes refused",
    )
