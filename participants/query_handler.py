"""The pre-round-1 feature query: the site's committed count and, under a federated contract, its noised feature sums.

The reply carries the train part's record count rounded down to the site's granularity (counts
are treated as public) and, when the trial standardises with the federation's statistics, the
sums of the train part's values clipped to the contract's public ranges and scaled to [-1, 1],
with Gaussian noise, charged to the site's ledger first (:mod:`participants.feature_statistics`).
The question book lets the query be answered once per trial. Nothing is sent when the train
part is below the minimum cohort.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flwr.app import Context, Message, MetricRecord, RecordDict

from participants.feature_statistics import (
    SUMS_STATISTIC,
    column_ranges,
    federated_scaling,
    normalised_rows,
    sum_sensitivity,
)
from participants.released_values import released_count
from participants.site_privacy import privacy_metrics, released
from participants.site_turn import open_train_part_turn
from trialcore import wire

FEATURE_QUERY_ROUND = 0
"""The ledger round of the feature-statistics release (before round 1)."""


def query_handler(msg: Message, context: Context, overrides: Mapping[str, object]) -> Message:
    """Reply with the rounded train count and, for federated standardisation, the noised clipped feature sums."""
    turn = open_train_part_turn(msg, context, overrides)
    if isinstance(turn, Message):
        return turn
    count = released_count(turn.data.num_train, turn.count_granularity)
    sums: list[float] = []
    figures: dict[str, float] = {}
    payload: dict[str, Any] = {"num_examples": count, "num_features": turn.data.num_features, "release": None}
    if federated_scaling(turn.spec) and turn.spec.data is not None:
        low, high = column_ranges(turn.spec.data)
        sensitivity = sum_sensitivity(low.size)
        out = released(
            msg,
            turn,
            normalised_rows(turn.data.x_train, low, high),
            l2_sensitivity=sensitivity,
            noise_multiplier=turn.spec.privacy.feature_statistics_noise_multiplier,
            kind="feature-statistics",
            statistic=SUMS_STATISTIC,
            server_round=FEATURE_QUERY_ROUND,
        )
        if isinstance(out, Message):
            return out
        sums = out.values.tolist()
        figures = privacy_metrics(turn, out.charge)
        payload["release"] = {
            "kind": "feature-statistics",
            "statistic": SUMS_STATISTIC,
            "l2_sensitivity": sensitivity,
            "noise_multiplier": out.charge.noise_multiplier,
            "noise_std": out.noise_std,
            "trial_epsilon": out.charge.trial_epsilon,
            "ledger_seq": out.charge.seq,
            "ledger_hash": out.charge.hash,
        }
    site_record = turn.record("feature-sums-sent", payload)
    metrics = MetricRecord({wire.NUM_EXAMPLES: count, wire.FEATURE_SUM: sums, **figures})
    return Message(content=RecordDict({wire.METRICS_RECORD: metrics, wire.SITE_RECORD: site_record}), reply_to=msg)
