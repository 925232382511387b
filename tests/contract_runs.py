"""Data-contract trials run in this process (no Ray), and the true accuracy of their final model.

:class:`InProcessGrid` delivers each message to the real ClientApp (guard, handlers, connectors,
encoder, ledger) in this process: node ``100 + i`` is the spec's site ``i``. :func:`run_in_process`
runs the real governed trial (:func:`sandbox.server_app.run_trial`) on it, so a test or the bench
checks a whole data-contract trial without an engine start-up. :func:`true_test_accuracy` measures
the final model on each site's test part, prepared as the site prepared it (the statistics it
pinned, or its own under per-site normalisation): the released accuracies are noised.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import Context, Message, RecordDict
from flwr.supercore.task_identity import TaskIdentity
from prometheus_client import CollectorRegistry

from participants.client_app import make_client_app
from participants.contract_data import ContractSiteData, load_site_records
from participants.model import build_model
from participants.training import evaluate
from sandbox.resolved_trial import resolve_trial
from sandbox.server_app import TrialHooks, new_metrics, run_trial
from sandbox.trial_run import simulated_site_settings
from trialcore.feature_statistics import FeatureStatistics
from trialcore.spec_loading import LoadedSpec


class InProcessGrid:
    """Delivers each message to the real ClientApp in this process: node 100 + i is the spec's site i."""

    def __init__(self, settings: dict[str, str], sites: int) -> None:
        self.client_app = make_client_app(settings)
        self.contexts = {
            100 + i: Context(
                run_id=7, node_id=100 + i, node_config={"partition-id": i}, state=RecordDict(), run_config={}
            )
            for i in range(sites)
        }

    def get_node_ids(self) -> list[int]:
        return list(self.contexts)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> list[Message]:
        return [self.client_app(m, self.contexts[m.metadata.dst_node_id]) for m in messages]


def set_task_identity() -> None:
    """Flower messages need the task's identity, which a ServerApp process normally sets."""
    for name in ("_run_id", "_node_id", "_task_id"):
        setattr(TaskIdentity, name, 1)


def run_in_process(loaded: LoadedSpec, run_dir: Path) -> dict[str, Any]:
    """The governed trial of ``loaded`` with every site in this process; its report."""
    set_task_identity()
    registry = CollectorRegistry()
    hooks = TrialHooks(registry=registry, metrics=new_metrics(loaded, registry, run_id=run_dir.name))
    grid = InProcessGrid(simulated_site_settings(loaded, run_dir), len(loaded.spec.participants))
    return run_trial(grid, resolve_trial(loaded), run_dir, hooks)  # type: ignore[arg-type]


def true_test_accuracy(loaded: LoadedSpec, run_dir: Path) -> tuple[float, dict[str, float]]:
    """Pooled and per-site accuracy (0-1) of ``run_dir``'s final model on the sites' test parts."""
    spec = loaded.spec
    assert spec.data is not None
    model = build_model(spec.model.name, num_features=spec.model.input_features, hidden_units=spec.model.hidden_units)
    model.load_state_dict(torch.load(run_dir / "model.pt", weights_only=True))
    xs, ys, per_site = [], [], {}
    for site_id, site in resolve_trial(loaded).sites.items():
        data = load_site_records(site, spec.data)
        assert isinstance(data, ContractSiteData)
        pinned = list((run_dir / "sites" / site_id).rglob("feature-scaling.json"))
        if pinned:
            scaling = json.loads(pinned[0].read_text(encoding="utf-8"))
            statistics = FeatureStatistics(scaling["mean"], scaling["std"], scaling["median"])
        else:
            statistics = data.own_statistics()
        prepared = data.prepared(statistics)
        per_site[site_id] = evaluate(model, prepared.x_test, prepared.y_test).accuracy
        xs.append(prepared.x_test)
        ys.append(prepared.y_test)
    return evaluate(model, np.concatenate(xs), np.concatenate(ys)).accuracy, per_site
