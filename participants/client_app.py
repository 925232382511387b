"""The Flower ClientApp each participant runs: train and evaluate on the site's own records.

The site learns who it is from its own node config (see :mod:`participants.node_identity`), loads
only its own data, and replies with model parameters and aggregate metrics, never with records.
A site that cannot take part (bad config, unreadable data) replies with a Flower error and a
reason instead of raising, so the coordinator counts the refusal and goes on.

The train handler lives here; the feature query and evaluation are in
:mod:`participants.query_handler` and :mod:`participants.evaluate_handler`, and what every
handler shares (the turn, standardisation, the ledger) in :mod:`participants.site_turn` and
:mod:`participants.site_privacy`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from participants.evaluate_handler import evaluate_handler
from participants.portable_app import PortableClientApp
from participants.privacy_ledger import Charge
from participants.privacy_plan import planned_charge, round_mechanism
from participants.query_handler import query_handler
from participants.record_values import as_int
from participants.released_values import released_count
from participants.site_floor import DpSettings, site_floor
from participants.site_guard import make_site_guard
from participants.site_privacy import charged, privacy_metrics
from participants.site_replies import Handler, answered
from participants.site_turn import SiteTurn, model_from_message, open_train_part_turn, standardised
from participants.training import TrainSettings, train_locally
from policies import ComposedPolicy
from trialcore import wire
from trialcore.spec import TrialSpec

__all__ = ["app", "evaluate_handler", "make_client_app", "query_handler", "rebuild_client_app", "train_handler"]

logger = logging.getLogger(__name__)


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
    turn = open_train_part_turn(msg, context, overrides)
    if isinstance(turn, Message):
        return turn
    data = standardised(msg, turn)
    if isinstance(data, Message):
        return data
    model = model_from_message(msg, turn, data)
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
        paid = _charge_round(msg, turn, data.num_train, server_round, epochs, dp)
        if isinstance(paid, Message):
            return paid
        charge = paid
    trained = train_locally(model, data.x_train, data.y_train, settings, dp=dp)
    if charge is not None and trained.steps != charge.steps:
        raise RuntimeError(f"DP-SGD ran {trained.steps} steps but the ledger charged {charge.steps}")
    metrics = MetricRecord(
        {
            wire.NUM_EXAMPLES: released_count(data.num_train, turn.count_granularity),
            **({} if charge is None else privacy_metrics(turn, charge)),
        }
    )
    site_record = turn.record(
        "update-sent",
        {
            "round": server_round,
            "num_examples": released_count(data.num_train, turn.count_granularity),
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
    msg: Message, turn: SiteTurn, num_train: int, server_round: int, epochs: int, dp: DpSettings
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
    return charged(msg, turn, planned)


def make_client_app(
    overrides: Mapping[str, object] | None = None, *, train: Handler = train_handler, query: Handler | None = None
) -> ClientApp:
    """A ClientApp whose run settings (e.g. ``federation-dir``) may be fixed in advance.

    ``train`` (and ``query``) replace the train (and feature query) handler (tests use them to simulate a misbehaving site behind the
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
        "participants.client_app:rebuild_client_app", (fixed, train, query), mods=[make_site_guard(fixed)]
    )

    @client_app.train()
    def _train(msg: Message, context: Context) -> Message:
        return answered(train, msg, context, fixed)

    @client_app.evaluate()
    def _evaluate(msg: Message, context: Context) -> Message:
        return answered(evaluate_handler, msg, context, fixed)

    @client_app.query()
    def _query(msg: Message, context: Context) -> Message:
        return answered(query or query_handler, msg, context, fixed)

    return client_app


def rebuild_client_app(overrides: Mapping[str, object], train: Handler, query: Handler | None = None) -> ClientApp:
    """What an app made by :func:`make_client_app` unpickles as in a simulation worker."""
    return make_client_app(overrides, train=train, query=query)


app = make_client_app()
"""The ClientApp ``flwr run`` and SuperNodes load (``participants.client_app:app``)."""
