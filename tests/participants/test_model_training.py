"""The local model and training a site runs: seeded, named, and actually learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from participants.model import build_model
from participants.training import TrainSettings, evaluate, train_locally


def _weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("name", ["logistic_regression", "mlp"])
def test_same_seed_gives_same_initial_weights(name: str) -> None:
    """Every site starts from the same model for a given trial seed; another seed gives another model."""
    first = _weights(build_model(name, num_features=5, seed=42))
    second = _weights(build_model(name, num_features=5, seed=42))
    other = _weights(build_model(name, num_features=5, seed=43))
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_unknown_model_name_is_refused() -> None:
    """A model name outside the allowed list raises ValueError naming the allowed names."""
    with pytest.raises(ValueError, match="logistic_regression, mlp"):
        build_model("resnet", num_features=5)


def _separable(records: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Two well separated clusters in 2-D, labelled 0 and 1."""
    rng = np.random.default_rng(0)
    labels = np.arange(records) % 2
    centres = np.where(labels[:, None] == 1, 2.0, -2.0)
    features = centres + rng.normal(scale=0.5, size=(records, 2))
    return features.astype(np.float32), labels.astype(np.float32)


def test_local_training_lowers_the_loss() -> None:
    """A few epochs of local SGD lower the loss on separable data and classify it well."""
    x, y = _separable()
    model = build_model("logistic_regression", num_features=2, seed=1)
    before = evaluate(model, x, y)
    train_locally(model, x, y, TrainSettings(epochs=5, batch_size=8, learning_rate=0.5, seed=3))
    after = evaluate(model, x, y)
    assert after.loss < before.loss / 2
    assert after.accuracy > 0.95
    assert after.auroc is not None and after.auroc > 0.95
    assert after.num_examples == 64


def test_auroc_is_none_when_only_one_class_is_present() -> None:
    """AUROC is reported as None (undefined), not as a made-up number, when a part holds one class."""
    x, _ = _separable()
    result = evaluate(build_model("mlp", num_features=2, seed=0), x, np.ones(len(x), dtype=np.float32))
    assert result.auroc is None
    assert 0.0 <= result.accuracy <= 1.0 and np.isfinite(result.loss)
