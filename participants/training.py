"""Local training and evaluation on a site's own records: SGD, or record-level DP-SGD with Opacus.

DP-SGD (Abadi et al. 2016) as Opacus implements it: Poisson sampling of records, per-sample
gradient clipping to ``max_grad_norm`` and Gaussian noise of standard deviation
``noise_multiplier * max_grad_norm``. This module only trains: each round is charged to the
site's privacy ledger (:mod:`participants.privacy_ledger`) before its update leaves the site.
"""

from __future__ import annotations

import secrets
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from opacus import PrivacyEngine
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from participants.site_data import FloatArray
from participants.site_floor import DpSettings


@dataclass(frozen=True)
class TrainSettings:
    """Local training settings for one round, as the trial asks (the site may tighten them)."""

    epochs: int
    batch_size: int
    learning_rate: float
    seed: int
    secret_dp_randomness: bool = True
    """Draw DP-SGD's Poisson sampling and noise from the OS's secure random source.

    Seeded from ``seed`` instead, anyone who knows the trial seed (the coordinator) could
    regenerate the noise and subtract it. Only simulated sites turn this off, so a demo run is
    reproducible; the shuffling of plain SGD and the model are seeded either way.
    """


@dataclass(frozen=True)
class TrainResult:
    """What one round of local training did.

    ``sample_rate`` and ``steps`` are the Poisson sampling rate and optimiser steps of DP-SGD
    (None without DP); an accountant needs them with the noise multiplier.
    """

    mean_loss: float
    steps: int
    sample_rate: float | None


@dataclass(frozen=True)
class Evaluation:
    """Aggregate statistics of a model on one part of a site's data.

    ``auroc`` is None when the part holds a single class (AUROC undefined).
    """

    num_examples: int
    loss: float
    accuracy: float
    auroc: float | None


def train_locally(
    model: nn.Module, x: FloatArray, y: FloatArray, settings: TrainSettings, *, dp: DpSettings | None = None
) -> TrainResult:
    """Train ``model`` in place on the site's train part; with ``dp``, by DP-SGD (Opacus)."""
    generator = torch.Generator().manual_seed(settings.seed)
    loader: DataLoader[tuple[torch.Tensor, ...]] = DataLoader(
        TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
        batch_size=settings.batch_size,
        shuffle=True,
        generator=generator,
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.learning_rate)
    if dp is None:
        return _run_epochs(model, model, optimizer, loader, settings.epochs, sample_rate=None)
    with warnings.catch_warnings():
        # Opacus warns that its fast, non-cryptographic RNG is used; the demo and tests accept it.
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        # torch warns when a backward hook fires for inputs that need no gradient (Opacus's hooks on our first layer).
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        sampling, noise = _dp_generators(settings)
        engine = PrivacyEngine(accountant="rdp")
        private_model, private_optimizer, private_loader = engine.make_private(
            module=model,
            optimizer=optimizer,
            data_loader=loader,
            noise_multiplier=dp.noise_multiplier,
            max_grad_norm=dp.max_grad_norm,
            poisson_sampling=True,
            noise_generator=noise,
        )
        # Opacus's Poisson sampler would otherwise draw from the loader's shuffling generator (seeded by the trial seed).
        private_loader.batch_sampler.generator = sampling
        result = _run_epochs(
            private_model, model, private_optimizer, private_loader, settings.epochs, sample_rate=1.0 / len(loader)
        )
        private_model.remove_hooks()
    return result


def _dp_generators(settings: TrainSettings) -> tuple[torch.Generator, torch.Generator]:
    """Generators for DP-SGD's Poisson sampling and Gaussian noise: secret unless the settings say otherwise.

    A secret seed is 63 bits from :mod:`secrets` (the OS's CSPRNG) for a torch generator (not a
    cryptographic one: Opacus's ``secure_mode`` needs ``torchcsprng``, whose last release (0.2.1, 2021) predates
    torch 2 and is not installed here). It is never written anywhere.
    """
    if settings.secret_dp_randomness:
        return torch.Generator().manual_seed(secrets.randbits(63)), torch.Generator().manual_seed(secrets.randbits(63))
    return torch.Generator().manual_seed(settings.seed + 2), torch.Generator().manual_seed(settings.seed + 1)


def _run_epochs(
    trained: nn.Module,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader[tuple[torch.Tensor, ...]],
    epochs: int,
    *,
    sample_rate: float | None,
) -> TrainResult:
    loss_fn = nn.BCEWithLogitsLoss()
    trained.train()
    total, count, steps = 0.0, 0, 0
    for _ in range(epochs):
        for features, labels in loader:
            optimizer.zero_grad()
            loss = loss_fn(trained(features).squeeze(-1), labels)
            loss.backward()
            optimizer.step()
            steps += 1
            if len(labels):  # Poisson sampling can draw an empty batch: a step (noise only), no loss to average
                total += float(loss.detach()) * len(labels)
                count += len(labels)
    model.eval()
    return TrainResult(mean_loss=total / max(count, 1), steps=steps, sample_rate=sample_rate)


def evaluate(model: nn.Module, x: FloatArray, y: FloatArray) -> Evaluation:
    """Loss, accuracy (threshold 0.5) and AUROC of ``model`` on one part of the site's data."""
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).squeeze(-1)
        labels = torch.from_numpy(y)
        loss = float(nn.functional.binary_cross_entropy_with_logits(logits, labels))
        predictions = (logits > 0).float()
        accuracy = float((predictions == labels).float().mean())
    auroc = float(roc_auc_score(y, logits.numpy())) if np.unique(y).size == 2 else None
    return Evaluation(num_examples=int(y.shape[0]), loss=loss, accuracy=accuracy, auroc=auroc)
