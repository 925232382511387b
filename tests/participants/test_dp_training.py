"""Record-level DP-SGD at a site: noise and clipping really act on training, reproducibly."""

from __future__ import annotations

import numpy as np
import torch

from participants.model import build_model
from participants.training import DpSettings, TrainSettings, train_locally


def toy_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    return x, y


def trained_weights(dp: DpSettings | None, seed: int = 3, *, secret: bool = False) -> tuple[torch.Tensor, object]:
    x, y = toy_data()
    model = build_model("logistic_regression", num_features=5, seed=1)
    settings = TrainSettings(epochs=2, batch_size=16, learning_rate=0.5, seed=seed, secret_dp_randomness=secret)
    result = train_locally(model, x, y, settings, dp=dp)
    return model.state_dict()["0.weight"].clone(), result


def test_dp_sgd_reports_sample_rate_and_steps() -> None:
    """DP-SGD reports its Poisson sample rate (1 / batches per epoch) and steps (epochs x batches) for the accountant."""
    _, result = trained_weights(DpSettings(noise_multiplier=1.0, max_grad_norm=1.0))
    assert result.sample_rate == 1 / 6
    assert result.steps == 12


def test_dp_sgd_is_reproducible_and_noise_changes_the_model() -> None:
    """Seeded (simulated sites only), the same seed gives the same DP model; more noise moves it further from the noiseless model."""
    plain, plain_result = trained_weights(None)
    assert plain_result.sample_rate is None
    low, _ = trained_weights(DpSettings(noise_multiplier=0.5, max_grad_norm=1.0))
    again, _ = trained_weights(DpSettings(noise_multiplier=0.5, max_grad_norm=1.0))
    high, _ = trained_weights(DpSettings(noise_multiplier=20.0, max_grad_norm=1.0))
    assert torch.equal(low, again)
    assert not torch.equal(low, plain)
    assert torch.dist(high, plain) > torch.dist(low, plain)


def test_a_real_sites_noise_and_sampling_cannot_be_regenerated_from_the_trial_seed() -> None:
    """By default (a real site) DP-SGD draws sampling and noise from a secret source: same trial seed, different model."""
    dp = DpSettings(noise_multiplier=0.5, max_grad_norm=1.0)
    first, _ = trained_weights(dp, secret=True)
    second, _ = trained_weights(dp, secret=True)
    assert not torch.equal(first, second)


def test_a_real_sites_batches_are_secret_too() -> None:
    """With (almost) no noise, only the Poisson batches can differ: a real site's differ between runs of the same trial seed."""
    dp = DpSettings(noise_multiplier=1e-6, max_grad_norm=1.0)
    seeded = [trained_weights(dp)[0] for _ in range(2)]
    secret = [trained_weights(dp, secret=True)[0] for _ in range(2)]
    assert torch.equal(seeded[0], seeded[1])
    assert not torch.allclose(secret[0], secret[1], atol=1e-4)


def test_clipping_bounds_each_step() -> None:
    """With almost no noise, a tiny clipping norm bounds how far one epoch of DP-SGD can move the weights."""
    x, y = toy_data()
    model = build_model("logistic_regression", num_features=5, seed=1)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    result = train_locally(
        model,
        x * 100,
        y,
        TrainSettings(epochs=1, batch_size=16, learning_rate=1.0, seed=2),
        dp=DpSettings(noise_multiplier=1e-6, max_grad_norm=0.01),
    )
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    # each step moves the weights by at most lr * max_grad_norm (mean of clipped per-sample gradients)
    assert float(torch.linalg.vector_norm(after - before)) <= result.steps * 1.0 * 0.01 * 1.05
