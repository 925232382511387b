"""The report's ``preprocessing`` section: how a data-contract trial's statistics were made, and what sites published.

Made once, before round 1, from the feature query's replies (:mod:`sandbox.feature_scaling`):
the normalisation the trial used (``federated`` or ``per-site``), whether the statistics left
the sites through the accounted Gaussian mechanism (``gaussian``) or nothing left (``none``), the
sites pooled and those left out (with why), the epsilon each site's release of them cost
(``feature-statistics``, from its ledger's figures in the reply), the statistics themselves, the
data profiles sites chose to publish (counts only, checked here) and how long it took.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from flwr.app import Message

from participants.record_values import RecordValueError, as_str
from trialcore import wire
from trialcore.data_contract import DataContract
from trialcore.feature_statistics import FeatureStatistics


def preprocessing_report(
    contract: DataContract,
    statistics: FeatureStatistics | None,
    *,
    pooled: Sequence[tuple[str, Message]],
    refused: Mapping[str, str],
    profiles: Mapping[str, dict[str, Any]],
    seconds: float,
) -> dict[str, Any]:
    """What report.json records under ``preprocessing`` (see the module docstring)."""
    key = wire.TRIAL_EPSILON_BY_RELEASE["feature-statistics"]
    epsilon: dict[str, float] = {}
    for site_id, reply in pooled:
        value = reply.content.metric_records[wire.METRICS_RECORD].get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            epsilon[site_id] = float(value)
    return {
        "normalisation": contract.normalisation,
        "spread": contract.spread,
        "statistics_release": "gaussian" if statistics is not None else "none",
        "pooled_sites": sorted(site for site, _ in pooled) if statistics is not None else [],
        "refused": dict(sorted(refused.items())),
        "statistics_epsilon": dict(sorted(epsilon.items())),
        "max_statistics_epsilon": max(epsilon.values(), default=0.0),
        "statistics": statistics.as_json() if statistics is not None else None,
        "site_profiles": dict(sorted(profiles.items())),
        "seconds": round(seconds, 4),
    }


MAX_PROFILE_CHARS = 200_000


def published_profile(reply: Message, contract: DataContract) -> dict[str, Any] | None:
    """The data profile a site published with its reply, if it is well-formed (counts only); else None.

    Only the expected keys pass, each count an integer >= 0 or null, the missing counts named by
    the contract's features: a site cannot put anything else into the report this way.
    """
    try:
        text = as_str(reply.content.config_records[wire.PROFILE_RECORD], wire.DATA_PROFILE_JSON)
    except (KeyError, RecordValueError):
        return None
    if len(text) > MAX_PROFILE_CHARS:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    counts = ("rows", "train", "test", "positive", "negative", "min_cohort_size", "count_granularity")
    names = {f.name for f in contract.features}

    def count(value: object) -> bool:
        return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)

    if not isinstance(data, dict) or set(data) != {*counts, "missing", "not_collected"}:
        return None
    missing, not_collected = data["missing"], data["not_collected"]
    if not all(count(data[k]) for k in counts) or not isinstance(missing, dict) or not isinstance(not_collected, list):
        return None
    if set(missing) != names or not all(count(v) for v in missing.values()):
        return None
    if not all(isinstance(n, str) and n in names for n in not_collected):
        return None
    return {k: data[k] for k in sorted(data)}
