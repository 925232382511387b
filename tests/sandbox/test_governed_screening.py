"""The governed strategy screens updates before FedAvg sees them, and skips a round left too thin."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, MetricRecord, RecordDict
from flwr.common.constant import ErrorCode
from flwr.serverapp.strategy import FedAvg
from flwr.supercore.task_identity import TaskIdentity

from sandbox.enforcement import Enforcer, Ladder
from sandbox.governed_strategy import GovernedStrategy
from sandbox.round_outcome import RoundOutcome
from sandbox.site_failures import SITE_UNREACHABLE, TrialFailed
from trialcore import wire

NODES = {11: "de-berlin", 12: "fr-lyon", 13: "gb-leeds"}
GLOBAL = ArrayRecord({"w": Array(np.zeros(2, dtype=np.float32))})


@dataclass
class Observer:
    rejected: list[tuple[int, str, str]] = field(default_factory=list)
    skipped: list[tuple[int, int, int]] = field(default_factory=list)

    def round_started(self, server_round: int) -> str:
        return "0" * 64

    def update_rejected(self, server_round: int, site_id: str, reason: str, detail: str) -> None:
        self.rejected.append((server_round, site_id, reason))

    def round_skipped(self, server_round: int, *, accepted: int, required: int) -> None:
        self.skipped.append((server_round, accepted, required))

    def round_finished(self, outcome: RoundOutcome) -> None: ...


class Grid:
    def get_node_ids(self) -> list[int]:
        return list(NODES)


@pytest.fixture(autouse=True)
def task_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flower messages need the task's identity, which the ServerApp process normally sets."""
    for name in ("_run_id", "_node_id", "_task_id"):
        monkeypatch.setattr(TaskIdentity, name, 1)


def update(msg: Message, values: list[float]) -> Message:
    content = RecordDict(
        {
            "arrays": ArrayRecord({"w": Array(np.array(values, dtype=np.float32))}),
            "metrics": MetricRecord({"num-examples": 10}),
            wire.SITE_RECORD: ConfigRecord({"site-id": NODES[msg.metadata.dst_node_id]}),
        }
    )
    return Message(content=content, reply_to=msg)


def refusal(msg: Message) -> Message:
    return Message(Error(code=ErrorCode.MOD_FAILED_PRECONDITION, reason="no consent"), reply_to=msg)


def sent(strategy: GovernedStrategy, server_round: int) -> dict[str, Message]:
    messages = strategy.configure_train(server_round, GLOBAL, ConfigRecord({}), Grid())  # type: ignore[arg-type]
    return {NODES[m.metadata.dst_node_id]: m for m in messages}


def governed(min_participants: int) -> tuple[GovernedStrategy, Observer]:
    observer = Observer()
    inner = FedAvg(min_train_nodes=3, min_available_nodes=3)
    return GovernedStrategy(
        inner, observer=observer, max_update_l2_norm=10.0, min_participants=min_participants
    ), observer


def test_rejected_updates_never_reach_the_average() -> None:
    """FedAvg averages only accepted updates; each rejection and refusal is reported with its reason."""
    strategy, observer = governed(min_participants=1)
    out = sent(strategy, 1)
    replies = [
        update(out["de-berlin"], [1.0, 1.0]),
        update(out["fr-lyon"], [float("nan"), 0.0]),
        refusal(out["gb-leeds"]),
    ]
    arrays, _ = strategy.aggregate_train(1, replies)
    assert arrays is not None
    np.testing.assert_array_equal(arrays["w"].numpy(), [1.0, 1.0])
    assert observer.rejected == [(1, "fr-lyon", "non-finite"), (1, "node-13", "site-refused")]
    assert observer.skipped == []


def test_a_refusal_is_attributed_to_the_site_its_node_named_before() -> None:
    """An error reply names no site; a node that replied as gb-leeds before is counted as gb-leeds."""
    strategy, observer = governed(min_participants=1)
    out = sent(strategy, 1)
    strategy.aggregate_train(1, [update(out[site], [0.5, 0.5]) for site in NODES.values()])
    out = sent(strategy, 2)
    strategy.aggregate_train(2, [update(out["de-berlin"], [0.5, 0.5]), refusal(out["gb-leeds"])])
    assert observer.rejected == [(2, "gb-leeds", "site-refused")]


def test_too_few_accepted_updates_skip_the_round() -> None:
    """With fewer accepted updates than min_participants the round keeps the previous model and is reported."""
    strategy, observer = governed(min_participants=3)
    out = sent(strategy, 1)
    replies = [
        update(out["de-berlin"], [1.0, 1.0]),
        update(out["fr-lyon"], [1.0, 1.0]),
        update(out["gb-leeds"], [1e6, 0.0]),
    ]
    assert strategy.aggregate_train(1, replies) == (None, None)
    assert observer.rejected == [(1, "gb-leeds", "norm-too-large")]
    assert observer.skipped == [(1, 2, 3)]


