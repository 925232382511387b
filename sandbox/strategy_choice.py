"""Build the Flower strategy a trial names, with its parameters, for the governed wrapper."""

from __future__ import annotations

from flwr.serverapp.strategy import FedAdam, FedAvg, FedMedian, FedProx, FedTrimmedAvg, FedYogi, Strategy

from trialcore.spec import TrialSpec

STRATEGIES: dict[str, type[FedAvg]] = {
    "FedAvg": FedAvg,
    "FedProx": FedProx,
    "FedAdam": FedAdam,
    "FedYogi": FedYogi,
    "FedTrimmedAvg": FedTrimmedAvg,
    "FedMedian": FedMedian,
}


def build_inner_strategy(spec: TrialSpec) -> Strategy:
    """The named Flower strategy, sampling every listed site and needing ``min_participants`` replies.

    Flower's ``min_*_nodes`` default to 2, so a one-site trial would wait forever: they are set
    from the spec.
    """
    cls = STRATEGIES[spec.strategy.name]
    sites = len(spec.participants)
    return cls(
        fraction_train=1.0,
        fraction_evaluate=1.0,
        min_train_nodes=spec.min_participants,
        min_evaluate_nodes=spec.min_participants,
        min_available_nodes=sites,
        **spec.strategy.params,  # type: ignore[arg-type]
    )
