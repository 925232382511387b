"""Local training and evaluation on a site's own records (plain SGD; DP-SGD arrives with the privacy work)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from participants.site_data import FloatArray


@dataclass(frozen=True)
class TrainSettings:
    """Local training settings for one round, as the trial asks (the site may tighten them)."""

    epochs: int
    batch_size: int
    learning_rate: float
    seed: int


@dataclass(frozen=True)
class Evaluation:
    """Aggregate statistics of a model on one part of a site's data.

    ``auroc`` is None when the part holds a single class (AUROC undefined).
    """

    num_examples: int
    loss: float
    accuracy: float
    auroc: float | None


def train_locally(model: nn.Module, x: FloatArray, y: FloatArray, settings: TrainSettings) -> float:
    """Train ``model`` in place with SGD on the site's train part; return the mean training loss."""
    generator = torch.Generator().manual_seed(settings.seed)
    loader = DataLoader(
        TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
        batch_size=settings.batch_size,
        shuffle=True,
        generator=generator,
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.learning_rate)
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    total, count = 0.0, 0
    for _ in range(settings.epochs):
        for features, labels in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(features).squeeze(-1), labels)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(labels)
            count += len(labels)
    return total / max(count, 1)


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
