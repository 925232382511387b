"""A hostile coordinator against the real ClientApp: each attack is refused or neutralised, audited, and charges nothing it should not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flwr.app import Context, Message, RecordDict

from participants.site_data import load_site_data
from participants.site_guard import make_site_guard
from tests.adversary.hostile_coordinator import HostileCoordinator, assert_refused, global_arrays, record_attack
from tests.approved_demo import DemoCopy
from trialcore import wire


@pytest.fixture
def coordinator(approved_demo: DemoCopy, tmp_path: Path) -> HostileCoordinator:
    return HostileCoordinator(approved_demo, tmp_path / "run")


@pytest.mark.parametrize("message_type", ["train", "train.default", "evaluate.default", "query.default"])
def test_every_spelling_of_a_type_is_guarded(coordinator: HostileCoordinator, message_type: str) -> None:
    """A redline trial with 500 rounds is refused under every spelling Flower routes to a handler; nothing is charged."""
    document = coordinator.document(purpose="insurance-pricing", rounds=500)
    reply = coordinator.send("de-berlin", coordinator.message(document, message_type=message_type))
    assert_refused(reply, "purpose-redline", "max-rounds")
    assert coordinator.events("de-berlin", "refusal"), "the refusal is in the site's chain"
    assert coordinator.charges("de-berlin") == [], "nothing charged"
    assert not coordinator.events("de-berlin", "update-sent") and not coordinator.events("de-berlin", "evaluation-sent")
    record_attack(f"type spelling {message_type!r}, redline purpose", "refused by the guard, audited, no charge")


def test_unknown_message_type_is_refused_by_the_guard(coordinator: HostileCoordinator) -> None:
    """A type outside the allowlist (e.g. ``train.probe``) is refused by the guard itself, before any handler."""
    reached: list[str] = []

    def handler(m: Message, c: Context) -> Message:
        reached.append("handler")
        return Message(RecordDict(), reply_to=m)

    guard = make_site_guard({wire.RUN_DIR: str(coordinator.run_dir)})
    context = Context(
        run_id=1,
        node_id=5,
        node_config={wire.SITE_CONFIG: str(coordinator.demo.site_config("fr-lyon"))},
        state=RecordDict(),
        run_config={},
    )
    for message_type in ("train.probe", "system", "query.dump"):
        reply = guard(coordinator.message(message_type=message_type), context, handler)
        assert_refused(reply, wire.MESSAGE_TYPE_CLAUSE)
    assert reached == []
    assert len(coordinator.unverified_chain("fr-lyon")) == 3, "each refusal audited in the unverified chain"
    assert coordinator.chain("fr-lyon") == []
    # Through the real ClientApp, Flower routes an unregistered action nowhere: it raises, no handler runs.
    with pytest.raises(ValueError, match="No train function registered"):
        coordinator.send("fr-lyon", coordinator.message(message_type="train.probe"))
    assert coordinator.charges("fr-lyon") == []
    record_attack("unknown message type (train.probe, system)", "refused by the guard's allowlist, audited")


def test_unlisted_site_refuses(coordinator: HostileCoordinator) -> None:
    """A site the spec does not list refuses, judged by its own id and jurisdiction, even for a redline purpose."""
    document = coordinator.document(purpose="insurance-pricing")
    reply = coordinator.send("us-boston", coordinator.message(document))
    assert_refused(reply, wire.PARTICIPANTS_CLAUSE, "does not list site us-boston")
    assert [e["event"] for e in coordinator.chain("us-boston")] == ["refusal"]
    assert coordinator.charges("us-boston") == []
    record_attack("message to a site the spec does not list", "refused (participants), audited, no charge")


def test_site_listed_under_another_jurisdiction_refuses(coordinator: HostileCoordinator) -> None:
    """A spec listing a site under a jurisdiction that is not its own is refused by that site."""
    document = coordinator.document()
    for participant in document["participants"]:
        if participant["site_id"] == "gb-leeds":
            participant["jurisdiction"] = "DE"
    reply = coordinator.send("gb-leeds", coordinator.message(document))
    assert_refused(reply, wire.PARTICIPANTS_CLAUSE, "the site is in GB")
    assert coordinator.charges("gb-leeds") == []
    record_attack("site listed under a false jurisdiction", "refused (participants), audited")


def test_path_like_trial_id_names_no_folder(approved_demo: DemoCopy, tmp_path: Path) -> None:
    """A path-like ``trial-id`` key is ignored (the verified spec's id names the folder); one in the spec is refused."""
    stateful = approved_demo.sites_dir / "de-berlin-stateful.yaml"
    stateful.write_text(approved_demo.site_config("de-berlin").read_text() + "\nstate_dir: ../../site-state\n")
    coordinator = HostileCoordinator(approved_demo, tmp_path / "run")
    app_context_site = "de-berlin-stateful"
    loose = coordinator.message(config={wire.TRIAL_ID: "../../../../escaped"})
    reply = coordinator.send(app_context_site, loose)
    assert not reply.has_error(), reply.error.reason if reply.has_error() else ""
    state = approved_demo.root / "site-state"
    assert (state / "cancer-risk-demo" / "audit.jsonl").exists()
    assert not list(tmp_path.rglob("*escaped*")), "nothing named by the loose trial id"

    document = coordinator.document(trial_id="../../escaped")
    reply = coordinator.send(app_context_site, coordinator.message(document, server_round=2))
    assert_refused(reply, "invalid")
    unverified = state / "unverified-messages" / "audit.jsonl"
    assert unverified.exists() and "refusal" in unverified.read_text()
    assert not list(tmp_path.rglob("*escaped*"))
    collision = coordinator.document(trial_id="unverified-messages")
    assert_refused(coordinator.send(app_context_site, coordinator.message(collision)), "unverified messages")
    assert "cancer-risk" not in unverified.read_text().split("\n")[-2], "the collision is audited as unverified"
    assert sorted(p.name for p in state.iterdir()) == ["cancer-risk-demo", "privacy", "unverified-messages"]
    assert sorted(p.name for p in (state / "unverified-messages").iterdir()) == ["audit.jsonl"]
    record_attack("path-like trial id (loose key / in the spec)", "key ignored / spec refused; nothing outside state")


def test_repeated_evaluation_with_crafted_models_is_refused(coordinator: HostileCoordinator) -> None:
    """One evaluation per round: the second, third... with crafted models are refused and audited, none answered."""
    first = coordinator.send("ch-zurich", coordinator.message(message_type="evaluate", server_round=1))
    assert not first.has_error()
    for probe in range(1, 6):
        crafted = coordinator.message(message_type="evaluate", server_round=1, arrays=global_arrays(scale=probe))
        assert_refused(coordinator.send("ch-zurich", crafted), wire.QUESTION_BUDGET_CLAUSE)
    assert len(coordinator.events("ch-zurich", "evaluation-sent")) == 1
    refusals = coordinator.events("ch-zurich", "refusal")
    assert len(refusals) == 5 and all(wire.QUESTION_BUDGET_CLAUSE in e["payload"]["reason"] for e in refusals)
    record_attack("repeated evaluation with crafted models", "1 answer per round; 5 probes refused, audited")


def test_second_training_in_a_round_is_refused_and_not_charged(coordinator: HostileCoordinator) -> None:
    """A second training message in a round (another model: model-difference probing) is refused; one charge."""
    first = coordinator.send("de-berlin", coordinator.message(server_round=3))
    assert not first.has_error()
    probe = coordinator.message(server_round=3, arrays=global_arrays(scale=0.5))
    assert_refused(coordinator.send("de-berlin", probe), wire.QUESTION_BUDGET_CLAUSE)
    assert [c["round"] for c in coordinator.charges("de-berlin")] == [3]
    assert len(coordinator.events("de-berlin", "update-sent")) == 1
    record_attack("second training in a round (model-difference probe)", "refused, audited, charged once")


def test_replayed_training_gets_the_same_reply_and_no_second_charge(coordinator: HostileCoordinator) -> None:
    """The same training message again (a retry after a crash) gets the very same reply; the ledger charges once."""
    msg = coordinator.message(server_round=2)
    first = coordinator.send("fr-lyon", msg)
    again = coordinator.send("fr-lyon", coordinator.message(server_round=2))
    assert not first.has_error() and not again.has_error()
    for key, array in first.content.array_records[wire.ARRAYS_RECORD].items():
        assert np.array_equal(array.numpy(), again.content.array_records[wire.ARRAYS_RECORD][key].numpy())
    assert dict(first.content.metric_records[wire.METRICS_RECORD]) == dict(
        again.content.metric_records[wire.METRICS_RECORD]
    )
    assert len(coordinator.charges("fr-lyon")) == 1
    assert len(coordinator.events("fr-lyon", "question-repeated")) == 1
    record_attack("replayed training message", "same stored reply, audited, no second charge")


def test_feature_query_is_answered_once_per_trial(coordinator: HostileCoordinator) -> None:
    """The feature query is answered once per trial; another asking differently is refused; counts are rounded."""
    first = coordinator.send("gb-leeds", coordinator.message(message_type="query"))
    assert not first.has_error()
    count = first.content.metric_records[wire.METRICS_RECORD][wire.NUM_EXAMPLES]
    assert isinstance(count, int) and count % 10 == 0 and count > 0
    other = coordinator.message(message_type="query.default", config={wire.MIN_COHORT_SIZE: 50})
    assert_refused(coordinator.send("gb-leeds", other), wire.QUESTION_BUDGET_CLAUSE, "feature query")
    assert len(coordinator.events("gb-leeds", "feature-sums-sent")) == 1
    record_attack("feature query asked twice", "answered once per trial; repeat refused, audited")


def test_min_cohort_probing_is_limited_to_one_threshold_per_trial(coordinator: HostileCoordinator) -> None:
    """The minimum cohort a trial asks is pinned: asking another one later (to search for an exact count) is refused."""
    exact = load_site_data(coordinator.demo.site("gb-leeds")).num_train
    first = coordinator.send("gb-leeds", coordinator.message(message_type="query", config={wire.MIN_COHORT_SIZE: 11}))
    assert not first.has_error()
    for server_round, asked in ((1, exact), (2, exact + 1)):
        probe = coordinator.message(
            message_type="evaluate", server_round=server_round, config={wire.MIN_COHORT_SIZE: asked}
        )
        assert_refused(coordinator.send("gb-leeds", probe), "min-cohort", "differs")
    honest = coordinator.message(message_type="evaluate", server_round=3)
    assert not coordinator.send("gb-leeds", honest).has_error()
    refusals = coordinator.events("gb-leeds", "refusal")
    assert len(refusals) == 2 and all("min-cohort" in e["payload"]["reason"] for e in refusals)
    record_attack("min-cohort probing for the exact count", "threshold pinned per trial; other ones refused, audited")


def test_feature_scaling_is_pinned_per_trial(coordinator: HostileCoordinator) -> None:
    """A scaling that differs from the first one the site used in the trial, or is malformed, is refused."""
    assert not coordinator.send("fr-lyon", coordinator.message(message_type="evaluate", server_round=1)).has_error()
    shifted = coordinator.message(
        message_type="evaluate", server_round=2, config={wire.FEATURE_MEAN: [0.0] * 29 + [1000.0]}
    )
    assert_refused(coordinator.send("fr-lyon", shifted), "feature-scaling", "differs")
    degenerate = coordinator.message(server_round=4, config={wire.FEATURE_STD: [0.0] * 30})
    assert_refused(coordinator.send("fr-lyon", degenerate), "feature-scaling", "> 0")
    charged = [(c["release"], c["round"]) for c in coordinator.charges("fr-lyon")]
    assert charged == [("evaluation", 1)], "a refused scaling is refused before any charge"
    assert len(coordinator.events("fr-lyon", "evaluation-sent")) == 1
    record_attack("feature scaling varied or degenerate", "pinned per trial; refused, audited, no charge")


def test_round_outside_the_trial_is_refused(coordinator: HostileCoordinator) -> None:
    """Rounds 0 and 11 of a 10-round trial are refused (no way around the round budget by numbering)."""
    for server_round in (0, 11, -3):
        assert_refused(coordinator.send("gb-leeds", coordinator.message(server_round=server_round)), "max-rounds")
    assert coordinator.charges("gb-leeds") == []
    record_attack("rounds outside the trial (0, 11, -3)", "refused, audited, no charge")


def test_edit_to_a_country_layer_is_seen_at_the_next_message(coordinator: HostileCoordinator) -> None:
    """An edit to the site's country layer (not its own file) is seen at once, not hidden by a stale cache."""
    assert not coordinator.send("de-berlin", coordinator.message(message_type="evaluate")).has_error()
    country = coordinator.demo.examples / "policies" / "countries" / "de.yaml"
    country.write_text(country.read_text() + "\ntraining:\n  max_rounds: 5\n")
    reply = coordinator.send("de-berlin", coordinator.message(message_type="evaluate", server_round=2))
    assert_refused(reply, "de.yaml")
    record_attack("stale policy: edit to the country layer", "seen at the next message; refused")


def test_loose_values_cannot_steer_the_handler(coordinator: HostileCoordinator) -> None:
    """Loose keys for rounds, epochs or noise are ignored: only the verified spec and the site's policy decide."""
    extra = {"local-epochs": 50, "noise-multiplier": 0.001, "num-server-rounds": 1, "batch-size": 1}
    reply = coordinator.send("ch-zurich", coordinator.message(server_round=1, config=extra))
    assert not reply.has_error()
    (charge,) = coordinator.charges("ch-zurich")
    spec = coordinator.document()
    assert charge["noise_multiplier"] >= spec["privacy"]["noise_multiplier"]
    (sent,) = coordinator.events("ch-zurich", "update-sent")
    assert sent["payload"]["local_epochs"] == spec["local_training"]["epochs"]
    record_attack("loose config keys (epochs, noise, batch size)", "ignored; spec and site policy decide")


def test_no_metric_of_the_train_part_leaves_the_site(coordinator: HostileCoordinator) -> None:
    """Evaluation and training replies carry no accuracy or loss measured on the train part; counts are rounded."""
    evaluation = coordinator.send("gb-leeds", coordinator.message(message_type="evaluate", server_round=1))
    training = coordinator.send("gb-leeds", coordinator.message(server_round=1))
    released = {
        **dict(evaluation.content.metric_records[wire.METRICS_RECORD]),
        **{f"train/{k}": v for k, v in training.content.metric_records[wire.METRICS_RECORD].items()},
    }
    assert not [key for key in released if "train-loss" in key or "train-accuracy" in key], released
    assert released[wire.NUM_TRAIN_EXAMPLES] == released[f"train/{wire.NUM_EXAMPLES}"] == 110
    assert set(dict(evaluation.content.metric_records[wire.METRICS_RECORD])) == {
        wire.NUM_EXAMPLES,
        wire.NUM_TRAIN_EXAMPLES,
        wire.TEST_LOSS,
        wire.TEST_ACCURACY,
        wire.TEST_AUROC,
        wire.TEST_AUROC_DEFINED,
        wire.EPSILON_SPENT,
        wire.EPSILON_BUDGET,
        wire.TRIAL_EPSILON,
        wire.TRIAL_EPSILON_BUDGET,
        wire.PRIVACY_DELTA,
        *wire.TRIAL_EPSILON_BY_RELEASE.values(),
    }
    record_attack("reading train-part accuracy and loss each round", "not released; counts rounded to 10")


def test_spec_swapped_under_a_verified_hash_is_refused(coordinator: HostileCoordinator) -> None:
    """Once a spec is verified (and cached by its hash), another spec sent under that same hash is refused, and a
    spec under a new hash is judged in full: the cache never stands in for checking a message."""
    approved = coordinator.message(server_round=1)
    approved_hash = approved.content.config_records[wire.CONFIG_RECORD][wire.SPEC_HASH]
    assert not coordinator.send("de-berlin", approved).has_error()
    swapped = coordinator.document(purpose="insurance-pricing", rounds=500)
    reply = coordinator.send("de-berlin", coordinator.message(swapped, server_round=2, spec_hash=str(approved_hash)))
    assert_refused(reply, "does not match the spec hash it names")
    assert coordinator.unverified_chain("de-berlin"), "the swap is audited in the chain of unverified messages"
    redline = coordinator.send("de-berlin", coordinator.message(swapped, server_round=2))
    assert_refused(redline, "purpose-redline", "max-rounds")
    assert [e["payload"]["round"] for e in coordinator.events("de-berlin", "update-sent")] == [1]
    assert len(coordinator.charges("de-berlin")) == 1, "only the approved round is charged"
    record_attack("spec swapped under an already verified hash", "refused (hash mismatch), audited, no charge")
