"""The Flower ClientApp each participant runs: train and evaluate on the site's own records.

The site learns who it is from its own node config (see :mod:`participants.node_identity`), loads
only its own data, and replies with model parameters and aggregate metrics, never with records.
A site that cannot take part (bad config, unreadable data) replies with a Flower error and a
reason instead of raising, so the coordinator counts the refusal and goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from torch import nn

from participants.model import build_model
from participants.node_identity import resolve_site
from participants.portable_app import PortableClientApp
from participants.privacy_ledger import Charge, PrivacyLedger
from participants.privacy_plan import ledger_path, planned_charge, round_mechanism
from participants.record_values import as_floats, as_int, as_str
from participants.released_values import ScalingRefused, pinned_min_cohort, pinned_scaling, released_count
from participants.site_audit import append_site_entry, site_state_dir
from participants.site_config import LoadedSiteConfig
from participants.site_data import SiteData, load_site_data
from participants.site_floor import DpSettings, site_floor
from participants.site_guard import Refused, make_site_guard, site_policy, verified_spec
from participants.site_replies import Handler, answered, internal_error, refusal
from participants.training import TrainSettings, evaluate, train_locally
from policies import ComposedPolicy
from trialcore import wire
from trialcore.errors import BudgetExhausted, SandboxError
from trialcore.spec import TrialSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _SiteTurn:
    """One message handled at this site: who the site is, its data, the verified trial spec, its own policy."""

    site: LoadedSiteConfig
    data: SiteData
    config: ConfigRecord
    spec: TrialSpec
    policy: ComposedPolicy
    run_id: int
    settings: Mapping[str, object]

    @property
    def spec_hash(self) -> str:
        """The hash of the verified spec (the guard checked the spec against it)."""
        return as_str(self.config, wire.SPEC_HASH)

    @property
    def folder(self) -> Path:
        """The site's own folder for this trial (named by the verified spec's trial id)."""
        return site_state_dir(self.site, trial_id=self.spec.trial_id, run_id=self.run_id, settings=self.settings)

    def record(self, event: str, payload: dict[str, Any]) -> ConfigRecord:
        """Append ``event`` to the site's own chain first; return the reply's site record."""
        return append_site_entry(
            self.site,
            self.config,
            trial_id=self.spec.trial_id,
            spec_hash=self.spec_hash,
            run_id=self.run_id,
            settings=self.settings,
            event=event,
            payload=payload,
        )

    @property
    def min_cohort_size(self) -> int:
        """The larger of the site's own minimum cohort and the one the message asks for."""
        asked = self.config.get(wire.MIN_COHORT_SIZE)
        return max(self.policy.min_cohort_size, asked if isinstance(asked, int) else 0)

    def below_cohort(self, count: int) -> bool:
        """True if ``count`` records are fewer than the minimum cohort (the asked one is pinned per trial)."""
        return count < self.min_cohort_size

    def small_cell_refusal(self, msg: Message, count: int, what: str) -> Message | None:
        """An error reply (audited) if a statistic would describe fewer records than the minimum cohort."""
        if not self.below_cohort(count):
            return None
        reason = f"{wire.SMALL_CELL_PREFIX} {what} holds fewer records than the minimum cohort of {self.min_cohort_size}; nothing released"
        self.record("statistics-withheld", {"what": what, "min_cohort_size": self.min_cohort_size})
        return refusal(msg, reason)