def test_excluded_site_is_sent_nothing_for_the_policys_rounds(tmp_path: Path) -> None:
    """After its violations reach the exclusion threshold, a site gets no train message for the next rounds, then is asked again."""

    @dataclass
    class Recording(Observer):
        incidents: list[str] = field(default_factory=list)

        def incident_recorded(self, incident: object) -> None:
            self.incidents.append(incident.action)

    observer = Recording()
    enforcer = Enforcer(tmp_path, Ladder(exclude_after_violations=1, exclusion_rounds=2))
    strategy = GovernedStrategy(
        FedAvg(min_train_nodes=3, min_available_nodes=3),
        observer=observer,
        max_update_l2_norm=10.0,
        min_participants=1,
        enforcer=enforcer,
    )
    out = sent(strategy, 1)
    strategy.aggregate_train(
        1,
        [
            update(out["de-berlin"], [1.0, 1.0]),
            update(out["fr-lyon"], [1.0, 1.0]),
            update(out["gb-leeds"], [float("inf"), 0.0]),
        ],
    )
    assert observer.incidents == ["exclude"]
    assert set(sent(strategy, 2)) == set(sent(strategy, 3)) == {"de-berlin", "fr-lyon"}
    assert set(sent(strategy, 4)) == {"de-berlin", "fr-lyon", "gb-leeds"}


@dataclass
class _Noting(Observer):
    def incident_recorded(self, incident: object) -> None: ...


def test_an_excluded_sites_warning_prints_once_per_round(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 18: an excluded site's warning printed twice (training and evaluation); it prints once per round."""
    enforcer = Enforcer(tmp_path, Ladder(exclude_after_violations=1, exclusion_rounds=1))
    strategy = GovernedStrategy(
        FedAvg(min_train_nodes=2, min_available_nodes=2, min_evaluate_nodes=2),
        observer=_Noting(),
        max_update_l2_norm=10.0,
        min_participants=1,
        enforcer=enforcer,
    )
    out = sent(strategy, 1)
    strategy.aggregate_train(
        1, [update(out[site], [float("nan"), 0.0] if site == "gb-leeds" else [1.0, 1.0]) for site in out]
    )
    caplog.clear()
    with caplog.at_level("WARNING", logger="sandbox.governed_strategy"):
        assert set(sent(strategy, 2)) == {"de-berlin", "fr-lyon"}
        evaluated = strategy.configure_evaluate(2, GLOBAL, ConfigRecord({}), Grid())  # type: ignore[arg-type]
    assert {NODES[m.metadata.dst_node_id] for m in evaluated} == {"de-berlin", "fr-lyon"}
    told = [r.getMessage() for r in caplog.records if "excluded" in r.getMessage()]
    assert told == ["round 2: gb-leeds is excluded and is sent nothing"]


@pytest.mark.parametrize("phase", ["train", "evaluate"])
def test_a_site_that_never_answers_a_round_fails_the_trial_as_unreachable(phase: str) -> None:
    """A site sent a round's message that gave no reply within the round-reply bound ends the trial (exit 6)."""
    strategy = GovernedStrategy(
        FedAvg(min_train_nodes=3, min_available_nodes=3, min_evaluate_nodes=3),
        observer=Observer(),
        min_participants=1,
        round_reply_seconds=5.0,
    )
    strategy.name_nodes(NODES)
    out = sent(strategy, 1)
    if phase == "evaluate":
        strategy.aggregate_train(1, [update(out[site], [1.0, 1.0]) for site in NODES.values()])
        out = {
            NODES[m.metadata.dst_node_id]: m
            for m in strategy.configure_evaluate(1, GLOBAL, ConfigRecord({}), Grid())  # type: ignore[arg-type]
        }
        with pytest.raises(TrialFailed) as caught:
            strategy.aggregate_evaluate(1, [])
    else:
        with pytest.raises(TrialFailed) as caught:
            strategy.aggregate_train(1, [update(out["de-berlin"], [1.0, 1.0]), update(out["fr-lyon"], [1.0, 1.0])])
    assert caught.value.kind == SITE_UNREACHABLE
    expected = "gb-leeds" if phase == "train" else None
    named = [(f.site_id, f.phase, f.server_round, f.cause) for f in caught.value.failures]
    if expected is not None:
        assert named == [("gb-leeds", "train", 1, "no answer within the round-reply bound of 5 s")]
    else:
        assert {n[0] for n in named} == set(NODES.values()) and {n[1] for n in named} == {"evaluate"}
