"""Attacks on the coordinator's trust in what sites claim: forged ids, forged refusals, absurd counts, weak robust strategies."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, MetricRecord, RecordDict
from flwr.common.constant import ErrorCode
from flwr.serverapp.strategy import FedAvg
from flwr.supercore.task_identity import TaskIdentity
from pydantic import ValidationError

from sandbox.enforcement import Enforcer, Incident, Ladder
from sandbox.feature_scaling import Commitment, pooled_feature_scaling
from sandbox.governed_strategy import GovernedStrategy
from sandbox.round_outcome import RoundOutcome
from tests.adversary.hostile_coordinator import record_attack
from trialcore import wire
from trialcore.data_contract import DataContract
from trialcore.spec import StrategySpec

NODES = {11: "de-berlin", 12: "fr-lyon", 13: "gb-leeds"}
COUNTS = {"de-berlin": 90, "fr-lyon": 100, "gb-leeds": 110}
GLOBAL = ArrayRecord({"w": Array(np.zeros(2, dtype=np.float32))})


@dataclass
class Observer:
    """Records what the governed strategy reports (the recorder's interface, no I/O)."""

    rejected: list[tuple[int, str, str]] = field(default_factory=list)
    exhausted: list[str] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    outcomes: list[RoundOutcome] = field(default_factory=list)

    def round_started(self, server_round: int) -> str:
        return "0" * 64

    def update_rejected(self, server_round: int, site_id: str, reason: str, detail: str) -> None:
        self.rejected.append((server_round, site_id, reason))

    def round_skipped(self, server_round: int, *, accepted: int, required: int) -> None: ...

    def incident_recorded(self, incident: Incident) -> None:
        self.incidents.append(incident)

    def round_finished(self, outcome: RoundOutcome) -> None:
        self.outcomes.append(outcome)

    def privacy_reported(self, server_round: int, site_id: str, figures: MetricRecord) -> None: ...

    def budget_exhausted(self, server_round: int, site_id: str, reason: str) -> None:
        self.exhausted.append(site_id)


class Grid:
    """A grid whose nodes answer the feature query with the given replies (by node)."""

    def __init__(self, answers: dict[int, dict[str, Any]] | None = None) -> None:
        self.answers = answers or {}

    def get_node_ids(self) -> list[int]:
        return list(NODES)

    def send_and_receive(self, messages: Iterable[Message], timeout: float) -> list[Message]:
        replies = []
        for msg in messages:
            answer = self.answers[msg.metadata.dst_node_id]
            content = RecordDict(
                {
                    wire.METRICS_RECORD: MetricRecord(
                        {
                            wire.NUM_EXAMPLES: answer["count"],
                            wire.FEATURE_SUM: [float(answer["count"])] * 2,
                        }
                    ),
                    wire.SITE_RECORD: ConfigRecord({wire.SITE_ID: answer["site"]}),
                }
            )
            replies.append(Message(content=content, reply_to=msg))
        return replies


@pytest.fixture(autouse=True)
def task_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flower messages need the task's identity, which the ServerApp process normally sets."""
    for name in ("_run_id", "_node_id", "_task_id"):
        monkeypatch.setattr(TaskIdentity, name, 1)


def governed(tmp_path: Path, ladder: Ladder | None = None) -> tuple[GovernedStrategy, Observer]:
    """A governed FedAvg whose nodes are bound as the feature query bound them (with committed counts)."""
    observer = Observer()
    strategy = GovernedStrategy(
        FedAvg(min_train_nodes=3, min_available_nodes=3),
        observer=observer,
        max_update_l2_norm=10.0,
        min_participants=1,
        enforcer=Enforcer(tmp_path, ladder or Ladder()),
        num_sites=3,
    )
    strategy.bind({node: Commitment(site, COUNTS[site]) for node, site in NODES.items()})
    return strategy, observer


def sent(strategy: GovernedStrategy, server_round: int) -> dict[str, Message]:
    messages = strategy.configure_train(server_round, GLOBAL, ConfigRecord({}), Grid())  # type: ignore[arg-type]
    return {NODES[m.metadata.dst_node_id]: m for m in messages}


def update(msg: Message, values: list[float], *, count: Any = None, claims: str | None = None) -> Message:
    site = NODES[msg.metadata.dst_node_id]
    content = RecordDict(
        {
            wire.ARRAYS_RECORD: ArrayRecord({"w": Array(np.array(values, dtype=np.float32))}),
            wire.METRICS_RECORD: MetricRecord({wire.NUM_EXAMPLES: COUNTS[site] if count is None else count}),
            wire.SITE_RECORD: ConfigRecord(
                {wire.SITE_ID: claims or site, wire.AUDIT_HASH: "a" * 64, wire.AUDIT_LENGTH: 3}
            ),
        }
    )
    return Message(content=content, reply_to=msg)


def refusal(msg: Message, reason: str) -> Message:
    return Message(Error(code=ErrorCode.MOD_FAILED_PRECONDITION, reason=reason), reply_to=msg)


def test_a_reply_claiming_another_site_is_rejected(tmp_path: Path) -> None:
    """A node bound to gb-leeds that claims to be de-berlin has its update rejected, attributed to gb-leeds."""
    strategy, observer = governed(tmp_path)
    out = sent(strategy, 1)
    replies = [update(out["de-berlin"], [1.0, 1.0]), update(out["gb-leeds"], [9.0, 9.0], claims="de-berlin")]
    arrays, _ = strategy.aggregate_train(1, replies)
    assert arrays is not None
    np.testing.assert_array_equal(arrays["w"].numpy(), [1.0, 1.0])
    assert observer.rejected == [(1, "gb-leeds", "site-identity")]
    assert [i.site_id for i in observer.incidents] == ["gb-leeds"]
    record_attack("reply claiming another site's id", "rejected (site-identity), attributed to its own node")


def test_a_forged_budget_refusal_names_only_its_own_node(tmp_path: Path) -> None:
    """A refusal text naming another site marks the node that sent it out of budget, never the site it names."""
    strategy, observer = governed(tmp_path)
    out = sent(strategy, 1)
    forged = f"{wire.BUDGET_EXHAUSTED_PREFIX} site de-berlin: epsilon would pass the budget"
    strategy.aggregate_train(1, [update(out["de-berlin"], [1.0, 1.0]), refusal(out["gb-leeds"], forged)])
    assert observer.exhausted == ["gb-leeds"]
    assert set(sent(strategy, 2)) == {"de-berlin", "fr-lyon"}, "de-berlin still trains"
    record_attack("forged budget refusal naming another site", "attributed to the sending node only")


@pytest.mark.parametrize("count", [-1000, 10**9, 91, 0])
def test_an_update_whose_count_differs_from_the_commitment_is_rejected(tmp_path: Path, count: int) -> None:
    """A negative, huge or merely different count cannot weigh an update: it is rejected, the model not moved."""
    strategy, observer = governed(tmp_path)
    out = sent(strategy, 1)
    replies = [update(out["de-berlin"], [1.0, 1.0], count=count), update(out["fr-lyon"], [2.0, 2.0])]
    arrays, _ = strategy.aggregate_train(1, replies)
    assert arrays is not None
    np.testing.assert_array_equal(arrays["w"].numpy(), [2.0, 2.0])
    assert observer.rejected == [(1, "de-berlin", "count-mismatch")]
    record_attack(f"absurd aggregation weight (num-examples {count})", "rejected (count-mismatch); model unmoved")


def test_a_non_finite_count_is_rejected(tmp_path: Path) -> None:
    """``num-examples`` of +inf or NaN is rejected as a malformed count, not an exception."""
    strategy, observer = governed(tmp_path)
    out = sent(strategy, 1)
    replies = [
        update(out["de-berlin"], [1.0, 1.0], count=float("inf")),
        update(out["fr-lyon"], [1.0, 1.0], count=float("nan")),
    ]
    assert strategy.aggregate_train(1, replies) == (None, None)
    assert observer.rejected == [(1, "de-berlin", "count-mismatch"), (1, "fr-lyon", "count-mismatch")]
    record_attack("non-finite aggregation weight (inf, NaN)", "rejected (count-mismatch)")


def test_an_unbound_node_cannot_contribute(tmp_path: Path) -> None:
    """A node that committed nothing before round 1 has every reply rejected."""
    strategy, observer = governed(tmp_path)
    strategy.bind({11: Commitment("de-berlin", 90)})
    out = sent(strategy, 1)
    arrays, _ = strategy.aggregate_train(1, [update(out["de-berlin"], [1.0, 1.0]), update(out["fr-lyon"], [5.0, 5.0])])
    assert arrays is not None
    np.testing.assert_array_equal(arrays["w"].numpy(), [1.0, 1.0])
    assert observer.rejected == [(1, "node-12", "site-identity")]
    record_attack("update from a node that committed nothing", "rejected (site-identity)")


def test_a_policy_refusal_counts_against_the_trial_not_the_refusing_site(tmp_path: Path) -> None:
    """An honest site refusing a forbidden request every round is never excluded; the trial is suspended."""
    strategy, observer = governed(tmp_path, Ladder(exclude_after_violations=1, suspend_after_violations=3))
    reason = "refused by site gb-leeds: purpose-redline: insurance-pricing is a redline"
    for server_round in (1, 2, 3):
        out = sent(strategy, server_round)
        assert "gb-leeds" in out, "the refusing site is never excluded"
        strategy.aggregate_train(server_round, [update(out["de-berlin"], [1.0, 1.0]), refusal(out["gb-leeds"], reason)])
    assert [(i.site_id, i.against, i.action) for i in observer.incidents] == [
        ("gb-leeds", "trial", "warn"),
        ("gb-leeds", "trial", "warn"),
        ("gb-leeds", "trial", "suspend"),
    ]
    assert strategy.enforcer is not None and strategy.enforcer.site_violations == {}
    record_attack("honest site refusing a forbidden request", "counted against the trial; site never excluded")


def test_a_forged_audit_head_cannot_overwrite_another_sites(tmp_path: Path) -> None:
    """An evaluation reply claiming another site is ignored: that site's audit head and metrics stay its own."""
    strategy, observer = governed(tmp_path)
    sent(strategy, 1)
    strategy.aggregate_train(1, [])
    messages = strategy.configure_evaluate(1, GLOBAL, ConfigRecord({}), Grid())  # type: ignore[arg-type]
    by_site = {NODES[m.metadata.dst_node_id]: m for m in messages}

    def evaluation(msg: Message, claims: str, accuracy: float, num_train: int) -> Message:
        metrics = {
            wire.NUM_EXAMPLES: 30,
            wire.NUM_TRAIN_EXAMPLES: num_train,
            wire.TEST_LOSS: 0.1,
            wire.TEST_ACCURACY: accuracy,
            wire.TEST_AUROC: 0.0,
            wire.TEST_AUROC_DEFINED: 0,
        }
        site = ConfigRecord({wire.SITE_ID: claims, wire.AUDIT_HASH: claims[0] * 64, wire.AUDIT_LENGTH: 9})
        content = RecordDict({wire.METRICS_RECORD: MetricRecord(metrics), wire.SITE_RECORD: site})
        return Message(content=content, reply_to=msg)

    strategy.aggregate_evaluate(
        1,
        [
            evaluation(by_site["de-berlin"], "de-berlin", 0.9, 90),
            evaluation(by_site["gb-leeds"], "de-berlin", 0.0, 90),
            evaluation(by_site["fr-lyon"], "fr-lyon", 0.8, 10**6),
        ],
    )
    (outcome,) = observer.outcomes
    assert set(outcome.sites) == {"de-berlin"}
    assert outcome.site_audit_heads == {"de-berlin": ("d" * 64, 9)}
    assert sorted(observer.rejected) == [(1, "fr-lyon", "count-mismatch"), (1, "gb-leeds", "site-identity")]
    record_attack("evaluation forging another site's audit head / counts", "ignored and rejected; heads kept")


def test_feature_query_binds_each_listed_site_to_one_node() -> None:
    """Before round 1 a reply naming an unlisted site, or a site another node named, is neither pooled nor bound."""
    grid = Grid(
        {
            11: {"site": "de-berlin", "count": 90},
            12: {"site": "de-berlin", "count": 5000},
            13: {"site": "us-boston", "count": 5000},
        }
    )
    scaling = pooled_feature_scaling(
        grid,  # type: ignore[arg-type]
        ConfigRecord({}),
        num_sites=3,
        num_features=2,
        site_ids=("de-berlin", "fr-lyon", "gb-leeds"),
        contract=DataContract.model_validate(
            {
                "features": [{"name": n, "kind": "numeric", "unit": "1", "range": [-1, 1]} for n in ("a", "b")],
                "target": {"column": "y", "threshold": 1},
            }
        ),
    )
    assert scaling.commitments == {11: Commitment("de-berlin", 90)}
    assert scaling.mean == [1.0, 1.0]
    record_attack("feature query: duplicate or unlisted site id", "not pooled, node not bound")


@pytest.mark.parametrize("params", [{"beta": 0.0}, {"beta": 0.5}, {"beta": -1.0}, {"min_train_nodes": 1}])
def test_robust_strategy_parameters_are_bounded(params: dict[str, float]) -> None:
    """A trimmed mean that trims nothing (or everything), or sampling overrides, are refused in the spec."""
    with pytest.raises(ValidationError):
        StrategySpec(name="FedTrimmedAvg", params=params)
    assert StrategySpec(name="FedTrimmedAvg", params={"beta": 0.2}).params == {"beta": 0.2}
    record_attack(f"robust strategy defeated by its parameters {params}", "refused in the spec (site and coordinator)")
