"""The trial spec: what a researcher asks the federation to do, as frozen pydantic models.

A trial spec is a YAML file (see ``examples/demo.yaml``). It names the purpose, the model, the
federation (a folder of site node configs, relative to the spec file), the participants by site
id and jurisdiction, the rounds, local training settings and a seed. It never carries a site's
own settings (data source, policy, state folder): those belong to the site's node config.

Every model forbids unknown keys: a typo in YAML is an error, not a silent default. Every number is
strict: ``rounds: true`` or ``epochs: 2.0`` is refused, never read as 1 or 2.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trialcore.data_contract import DataContract
from trialcore.privacy_accountant import MAX_NOISE_MULTIPLIER, accountant_refusal

KEBAB_ID = r"^[a-z0-9]+(-[a-z0-9]+)*$"
COUNTRY_CODE = r"^[A-Z]{2}$"

SiteId = Annotated[str, Field(pattern=KEBAB_ID, max_length=63, description="Kebab-case site id, e.g. 'de-berlin'.")]
CountryCode = Annotated[str, Field(pattern=COUNTRY_CODE, description="ISO 3166-1 alpha-2 country code, e.g. 'DE'.")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)


class ModelSpec(_Frozen):
    """The model every site trains: a small torch network chosen by name."""

    name: Literal["logistic_regression", "mlp"] = Field(description="Model architecture.")
    input_features: int = Field(
        strict=True, gt=0, le=100_000, description="Number of feature columns every site provides."
    )
    hidden_units: int = Field(
        strict=True, default=16, gt=0, le=4096, description="Width of the MLP's hidden layer (mlp only)."
    )


class Participant(_Frozen):
    """One site the trial invites, by id and jurisdiction (its settings stay in its node config)."""

    site_id: SiteId
    jurisdiction: CountryCode


class Aggregator(_Frozen):
    """Where the coordinator that aggregates model updates runs."""

    jurisdiction: CountryCode


class LocalTraining(_Frozen):
    """Training each site runs on its own records per round."""

    epochs: int = Field(strict=True, gt=0, le=100, description="Local epochs per round.")
    batch_size: int = Field(strict=True, gt=0, le=100_000, description="Records per batch.")
    learning_rate: float = Field(strict=True, gt=0, le=10, description="SGD learning rate.")


class Privacy(_Frozen):
    """Record-level differential privacy asked of every site (sites may impose a stricter floor)."""

    epsilon_budget: float = Field(strict=True, gt=0, description="Epsilon each site may spend on this trial.")
    delta: float = Field(strict=True, gt=0, lt=1, description="Delta of the (epsilon, delta) guarantee.")
    noise_multiplier: float | None = Field(
        strict=True, default=None, gt=0, le=MAX_NOISE_MULTIPLIER, description="DP-SGD noise multiplier; null = no DP."
    )
    max_grad_norm: float | None = Field(strict=True, default=None, gt=0, description="DP-SGD per-sample clipping norm.")
    feature_statistics_noise_multiplier: float = Field(
        strict=True,
        default=5.0,
        gt=0,
        le=MAX_NOISE_MULTIPLIER,
        description="Gaussian noise (std over L2 sensitivity) on the clipped feature sums each site releases once "
        "for federated standardisation (participants.accounted_release).",
    )
    evaluation_noise_multiplier: float = Field(
        strict=True,
        default=20.0,
        gt=0,
        le=MAX_NOISE_MULTIPLIER,
        description="Gaussian noise (std over L2 sensitivity) on the clipped test-part sums each site releases per "
        "evaluated round (participants.accounted_release).",
    )
    accountant: str = Field(
        default="rdp",
        description="Privacy accountant: rdp (Renyi DP, default) or prv (privacy random variables); "
        "the Gaussian (CLT) accountant is refused because it can under-report epsilon.",
    )

    @field_validator("accountant")
    @classmethod
    def _known_accountant(cls, value: str) -> str:
        refusal = accountant_refusal(value)
        if refusal is not None:
            summary, allowed = refusal
            raise ValueError(f"{summary}; use one of: {allowed}")
        return value.strip().lower()

    @model_validator(mode="after")
    def _both_or_neither(self) -> Privacy:
        if (self.noise_multiplier is None) != (self.max_grad_norm is None):
            raise ValueError("set both noise_multiplier and max_grad_norm for DP-SGD, or neither")
        return self


ROBUST_PARAMETER_BOUNDS: dict[str, dict[str, tuple[float, float]]] = {
    "FedTrimmedAvg": {"beta": (0.05, 0.45)},
}
"""Bounds (inclusive) on the parameters of the robust strategies: a trimmed mean that trims nothing
(``beta`` 0) is a plain mean, and a policy requiring a robust strategy would be defeated."""
FROZEN_STRATEGY_PARAMETERS = frozenset(
    {"fraction_train", "fraction_evaluate", "min_train_nodes", "min_evaluate_nodes", "min_available_nodes"}
)
"""Parameters the governed strategy sets itself from the spec; a spec may not override them."""


class StrategySpec(_Frozen):
    """The Flower strategy the governed strategy wraps, with its keyword parameters.

    The robust strategies' parameters are bounded (:data:`ROBUST_PARAMETER_BOUNDS`), and the
    sampling parameters are the governed strategy's own (:data:`FROZEN_STRATEGY_PARAMETERS`).
    """

    name: Literal["FedAvg", "FedProx", "FedAdam", "FedYogi", "FedTrimmedAvg", "FedMedian"] = "FedAvg"
    params: dict[str, float | int | bool] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _bounded_parameters(self) -> StrategySpec:
        frozen = sorted(FROZEN_STRATEGY_PARAMETERS & self.params.keys())
        if frozen:
            raise ValueError(f"strategy parameters {frozen} are set by the sandbox from the spec, not by params")
        for name, (low, high) in ROBUST_PARAMETER_BOUNDS.get(self.name, {}).items():
            value = self.params.get(name)
            if value is not None and not (isinstance(value, (int, float)) and low <= value <= high):
                raise ValueError(f"{self.name} parameter {name} must lie in [{low}, {high}] (got {value!r})")
        return self


class Approvals(_Frozen):
    """References to the approvals the trial runs under."""

    ethics_board_ref: str | None = Field(default=None, max_length=200)
    sandbox_plan_id: str | None = Field(default=None, max_length=200)


class EngineSpec(_Frozen):
    """Where ``sandbox run`` runs the trial; its ``--engine``, ``--superlink`` and ``--root-certificates`` override it."""

    name: Literal["simulation", "deployment"] = "simulation"
    superlink: str | None = Field(default=None, min_length=1, max_length=300, description="HOST:PORT (deployment).")
    root_certificates: str | None = Field(
        default=None, min_length=1, max_length=1000, description="CA of the SuperLink's TLS, relative to this file."
    )


class TrialSpec(_Frozen):
    """A cross-border pilot training, as a researcher defines it."""

    trial_id: SiteId = Field(description="Kebab-case id; names the folder under runs/.")
    title: str = Field(min_length=1, max_length=200)
    purpose: str = Field(min_length=1, max_length=80, description="One purpose term, e.g. 'treatment-research'.")
    ai_risk_tier: Literal["minimal", "limited", "high", "unacceptable"] = "high"
    data_categories: tuple[str, ...] = ("health",)
    model: ModelSpec
    federation: str = Field(min_length=1, description="Folder of site node configs, relative to this file.")
    aggregator: Aggregator
    participants: tuple[Participant, ...] = Field(min_length=1)
    rounds: int = Field(strict=True, gt=0, le=10_000)
    min_participants: int = Field(strict=True, default=2, gt=0)
    local_training: LocalTraining
    privacy: Privacy
    strategy: StrategySpec = StrategySpec()
    approvals: Approvals = Approvals()
    seed: int = Field(strict=True, ge=0, lt=2**32)
    data: DataContract | None = Field(
        default=None, description="The data contract every site's extract is mapped onto (trialcore.data_contract)."
    )
    engine: EngineSpec | None = Field(
        default=None,
        exclude_if=lambda value: value is None,  # a spec without it hashes as before the field existed
        description="Where the trial runs (simulation unless it names a deployment's SuperLink).",
    )

    @field_validator("purpose")
    @classmethod
    def _one_line_term(cls, value: str) -> str:
        if not re.fullmatch(KEBAB_ID, value):
            raise ValueError("one kebab-case purpose term on one line, e.g. 'treatment-research'")
        return value

    @model_validator(mode="after")
    def _width_follows_contract(self) -> TrialSpec:
        if self.data is not None and self.data.input_width != self.model.input_features:
            raise ValueError(
                f"model.input_features is {self.model.input_features} but the data contract produces "
                f"{self.data.input_width} input columns; set model.input_features: {self.data.input_width}"
            )
        return self

    @property
    def site_ids(self) -> tuple[str, ...]:
        """Participant site ids in the order listed."""
        return tuple(p.site_id for p in self.participants)
