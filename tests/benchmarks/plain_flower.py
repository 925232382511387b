"""A truly plain Flower app: Flower's own FedAvg and a ClientApp with no guard, ledger, audit or DP.

What governance costs is measured against this app (``make bench``, keys ``plain_flower`` and
``scale``). It trains the same model (:func:`participants.model.build_model`) with the same local
training (:func:`participants.training.train_locally`, DP off) and evaluation on the same
records, split the same way (:func:`participants.site_data.load_site_data`), and nothing else:
no spec in the messages, no hash check, no policy, no approvals, no audit chain, no ledger, no
screening, no metrics, no report. Features are standardised with the site's own train mean and
standard deviation (a plain app has no federated scaling round).

:class:`RoundClock` records when each round starts and ends, for the plain and the governed run
alike (it wraps the strategy Flower runs, FedAvg in both).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg, Strategy

from participants.model import build_model
from participants.site_config import load_site_config
from participants.site_data import SiteData, load_site_data
from participants.training import TrainSettings, evaluate, train_locally
from trialcore.spec import TrialSpec


@dataclass
class RoundClock:
    """When each round of a strategy started and when its evaluation ended (``time.perf_counter()``, seconds)."""

    strategy: Strategy
    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)

    def round_seconds(self) -> list[float]:
        """Each round's wall time: from its start to the next round's start (the last: to its evaluation's end)."""
        bounds = [*self.starts[1:], self.ends[-1]] if self.ends else []
        return [end - start for start, end in zip(self.starts, bounds, strict=False)]

    def steady_round_seconds(self) -> list[float]:
        """:meth:`round_seconds` from round 2 on: round 1 of plain FedAvg also waits for every node to come up."""
        return self.round_seconds()[1:]


def clocked(strategy: Strategy) -> RoundClock:
    """Time ``strategy``'s rounds: its ``configure_train`` and ``aggregate_evaluate`` now note the time too."""
    clock = RoundClock(strategy)
    configure_train, aggregate_evaluate = strategy.configure_train, strategy.aggregate_evaluate

    def timed_configure_train(*args: Any, **kwargs: Any) -> Any:
        clock.starts.append(time.perf_counter())
        return configure_train(*args, **kwargs)

    def timed_aggregate_evaluate(*args: Any, **kwargs: Any) -> Any:
        result = aggregate_evaluate(*args, **kwargs)
        clock.ends.append(time.perf_counter())
        return result

    vars(strategy).update(configure_train=timed_configure_train, aggregate_evaluate=timed_aggregate_evaluate)
    return clock


def _site_data(site_config: str) -> SiteData:
    data = load_site_data(load_site_config(site_config))
    mean = data.x_train.mean(axis=0)
    std = np.where(data.x_train.std(axis=0) > 0, data.x_train.std(axis=0), 1.0)
    return data.standardised(mean.tolist(), std.tolist())


def plain_client_app(site_configs: tuple[str, ...], spec: TrialSpec) -> ClientApp:
    """The ClientApp of node ``partition-id`` i trains on ``site_configs[i]``'s records; nothing else."""
    app = ClientApp()
    model_name, features = spec.model.name, spec.model.input_features
    epochs, batch_size, learning_rate = (
        spec.local_training.epochs,
        spec.local_training.batch_size,
        spec.local_training.learning_rate,
    )

    def model_from(msg: Message):  # type: ignore[no-untyped-def]
        model = build_model(model_name, num_features=features)
        model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
        return model

    @app.train()
    def _train(msg: Message, context: Context) -> Message:
        partition = int(context.node_config["partition-id"])
        data = _site_data(site_configs[partition])
        model = model_from(msg)
        server_round = int(msg.content["config"]["server-round"])
        settings = TrainSettings(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=server_round)
        result = train_locally(model, data.x_train, data.y_train, settings)
        metrics = MetricRecord({"num-examples": data.num_train, "train_loss": result.mean_loss})
        return Message(RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics}), reply_to=msg)

    @app.evaluate()
    def _evaluate(msg: Message, context: Context) -> Message:
        partition = int(context.node_config["partition-id"])
        data = _site_data(site_configs[partition])
        found = evaluate(model_from(msg), data.x_test, data.y_test)
        metrics = MetricRecord({"num-examples": found.num_examples, "loss": found.loss, "accuracy": found.accuracy})
        return Message(RecordDict({"metrics": metrics}), reply_to=msg)

    return app


def plain_server_app(spec: TrialSpec, clock: RoundClock) -> ServerApp:
    """Flower's FedAvg (``clock``) for ``spec.rounds`` rounds from the spec's initial model; no governance."""
    server_app = ServerApp()

    @server_app.main()
    def _main(grid: Grid, context: Context) -> None:
        model = build_model(spec.model.name, num_features=spec.model.input_features, seed=spec.seed)
        clock.strategy.start(grid=grid, initial_arrays=ArrayRecord(model.state_dict()), num_rounds=spec.rounds)

    return server_app


def plain_strategy(num_sites: int) -> RoundClock:
    """FedAvg sampling every site for training and evaluation, waiting until all are connected."""
    return clocked(
        FedAvg(
            fraction_train=1.0,
            fraction_evaluate=1.0,
            min_train_nodes=num_sites,
            min_evaluate_nodes=num_sites,
            min_available_nodes=num_sites,
        )
    )


def site_config_paths(federation_dir: Path, site_ids: tuple[str, ...]) -> tuple[str, ...]:
    """Absolute node-config paths of ``site_ids`` in ``federation_dir``, in partition order."""
    return tuple(str((federation_dir / f"{site}.yaml").resolve()) for site in site_ids)
