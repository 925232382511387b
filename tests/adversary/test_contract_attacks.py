"""Attacks on federated preprocessing: a coordinator varying the statistics, a site smuggling data into the report."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict

from participants.client_app import make_client_app
from participants.model import build_model
from sandbox.preprocessing_report import published_profile
from tests.adversary.hostile_coordinator import assert_refused, record_attack
from tests.coordinator_messages import coordinator_message
from trialcore import layout, wire
from trialcore.canonical_json import canonical_json
from trialcore.spec_loading import load_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SPEC = load_spec(EXAMPLES / "extracts.yaml").spec
NUMERIC = SPEC.data.numeric_features if SPEC.data else ()
CENTRES = [(f.range[0] + f.range[1]) / 2 for f in NUMERIC]
SPREADS = [(f.range[1] - f.range[0]) / 10 for f in NUMERIC]


def _send(run_dir: Path, config: dict[str, Any], message_id: str) -> Message:
    document = SPEC.model_dump(mode="json")
    spec_json = canonical_json(document).decode()
    values: dict[str, Any] = {
        wire.TRIAL_ID: SPEC.trial_id,
        wire.SPEC_HASH: hashlib.sha256(spec_json.encode()).hexdigest(),
        wire.SPEC_JSON: spec_json,
        wire.SERVER_ROUND: 1,
        wire.MIN_COHORT_SIZE: 11,
        **config,
    }
    model = build_model("logistic_regression", num_features=SPEC.model.input_features, hidden_units=16, seed=1)
    content = RecordDict(
        {wire.CONFIG_RECORD: ConfigRecord(values), wire.ARRAYS_RECORD: ArrayRecord(model.state_dict())}
    )
    msg = coordinator_message("evaluate", content, message_id=message_id)
    app = make_client_app(
        {
            wire.RUN_DIR: str(run_dir),
            wire.FEDERATION_DIR: str(EXAMPLES / "extract-sites"),
            wire.FEDERATION_SITES: ",".join(SPEC.site_ids),
        }
    )
    context = Context(run_id=1, node_id=5, node_config={"partition-id": 2}, state=RecordDict(), run_config={})
    return app(msg, context)


def test_coordinator_cannot_vary_the_contract_statistics_within_a_trial(tmp_path: Path) -> None:
    """A second message with other medians (a probe of the records through imputation) is refused."""
    scaling = {wire.FEATURE_MEAN: CENTRES, wire.FEATURE_STD: SPREADS}
    first = _send(tmp_path, {**scaling, wire.FEATURE_MEDIAN: CENTRES}, "m1")
    assert not first.has_error(), first.error.reason if first.has_error() else ""
    other = [low + (c - low) / 2 for c, low in zip(CENTRES, (f.range[0] for f in NUMERIC))]
    probe = _send(tmp_path, {**scaling, wire.FEATURE_MEDIAN: other, wire.SERVER_ROUND: 2}, "m2")
    reason = assert_refused(probe, "feature-scaling", "differs from the one this site already used")
    record_attack("contract statistics varied between messages (imputation probe)", f"refused: {reason[:60]}")


@pytest.mark.parametrize(
    ("what", "scaling"),
    [
        ("mean far outside the range", {wire.FEATURE_MEAN: [1e6] * len(NUMERIC)}),
        ("median outside the range", {wire.FEATURE_MEDIAN: [-1e6] * len(NUMERIC)}),
        ("tiny standard deviation", {wire.FEATURE_STD: [0.0] * len(NUMERIC)}),
        ("negative standard deviation", {wire.FEATURE_STD: [-1.0] * len(NUMERIC)}),
        ("non-finite mean", {wire.FEATURE_MEAN: [float("nan")] * len(NUMERIC)}),
        ("too few statistics", {wire.FEATURE_MEAN: CENTRES[:-1]}),
    ],
)
def test_coordinator_statistics_outside_the_contract_are_refused(
    tmp_path: Path, what: str, scaling: dict[str, Any]
) -> None:
    """Statistics a site would impute or scale with are checked against the contract before first use, never trusted."""
    sent = {wire.FEATURE_MEAN: CENTRES, wire.FEATURE_STD: SPREADS, wire.FEATURE_MEDIAN: CENTRES, **scaling}
    reply = _send(tmp_path, sent, "m1")
    reason = assert_refused(reply, "feature-scaling", "")
    assert not list(tmp_path.rglob(layout.SCALING_FILE))  # nothing pinned: the site used none of it
    record_attack(f"contract statistics: {what}", f"refused: {reason[:60]}")


@pytest.mark.parametrize(
    "profile",
    [
        {"rows": 120, "note": "patient 4711 is HIV positive"},
        {
            "rows": "120 incl. J. Doe",
            "train": 90,
            "test": 30,
            "positive": 80,
            "negative": 30,
            "min_cohort_size": 11,
            "missing": {},
            "not_collected": [],
        },
    ],
)
def test_a_site_cannot_put_anything_but_counts_into_the_report(profile: dict[str, Any]) -> None:
    """A published profile with unknown keys or text where a count belongs is dropped, never reported."""
    reply = Message(
        RecordDict(
            {
                wire.METRICS_RECORD: MetricRecord({wire.NUM_EXAMPLES: 10}),
                wire.PROFILE_RECORD: ConfigRecord({wire.DATA_PROFILE_JSON: canonical_json(profile).decode()}),
            }
        ),
        reply_to=coordinator_message("query", RecordDict()),
    )
    assert SPEC.data is not None
    assert published_profile(reply, SPEC.data) is None
    record_attack("site smuggles text into its published data profile", "profile dropped from the report")
