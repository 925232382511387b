"""Evaluation of the global model on the site's test part, released through the Gaussian mechanism.

Per record the site computes one contribution row (:func:`evaluation_rows`): ``1`` (the record),
``correct`` (0/1, threshold 0.5), its cross-entropy loss clipped to :data:`LOSS_CLIP_NATS` and divided
by it (in [0, 1]), and a one-hot cell of a 2 x :data:`SCORE_BINS` histogram of the predicted
probability by true class. A row has at most four non-zero entries, each at most 1: its L2 norm is
at most :data:`EVALUATION_SENSITIVITY` = 2 whatever the data. The sums are released with noise
``evaluation_noise_multiplier x 2`` per entry (release kind ``evaluation``, charged to the site's
ledger first), and the site derives from the noised sums (post-processing, free): accuracy =
correct / records, loss = clipped loss / records, AUROC from the noised histograms (trapezoid over
bin edges; its precision is limited by the bins). Nothing measured on the train part leaves the
site; the train count repeated is the rounded one the site committed before round 1.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import torch
from flwr.app import Context, Message, MetricRecord, RecordDict
from torch import nn

from participants.record_values import as_int
from participants.released_values import released_count
from participants.site_privacy import privacy_metrics, released
from participants.site_turn import model_from_message, open_turn, standardised
from trialcore import wire

LOSS_CLIP_NATS = 5.0
"""A record's cross-entropy loss is clipped to this (nats) before summing: public, so the sum's sensitivity is known."""
SCORE_BINS = 10
"""Equal-width bins of the predicted probability per class (0.5 is a bin edge)."""
EVALUATION_SENSITIVITY = 2.0
"""L2 norm bound of one record's row: four entries (record, correct, clipped loss, histogram cell), each <= 1."""


def evaluation_rows(
    model: nn.Module, x: npt.NDArray[np.float32], y: npt.NDArray[np.float32]
) -> npt.NDArray[np.float64]:
    """One row per test record: [1, correct, loss / clip, positives' histogram (bins), negatives' histogram (bins)]."""
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).squeeze(-1)
        labels = torch.from_numpy(y)
        losses = nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none").numpy()
        probability = torch.sigmoid(logits).numpy().astype(np.float64)
    labels_np = y.astype(np.float64)
    correct = ((probability > 0.5) == (labels_np > 0.5)).astype(np.float64)
    cell = np.minimum((probability * SCORE_BINS).astype(int), SCORE_BINS - 1)
    rows = np.zeros((labels_np.size, 3 + 2 * SCORE_BINS))
    rows[:, 0] = 1.0
    rows[:, 1] = correct
    rows[:, 2] = np.minimum(np.nan_to_num(losses, nan=LOSS_CLIP_NATS), LOSS_CLIP_NATS) / LOSS_CLIP_NATS
    offset = np.where(labels_np > 0.5, 3, 3 + SCORE_BINS)
    rows[np.arange(labels_np.size), offset + cell] = 1.0
    return rows


def metrics_from_sums(sums: npt.NDArray[np.float64]) -> tuple[float, float, float | None]:
    """(accuracy, loss in nats, AUROC or None) from the noised sums of :func:`evaluation_rows` (post-processing)."""
    records = max(float(sums[0]), 1.0)
    accuracy = float(np.clip(sums[1] / records, 0.0, 1.0))
    loss = float(np.clip(sums[2] * LOSS_CLIP_NATS / records, 0.0, LOSS_CLIP_NATS))
    positives = np.maximum(sums[3 : 3 + SCORE_BINS], 0.0)
    negatives = np.maximum(sums[3 + SCORE_BINS :], 0.0)
    return accuracy, loss, binned_auroc(positives, negatives)


def binned_auroc(positives: npt.NDArray[np.float64], negatives: npt.NDArray[np.float64]) -> float | None:
    """AUROC from per-bin counts of each class (ties within a bin count half); None if a class is empty."""
    total_pos, total_neg = float(positives.sum()), float(negatives.sum())
    if total_pos <= 0 or total_neg <= 0:
        return None
    below = np.concatenate([[0.0], np.cumsum(negatives)[:-1]])
    wins = float((positives * (below + negatives / 2)).sum())
    return float(np.clip(wins / (total_pos * total_neg), 0.0, 1.0))


def evaluate_handler(msg: Message, context: Context, overrides: Mapping[str, object]) -> Message:
    """Evaluate the received global model on the site's test part; release noised aggregates only (see the module docstring)."""
    turn = open_turn(msg, context, overrides)
    if isinstance(turn, Message):
        return turn
    withheld = turn.small_cell_refusal(msg, min(turn.data.num_test, turn.data.num_train), "the test or train part")
    if withheld is not None:
        return withheld
    data = standardised(msg, turn)
    if isinstance(data, Message):
        return data
    server_round = as_int(turn.config, wire.SERVER_ROUND)
    model = model_from_message(msg, turn, data)
    out = released(
        msg,
        turn,
        evaluation_rows(model, data.x_test, data.y_test),
        l2_sensitivity=EVALUATION_SENSITIVITY,
        noise_multiplier=turn.spec.privacy.evaluation_noise_multiplier,
        kind="evaluation",
        statistic="",
        server_round=server_round,
    )
    if isinstance(out, Message):
        return out
    accuracy, loss, auroc = metrics_from_sums(out.values)
    # AUROC describes each class separately: release it only if every class cell reaches the minimum cohort.
    smallest_class = int(min(data.y_test.sum(), data.y_test.size - data.y_test.sum()))
    if turn.below_cohort(smallest_class):
        auroc = None
    metrics = MetricRecord(
        {
            wire.NUM_EXAMPLES: released_count(data.num_test, turn.count_granularity),
            wire.NUM_TRAIN_EXAMPLES: released_count(data.num_train, turn.count_granularity),
            wire.TEST_LOSS: loss,
            wire.TEST_ACCURACY: accuracy,
            wire.TEST_AUROC: auroc if auroc is not None else 0.0,
            wire.TEST_AUROC_DEFINED: 1 if auroc is not None else 0,
            **privacy_metrics(turn, out.charge),
        }
    )
    release = {
        "kind": "evaluation",
        "l2_sensitivity": EVALUATION_SENSITIVITY,
        "noise_multiplier": out.charge.noise_multiplier,
        "noise_std": out.noise_std,
        "trial_epsilon": out.charge.trial_epsilon,
        "ledger_seq": out.charge.seq,
        "ledger_hash": out.charge.hash,
    }
    site_record = turn.record("evaluation-sent", {"round": server_round, "metrics": dict(metrics), "release": release})
    return Message(content=RecordDict({wire.METRICS_RECORD: metrics, wire.SITE_RECORD: site_record}), reply_to=msg)
