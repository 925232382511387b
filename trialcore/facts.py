"""What a pre-flight check needs to know about a trial, independent of the trial spec.

``sandbox`` builds a :class:`TrialFacts` from its validated trial spec; ``policies``
never imports the spec, so the policy language stays usable (and testable) on its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = ["PrivacyCost", "SiteFacts", "TrialFacts"]


class SiteFacts(NamedTuple):
    """One participating site: its id and the ISO 3166-1 alpha-2 country it runs in."""

    site_id: str
    jurisdiction: str


@dataclass(frozen=True)
class PrivacyCost:
    """A dry run of what a trial would cost one site's dataset in epsilon, before anything runs.

    All epsilons are at the trial's delta, from the site's privacy ledger as it is now:
    ``spent_before`` is what the dataset has already paid (every earlier trial), ``trial_epsilon``
    what this trial's rounds cost on their own, ``cumulative_after`` the dataset's epsilon after
    them (accountants compose sub-additively, so this is not a sum). ``rounds_affordable`` of the
    trial's ``rounds`` fit within both the site policy's budget for the dataset (``epsilon_budget``)
    and the trial's own
    (``trial_epsilon_budget``); the site refuses the others.
    """

    accountant: str
    spent_before: float
    trial_epsilon: float
    cumulative_after: float
    epsilon_budget: float
    trial_epsilon_budget: float
    rounds_affordable: int
    rounds: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "accountant": self.accountant,
            "epsilon_spent_before": self.spent_before,
            "trial_epsilon": self.trial_epsilon,
            "epsilon_after": self.cumulative_after,
            "epsilon_budget": self.epsilon_budget,
            "trial_epsilon_budget": self.trial_epsilon_budget,
            "rounds_affordable": self.rounds_affordable,
            "rounds": self.rounds,
        }


@dataclass(frozen=True)
class TrialFacts:
    """The facts of one trial that policies decide on.

    Attributes
    ----------
    trial_id:
        The trial's id, for reports.
    purpose:
        A purpose term of the vocabulary (``treatment-research``).
    ai_risk_tier:
        ``minimal``, ``limited``, ``high`` or ``unacceptable`` (AI Act Art. 5-6).
    data_categories:
        Data category terms the trial uses (``health``, ...).
    rounds:
        Federated rounds the trial will run.
    local_epochs:
        Local epochs per round at each site.
    aggregator_jurisdiction:
        ISO 3166-1 alpha-2 country where the aggregator (ServerApp) runs.
    sites:
        ``(site_id, jurisdiction)`` of every participant; plain 2-tuples are accepted.
    noise_multiplier:
        DP-SGD noise std / clipping norm; ``None`` means no differential privacy.
    max_grad_norm:
        Per-sample L2 clipping norm; ``None`` means no clipping.
    privacy_costs:
        Site id -> dry run of the trial's privacy cost at that site (:class:`PrivacyCost`);
        a site without one is judged "not yet computed" (its own guard charges its ledger).
    delta:
        Delta of the trial's (epsilon, delta)-DP guarantee; ``None`` = use the policy's delta.
    secure_aggregation:
        Whether updates are securely aggregated.
    ethics_approval_ref:
        Reference of the ethics board approval, if any.
    sandbox_plan_id:
        Id of the regulator's sandbox plan, if any.
    strategy:
        Name of the Flower aggregation strategy (``FedAvg``, ``FedMedian``, ...); None = not stated.
    """

    trial_id: str
    purpose: str
    ai_risk_tier: str
    data_categories: Sequence[str]
    rounds: int
    local_epochs: int
    aggregator_jurisdiction: str
    sites: Sequence[tuple[str, str]]
    noise_multiplier: float | None = None
    max_grad_norm: float | None = None
    delta: float | None = None
    secure_aggregation: bool = False
    ethics_approval_ref: str | None = None
    sandbox_plan_id: str | None = None
    strategy: str | None = None
    privacy_costs: Mapping[str, PrivacyCost] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_categories", tuple(self.data_categories))
        object.__setattr__(self, "sites", tuple(SiteFacts(*site) for site in self.sites))