def _open_turn(msg: Message, context: Context, overrides: Mapping[str, object]) -> _SiteTurn | Message:
    """Load this node's site, data, the spec the guard verified and the site's policy, or an error reply.

    A site that cannot read its node config, its data or its policy files, or whose data does not
    fit the trial's model, replies with a site-internal error; a spec it cannot verify or a missing
    policy is a refusal.
    """
    settings: dict[str, object] = {**context.run_config, **overrides}
    config = msg.content.config_records[wire.CONFIG_RECORD]
    try:
        site = resolve_site(context.node_config, settings)
    except SandboxError as err:
        return _cannot_take_part(msg, None, "; ".join(err.lines()))
    try:
        data = load_site_data(site)
        spec = verified_spec(config)
        policy = site_policy(site)
    except SandboxError as err:
        return _cannot_take_part(msg, site.config.site_id, "; ".join(err.lines()))
    except Refused as err:
        logger.warning("site %s cannot take part: %s", site.config.site_id, err)
        return refusal(msg, str(err))
    if data.num_features != spec.model.input_features:
        cause = (
            f"its data has {data.num_features} features but the trial's model takes "
            f"{spec.model.input_features} (model.input_features)"
        )
        return _cannot_take_part(msg, site.config.site_id, cause)
    turn = _SiteTurn(
        site=site, data=data, config=config, spec=spec, policy=policy, run_id=context.run_id, settings=settings
    )
    asked = config.get(wire.MIN_COHORT_SIZE)
    try:
        pinned_min_cohort(turn.folder, asked if isinstance(asked, int) and not isinstance(asked, bool) else 0)
    except ScalingRefused as err:
        reason = f"{wire.GUARD_REFUSAL_PREFIX} {site.config.site_id}: min-cohort: {err}"
        turn.record("refusal", {"reason": reason})
        return refusal(msg, reason)
    return turn


def _cannot_take_part(msg: Message, site_id: str | None, cause: str) -> Message:
    logger.error("site %s cannot take part: %s", site_id or "(unnamed)", cause)
    return internal_error(msg, site_id, cause)


def _open_train_part_turn(msg: Message, context: Context, overrides: Mapping[str, object]) -> _SiteTurn | Message:
    """:func:`_open_turn` for a message about the train part: refused if that part is a small cell."""
    turn = _open_turn(msg, context, overrides)
    if isinstance(turn, Message):
        return turn
    return turn.small_cell_refusal(msg, turn.data.num_train, "the train part") or turn


def _standardised(msg: Message, turn: _SiteTurn) -> SiteData | Message:
    """The site's data scaled by the message's feature scaling, once it is checked and pinned; else a refusal."""
    mean, std = as_floats(turn.config, wire.FEATURE_MEAN), as_floats(turn.config, wire.FEATURE_STD)
    try:
        pinned_scaling(turn.folder, mean, std, num_features=turn.data.num_features)
    except ScalingRefused as err:
        reason = f"{wire.GUARD_REFUSAL_PREFIX} {turn.site.config.site_id}: feature-scaling: {err}"
        turn.record("refusal", {"reason": reason})
        return refusal(msg, reason)
    return turn.data.standardised(mean, std)


def _model_from_message(msg: Message, turn: _SiteTurn, data: SiteData) -> nn.Module:
    model = build_model(turn.spec.model.name, num_features=data.num_features, hidden_units=turn.spec.model.hidden_units)
    model.load_state_dict(msg.content.array_records[wire.ARRAYS_RECORD].to_torch_state_dict())
    return model


Floor = Callable[[TrialSpec, ComposedPolicy], "tuple[int, DpSettings | None]"]
"""How a site derives its local epochs and DP-SGD settings from the spec and its policy."""


