"""The Flower ClientApp each participant runs: train and evaluate on the site's own records.

The site learns who it is from its own node config (see :mod:`participants.node_identity`), loads
only its own data, and replies with model parameters and aggregate metrics, never with records.
A site that cannot take part (bad config, unreadable data) replies with a Flower error and a
reason instead of raising, so the coordinator counts the refusal and goes on.
"""

from __future__ import annotations

import logging
from typing import Callable, Mapping

from flwr.app import ArrayRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import ErrorCode
from torch import nn

from participants.model import build_model
from participants.node_identity import resolve_site
from participants.record_values import as_float, as_floats, as_int, as_str
from participants.site_audit import append_site_entry
from participants.site_data import SiteData, load_site_data
from participants.training import TrainSettings, evaluate, train_locally
from policies.errors import SandboxError

logger = logging.getLogger(__name__)

SITE_RECORD_KEY = "site"
"""Key of the ConfigRecord in every reply naming the site (id, jurisdiction)."""

Handler = Callable[[Message, Context], Message]


def _settings(context: Context, overrides: Mapping[str, object]) -> dict[str, object]:
    merged: dict[str, object] = dict(context.run_config)
    merged.update(overrides)
    return merged


def _prepared_data(msg: Message, data: SiteData) -> SiteData:
    config = msg.content.config_records["config"]
    return data.standardised(as_floats(config, "feature-mean"), as_floats(config, "feature-std"))


def _model_from_message(msg: Message, data: SiteData) -> nn.Module:
    config = msg.content.config_records["config"]
    model = build_model(
        as_str(config, "model-name"), num_features=data.num_features, hidden_units=as_int(config, "hidden-units")
    )
    model.load_state_dict(msg.content.array_records["arrays"].to_torch_state_dict())
    return model


def _refuse(msg: Message, reason: str) -> Message:
    return Message(Error(code=ErrorCode.MOD_FAILED_PRECONDITION, reason=reason), reply_to=msg)


def train_handler(msg: Message, context: Context, overrides: Mapping[str, object]) -> Message:
    """Train the received global model for the asked local epochs on the site's train part."""
    try:
        site = resolve_site(context.node_config, _settings(context, overrides))
        data = load_site_data(site)
    except SandboxError as err:
        logger.warning("site cannot train: %s", err.lines()[0])
        return _refuse(msg, "; ".join(err.lines()))
    config = msg.content.config_records["config"]
    data = _prepared_data(msg, data)
    model = _model_from_message(msg, data)
    server_round = as_int(config, "server-round")
    partition = context.node_config.get("partition-id", 0)
    settings = TrainSettings(
        epochs=as_int(config, "local-epochs"),
        batch_size=as_int(config, "batch-size"),
        learning_rate=as_float(config, "learning-rate"),
        seed=as_int(config, "seed") * 1_000_003 + server_round * 101 + (partition if isinstance(partition, int) else 0),
    )
    train_loss = train_locally(model, data.x_train, data.y_train, settings)
    metrics = MetricRecord({"num-examples": data.num_train, "train-loss": train_loss})
    site_record = append_site_entry(
        site, config, run_id=context.run_id, settings=_settings(context, overrides), event="update-sent",
        payload={"round": server_round, "num_examples": data.num_train, "train_loss": train_loss},
    )
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics, SITE_RECORD_KEY: site_record})
    return Message(content=content, reply_to=msg)


def evaluate_handler(msg: Message, context: Context, overrides: Mapping[str, object]) -> Message:
    """Evaluate the received global model on the site's train and test parts (aggregates only)."""
    try:
        site = resolve_site(context.node_config, _settings(context, overrides))
        data = load_site_data(site)
    except SandboxError as err:
        return _refuse(msg, "; ".join(err.lines()))
    data = _prepared_data(msg, data)
    model = _model_from_message(msg, data)
    on_test = evaluate(model, data.x_test, data.y_test)
    on_train = evaluate(model, data.x_train, data.y_train)
    metrics = MetricRecord(
        {
            "num-examples": on_test.num_examples,
            "num-train-examples": on_train.num_examples,
            "test-loss": on_test.loss,
            "test-accuracy": on_test.accuracy,
            "test-auroc": on_test.auroc if on_test.auroc is not None else 0.0,
            "test-auroc-defined": 1 if on_test.auroc is not None else 0,
            "train-loss": on_train.loss,
            "train-accuracy": on_train.accuracy,
        }
    )
    config = msg.content.config_records["config"]
    site_record = append_site_entry(
        site, config, run_id=context.run_id, settings=_settings(context, overrides), event="evaluation-sent",
        payload={"round": as_int(config, "server-round"), "metrics": dict(metrics)},
    )
    return Message(content=RecordDict({"metrics": metrics, SITE_RECORD_KEY: site_record}), reply_to=msg)


def query_handler(msg: Message, context: Context, overrides: Mapping[str, object]) -> Message:
    """Reply with the train part's feature sums and count, for federation-wide standardisation.

    Only sums over the whole train part leave the site, and only if it holds at least the
    minimum cohort the message names.
    """
    try:
        site = resolve_site(context.node_config, _settings(context, overrides))
        data = load_site_data(site)
    except SandboxError as err:
        return _refuse(msg, "; ".join(err.lines()))
    minimum = as_int(msg.content.config_records["config"], "min-cohort-size")
    if data.num_train < minimum:
        return _refuse(msg, f"train part has fewer than the minimum cohort of {minimum} records")
    count, sums, squares = data.feature_sums()
    site_record = append_site_entry(
        site, msg.content.config_records["config"], run_id=context.run_id, settings=_settings(context, overrides),
        event="feature-sums-sent", payload={"num_examples": count, "num_features": len(sums)},
    )
    content = RecordDict(
        {
            "metrics": MetricRecord({"num-examples": count, "feature-sum": sums, "feature-sum-squares": squares}),
            SITE_RECORD_KEY: site_record,
        }
    )
    return Message(content=content, reply_to=msg)


def make_client_app(overrides: Mapping[str, object] | None = None) -> ClientApp:
    """A ClientApp whose run settings (e.g. ``federation-dir``) may be fixed in advance.

    ``flwr.simulation.run_simulation`` passes no run config, so ``sandbox run`` bakes the few
    paths the simulated sites need into the app; the app object travels to every simulated site,
    so it carries only these paths, never data.
    """
    fixed = dict(overrides or {})
    client_app = ClientApp()

    @client_app.train()
    def _train(msg: Message, context: Context) -> Message:
        return train_handler(msg, context, fixed)

    @client_app.evaluate()
    def _evaluate(msg: Message, context: Context) -> Message:
        return evaluate_handler(msg, context, fixed)

    @client_app.query()
    def _query(msg: Message, context: Context) -> Message:
        return query_handler(msg, context, fixed)

    return client_app


app = make_client_app()
"""The ClientApp ``flwr run`` and SuperNodes load (``participants.client_app:app``)."""
