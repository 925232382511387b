"""The demo's true pooled test accuracy: what only a simulation, which sees every site's records, can measure.

The sites release their test accuracy from noised sums (:mod:`participants.evaluate_handler`); on the
demo's 30-40 test records a site that is mostly noise. The model's real accuracy is measured here
from the run's ``model.pt`` on the union of the demo sites' test parts, each scaled as its site
pinned the scaling for the trial.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from participants.embedded_data import embedded_partition
from participants.model import build_model
from participants.site_data import split_records
from participants.training import evaluate

DEMO_SITES = ("de-berlin", "fr-lyon", "gb-leeds", "ch-zurich")
"""The demo's sites, in partition order."""


def true_pooled_test_accuracy(run_dir: Path, *, test_fraction: float = 0.25) -> float:
    """Accuracy (fraction 0-1) of ``run_dir``'s final logistic regression on the pooled demo test parts."""
    model = build_model("logistic_regression", num_features=30)
    model.load_state_dict(torch.load(run_dir / "model.pt", weights_only=True))
    xs, ys = [], []
    for partition, site in enumerate(DEMO_SITES):
        data = split_records(*embedded_partition(partition), test_fraction=test_fraction)
        [pinned] = (run_dir / "sites" / site).rglob("feature-scaling.json")
        scaling = json.loads(pinned.read_text(encoding="utf-8"))
        scaled = data.standardised(scaling["mean"], scaling["std"])
        xs.append(scaled.x_test)
        ys.append(scaled.y_test)
    return evaluate(model, np.concatenate(xs), np.concatenate(ys)).accuracy
