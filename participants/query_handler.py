"""The pre-round-1 feature query: the site's committed count and, under a federated contract, its noised feature sums.

The reply carries the train part's record count rounded down to the site's granularity (counts
are treated as public) and, when the trial standardises with the federation's statistics, the
sums of the rows the data contract's release layout defines (values clipped to the contract's
public ranges and scaled to [-1, 1]; observed counts, squares and median histograms when the
contract's rules need them: :mod:`trialcore.feature_statistics`), with Gaussian noise at the
layout's L2 sensitivity, charged to the site's ledger first as ``feature-statistics``. The
question book lets the query be answered once per trial. Nothing is sent when the train part is
below the minimum cohort. A site that publishes its data profile (``publish_profile`` in its node
config) adds it: counts only, rounded, none below the minimum cohort (:mod:`participants.data_checks`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict

from participants.contract_data import ContractSiteData
from participants.data_checks import site_profile
from participants.released_values import released_count
from participants.site_config import EmbeddedSource
from participants.site_privacy import privacy_metrics, released
from participants.site_turn import SiteTurn, open_train_part_turn
from trialcore import wire
from trialcore.canonical_json import canonical_json
from trialcore.feature_statistics import SUMS_STATISTIC, federated_scaling, release_layout

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
    data = turn.data
    if federated_scaling(turn.spec) and isinstance(data, ContractSiteData):
        sensitivity = release_layout(data.contract).l2_sensitivity
        out = released(
            msg,
            turn,
            data.release_rows(),
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
    profile = _published_profile(turn)
    payload["profile_published"] = profile is not None
    site_record = turn.record("feature-sums-sent", payload)
    metrics = MetricRecord({wire.NUM_EXAMPLES: count, wire.FEATURE_SUM: sums, **figures})
    records: dict[str, ArrayRecord | MetricRecord | ConfigRecord] = {wire.METRICS_RECORD: metrics}
    if profile is not None:
        records[wire.PROFILE_RECORD] = ConfigRecord({wire.DATA_PROFILE_JSON: profile})
    records[wire.SITE_RECORD] = site_record
    return Message(content=RecordDict(records), reply_to=msg)


def _published_profile(turn: SiteTurn) -> str | None:
    """The site's data profile as JSON text, if its node config publishes it (a table source under a contract)."""
    source = turn.site.config.data
    if not turn.site.config.publish_profile or isinstance(source, EmbeddedSource) or turn.spec.data is None:
        return None
    if not isinstance(turn.data, ContractSiteData):
        return None
    profile = site_profile(
        turn.data, source, min_cohort_size=turn.min_cohort_size, count_granularity=turn.count_granularity
    )
    return canonical_json(profile).decode("utf-8")