def train_handler(
    msg: Message, context: Context, overrides: Mapping[str, object], *, floor: Floor = site_floor
) -> Message:
    """Train the received global model on the site's train part, under the site's own floor.

    With DP-SGD the round is charged to the site's privacy ledger first (durably): a round whose
    epsilon would pass the site's or the trial's budget is refused, and no update leaves.
    ``floor`` is :func:`~participants.site_floor.site_floor`; only ``make bench``'s no-DP
    baseline replaces it.
    """
    turn = _open_train_part_turn(msg, context, overrides)
    if isinstance(turn, Message):
        return turn
    data = _standardised(msg, turn)
    if isinstance(data, Message):
        return data
    model = _model_from_message(msg, turn, data)
    server_round = as_int(turn.config, wire.SERVER_ROUND)
    partition = context.node_config.get(wire.PARTITION_ID, 0)
    epochs, dp = floor(turn.spec, turn.policy)
    settings = TrainSettings(
        epochs=epochs,
        batch_size=turn.spec.local_training.batch_size,
        learning_rate=turn.spec.local_training.learning_rate,
        seed=turn.spec.seed * 1_000_003 + server_round * 101 + (partition if isinstance(partition, int) else 0),
        secret_dp_randomness=not turn.site.config.simulated,
    )
    charge: Charge | None = None
    if dp is not None:
        charged = _charge_round(msg, turn, context, data.num_train, server_round, epochs, dp)
        if isinstance(charged, Message):
            return charged
        charge = charged
    trained = train_locally(model, data.x_train, data.y_train, settings, dp=dp)
    if charge is not None and trained.steps != charge.steps:
        raise RuntimeError(f"DP-SGD ran {trained.steps} steps but the ledger charged {charge.steps}")
    metrics = MetricRecord(
        {
            wire.NUM_EXAMPLES: released_count(data.num_train),
            **_privacy_metrics(charge),
        }
    )
    site_record = turn.record(
        "update-sent",
        {
            "round": server_round,
            "num_examples": released_count(data.num_train),
            "train_loss": trained.mean_loss,
            "local_epochs": epochs,
            "dp_sgd": None
            if dp is None or charge is None
            else {
                "noise_multiplier": dp.noise_multiplier,
                "max_grad_norm": dp.max_grad_norm,
                "sample_rate": charge.sample_rate,
                "steps": charge.steps,
                "accountant": charge.accountant.value,
                "delta": charge.delta,
                "trial_epsilon": charge.trial_epsilon,
                "cumulative_epsilon": charge.cumulative_epsilon,
                "epsilon_budget": charge.epsilon_budget,
                "ledger_seq": charge.seq,
                "ledger_hash": charge.hash,
            },
        },
    )
    content = RecordDict(
        {
            wire.ARRAYS_RECORD: ArrayRecord(model.state_dict()),
            wire.METRICS_RECORD: metrics,
            wire.SITE_RECORD: site_record,
        }
    )
    return Message(content=content, reply_to=msg)


def _charge_round(
    msg: Message, turn: _SiteTurn, context: Context, num_train: int, server_round: int, epochs: int, dp: DpSettings
) -> Charge | Message:
    """Charge this round to the site's ledger (durably), or the audited refusal if a budget would be passed."""
    mechanism = round_mechanism(num_train, epochs=epochs, batch_size=turn.spec.local_training.batch_size, dp=dp)
    planned = planned_charge(
        turn.site,
        turn.spec,
        turn.policy,
        spec_hash=turn.spec_hash,
        server_round=server_round,
        mechanism=mechanism,
    )
    ledger = PrivacyLedger(
        ledger_path(turn.site, trial_id=turn.spec.trial_id, run_id=turn.run_id, settings=turn.settings)
    )
    try:
        return ledger.charge(planned)
    except BudgetExhausted as err:
        reason = f"{wire.BUDGET_EXHAUSTED_PREFIX} site {turn.site.config.site_id}: " + "; ".join(
            p.allowed for p in err.problems
        )
        turn.record(
            "privacy-budget-exhausted",
            {"round": server_round, "reason": reason, "ledger_charges": len(ledger.charges())},
        )
        logger.warning("%s", reason)
        return refusal(msg, reason)
    except (SandboxError, OSError) as err:  # a damaged or unwritable ledger, or settings no accountant prices
        detail = "; ".join(err.lines()) if isinstance(err, SandboxError) else f"{ledger.path}: {err}"
        reason = (
            f"{wire.LEDGER_ERROR_PREFIX} site {turn.site.config.site_id} cannot charge its privacy ledger: {detail}"
        )
        turn.record("privacy-ledger-error", {"round": server_round, "reason": reason})
        logger.error("%s", reason)
        return refusal(msg, reason)


def _privacy_metrics(charge: Charge | None) -> dict[str, float]:
    """The ledger's figures after this round's charge, for the coordinator to publish (none without DP)."""
    if charge is None:
        return {}
    return {
        wire.EPSILON_SPENT: charge.cumulative_epsilon,
        wire.EPSILON_BUDGET: charge.epsilon_budget,
        wire.TRIAL_EPSILON: charge.trial_epsilon,
        wire.TRIAL_EPSILON_BUDGET: charge.trial_epsilon_budget,
        wire.PRIVACY_DELTA: charge.delta,
    }


