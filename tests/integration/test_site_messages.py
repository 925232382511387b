"""Everything the sites send during the demo: parameters and aggregate metrics only, no small cells."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import Message
from flwr.superlink.grid.inmemory_grid import InMemoryGrid

from sandbox.consent import clear_trial
from sandbox.resolved_trial import resolve_trial
from sandbox.trial_run import run_in_simulation
from tests.approved_demo import DemoCopy
from tests.file_reads import count_yaml_reads
from trialcore.spec_loading import load_spec

pytestmark = pytest.mark.integration

SITE_RECORD_KEYS = {"site-id", "jurisdiction", "audit-hash", "audit-length"}
COUNT_KEYS = {"num-examples", "num-train-examples"}


def test_every_site_reply_holds_parameters_and_aggregates_only(
    approved_demo: DemoCopy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each reply of the demo carries the model's parameters, scalar aggregates or per-feature sums, and counts of at least the minimum cohort; the coordinator reads no site file during the run."""
    replies: list[Message] = []
    original = InMemoryGrid.pull_messages

    def capture(self: InMemoryGrid, message_ids: Any, *args: Any, **kwargs: Any) -> Any:
        received = list(original(self, message_ids, *args, **kwargs))
        replies.extend(received)
        return received

    # Every reply passes through pull_messages, whoever waits for it (Flower's loop or the bounded grid's).
    monkeypatch.setattr(InMemoryGrid, "pull_messages", capture)
    loaded = load_spec(approved_demo.spec)
    trial = resolve_trial(loaded)
    clearance = clear_trial(trial)
    reads = count_yaml_reads(monkeypatch)
    result = run_in_simulation(trial, runs_root=tmp_path / "runs-out", metrics_port=0, clearance=clearance)
    assert not reads, f"the coordinator re-read {sorted(reads)} during the run (the trial is resolved once)"
    minimum = result.report["min_cohort_size"]
    num_features = loaded.spec.model.input_features
    parameter_shapes = {"0.weight": (1, num_features), "0.bias": (1,)}

    assert len(replies) == 4 * (1 + 2 * loaded.spec.rounds), "one query, then train and evaluate each round, per site"
    for reply in replies:
        assert not reply.has_error(), reply.error.reason if reply.has_error() else ""
        content = reply.content
        assert set(content.config_records) == {"site"}
        assert set(content.config_records["site"]) == SITE_RECORD_KEYS
        for record in content.array_records.values():
            assert {key: tuple(array.shape) for key, array in record.items()} == parameter_shapes
        assert set(content.metric_records) == {"metrics"}
        for key, value in content.metric_records["metrics"].items():
            if isinstance(value, list):
                assert key in {"feature-sum", "feature-sum-squares"} and len(value) == num_features
                assert np.isfinite(value).all()
            else:
                assert isinstance(value, (int, float))
            if key in COUNT_KEYS:
                assert value >= minimum, f"a count below the minimum cohort left a site: {key}={value}"
