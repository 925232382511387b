"""The small torch models a trial can train, chosen by name in the trial spec.

Both output one logit per record (binary risk): ``sigmoid(logit)`` is the predicted probability
of the positive class (for the demo data: malignant).
"""

from __future__ import annotations

import torch
from torch import nn

MODEL_NAMES = ("logistic_regression", "mlp")


def build_model(name: str, *, num_features: int, hidden_units: int = 16, seed: int = 0) -> nn.Module:
    """A fresh model with seeded initial weights.

    Parameters
    ----------
    name:
        ``"logistic_regression"`` (one linear layer) or ``"mlp"`` (one hidden ReLU layer).
    num_features:
        Input width.
    hidden_units:
        Hidden width of the MLP.
    seed:
        Seed of the initial weights: the same seed gives the same model.
    """
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        if name == "logistic_regression":
            return nn.Sequential(nn.Linear(num_features, 1))
        if name == "mlp":
            return nn.Sequential(nn.Linear(num_features, hidden_units), nn.ReLU(), nn.Linear(hidden_units, 1))
    finally:
        torch.random.set_rng_state(generator_state)
    raise ValueError(f"unknown model {name!r}; allowed: {', '.join(MODEL_NAMES)}")