def evaluate_handler(msg: Message, context: Context, overrides: Mapping[str, object]) -> Message:
    """Evaluate the received global model on the site's test part (aggregates only).

    Nothing measured on the train part leaves the site (its accuracy and loss would describe the
    very records the model was trained on); only its rounded count, which the site committed
    before round 1, is repeated.
    """
    turn = _open_turn(msg, context, overrides)
    if isinstance(turn, Message):
        return turn
    withheld = turn.small_cell_refusal(msg, min(turn.data.num_test, turn.data.num_train), "the test or train part")
    if withheld is not None:
        return withheld
    data = _standardised(msg, turn)
    if isinstance(data, Message):
        return data
    model = _model_from_message(msg, turn, data)
    on_test = evaluate(model, data.x_test, data.y_test)
    # AUROC describes each class separately: release it only if every class cell reaches the minimum cohort.
    smallest_class = int(min(data.y_test.sum(), data.y_test.size - data.y_test.sum()))
    auroc = on_test.auroc if not turn.below_cohort(smallest_class) else None
    metrics = MetricRecord(
        {
            wire.NUM_EXAMPLES: released_count(on_test.num_examples),
            wire.NUM_TRAIN_EXAMPLES: released_count(data.num_train),
            wire.TEST_LOSS: on_test.loss,
            wire.TEST_ACCURACY: on_test.accuracy,
            wire.TEST_AUROC: auroc if auroc is not None else 0.0,
            wire.TEST_AUROC_DEFINED: 1 if auroc is not None else 0,
        }
    )
    site_record = turn.record(
        "evaluation-sent", {"round": as_int(turn.config, wire.SERVER_ROUND), "metrics": dict(metrics)}
    )
    return Message(content=RecordDict({wire.METRICS_RECORD: metrics, wire.SITE_RECORD: site_record}), reply_to=msg)


def query_handler(msg: Message, context: Context, overrides: Mapping[str, object]) -> Message:
    """Reply with the train part's feature sums and count, for federation-wide standardisation.

    Only sums over the whole train part leave the site, and only if it holds at least the
    minimum cohort the message names.
    """
    turn = _open_train_part_turn(msg, context, overrides)
    if isinstance(turn, Message):
        return turn
    exact, sums, squares = turn.data.feature_sums()
    count = released_count(exact)
    # Scaled to the released count, so that pooled sums over pooled counts give the mean of the site means.
    sums, squares = [v * count / exact for v in sums], [v * count / exact for v in squares]
    site_record = turn.record("feature-sums-sent", {"num_examples": count, "num_features": len(sums)})
    metrics = MetricRecord({wire.NUM_EXAMPLES: count, wire.FEATURE_SUM: sums, wire.FEATURE_SUM_SQUARES: squares})
    return Message(content=RecordDict({wire.METRICS_RECORD: metrics, wire.SITE_RECORD: site_record}), reply_to=msg)


def make_client_app(overrides: Mapping[str, object] | None = None, *, train: Handler = train_handler) -> ClientApp:
    """A ClientApp whose run settings (e.g. ``federation-dir``) may be fixed in advance.

    ``train`` replaces the train handler (tests use it to simulate a misbehaving site behind the
    same guard). A handler that raises is answered with a site-internal error naming the
    exception's type only; its traceback stays in the site's own log.

    ``flwr.simulation.run_simulation`` passes no run config, so ``sandbox run`` bakes the few
    paths the simulated sites need into the app; the app object travels to every simulated site,
    so it carries only these paths, never data. It travels as a
    :class:`~participants.portable_app.PortableClientApp`, rebuilt by :func:`rebuild_client_app`
    from this project's own files whatever folder the run started from.
    """
    fixed = dict(overrides or {})
    client_app = PortableClientApp(
        "participants.client_app:rebuild_client_app", (fixed, train), mods=[make_site_guard(fixed)]
    )

    @client_app.train()
    def _train(msg: Message, context: Context) -> Message:
        return answered(train, msg, context, fixed)

    @client_app.evaluate()
    def _evaluate(msg: Message, context: Context) -> Message:
        return answered(evaluate_handler, msg, context, fixed)

    @client_app.query()
    def _query(msg: Message, context: Context) -> Message:
        return answered(query_handler, msg, context, fixed)

    return client_app


def rebuild_client_app(overrides: Mapping[str, object], train: Handler) -> ClientApp:
    """What an app made by :func:`make_client_app` unpickles as in a simulation worker."""
    return make_client_app(overrides, train=train)


app = make_client_app()
"""The ClientApp ``flwr run`` and SuperNodes load (``participants.client_app:app``)."""
