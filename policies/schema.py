"""The schema of one policy file (one *layer*): what each key means, in which unit.

A policy is built from layers: a region preset (``preset:eu-gdpr-ai-act``), a country
file that ``extends`` it, and an institution file that ``extends`` the country. Every
field below is optional in a lower layer (omitted or ``null`` = inherit); a root layer
(a file without ``extends``) must set the fields marked *required at root* in
:mod:`policies.rules`. How layers combine is :mod:`policies.layering`.

Regulatory anchors of the fields (illustrative, not legal advice): purpose limitation,
GDPR Art. 5(1)(b); special-category health data, GDPR Art. 9(2)(j) and Art. 89(1);
AI risk tiers, AI Act Art. 5-6; transfers, GDPR Chapter V (Art. 44-49); sandbox plan,
AI Act Art. 3(54) and Art. 57(5); differential privacy, Abadi et al. 2016 (DP-SGD); bounded
model updates against poisoning, AI Act Art. 15(5) (cf. Sun et al. 2019, norm bounding).

Invariants enforced here: terms come from :mod:`policies.vocabulary`; redlines are never
allowed; ``unacceptable`` risk is never allowed; jurisdictions are ISO 3166-1 alpha-2;
numbers are finite and never booleans; within one file a window starts on or before it ends.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from policies.terms import (
    DataCategory,
    Jurisdiction,
    Mechanism,
    NonNegativeFloat,
    PolicyDate,
    PositiveFloat,
    Probability,
    RiskTier,
    SpecialCategory,
    Terms,
    Text,
    unique,
)
from policies.vocabulary import vocabulary
from trialcore.privacy_accountant import MAX_NOISE_MULTIPLIER

__all__ = [
    "AiSection",
    "ApprovalsSection",
    "DataSection",
    "PolicyLayer",
    "PrivacySection",
    "PurposesSection",
    "TrainingSection",
    "TransfersSection",
    "ValiditySection",
]


STRATEGY_NAMES = ("FedAvg", "FedProx", "FedAdam", "FedYogi", "FedTrimmedAvg", "FedMedian")
"""Flower strategies a trial spec can name (``trialcore.spec.StrategySpec``)."""
StrategyName = Literal["FedAvg", "FedProx", "FedAdam", "FedYogi", "FedTrimmedAvg", "FedMedian"]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PurposesSection(_Strict):
    """What the data may be used for (GDPR Art. 5(1)(b) purpose limitation)."""

    allowed: Terms | None = Field(
        default=None, description="Purposes this layer allows; a lower layer may only drop terms. Required at root."
    )
    redlines: Terms | None = Field(
        default=None,
        description="Extra never-event purposes; added to the vocabulary's redlines. No layer can remove one.",
    )

    @model_validator(mode="after")
    def _redlines_not_allowed(self) -> PurposesSection:
        blocked = [p for p in self.allowed or () if p in vocabulary().redlines or p in (self.redlines or ())]
        if blocked:
            raise ValueError(f"{blocked} are redlines (never-events) and can never be allowed")
        return self


class AiSection(_Strict):
    """Which AI Act risk tiers the trial's model may fall in (AI Act Art. 5-6)."""

    allowed_risk_tiers: Annotated[tuple[RiskTier, ...], AfterValidator(unique)] | None = Field(
        default=None, description="Allowed tiers among minimal, limited, high; 'unacceptable' is never allowed."
    )


class DataSection(_Strict):
    """Which data categories may be used and on what legal basis (GDPR Art. 9)."""

    allowed_categories: Annotated[tuple[DataCategory, ...], AfterValidator(unique)] | None = Field(
        default=None,
        description="Data categories a trial may use; a lower layer may only drop terms. Required at root.",
    )
    special_category_legal_basis: dict[SpecialCategory, Text] | None = Field(
        default=None,
        description="Legal basis per special category, e.g. {health: 'GDPR Art. 9(2)(j)'}; "
        "a trial using a special category without a basis here is refused.",
    )
    min_cohort_size: StrictInt | None = Field(
        default=None, ge=2, description="Smallest cohort (people) any released statistic may describe; default 11."
    )
    count_granularity: StrictInt | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Record counts leave the site rounded down to a multiple of this many records (counts are "
        "treated as public); a lower layer may only raise it; default 10.",
    )


class PrivacySection(_Strict):
    """Differential-privacy limits per dataset (DP-SGD, Abadi et al. 2016)."""

    epsilon_budget: PositiveFloat | None = Field(
        default=None,
        description="Total epsilon a site's dataset may spend over the policy's validity. Required at root.",
    )
    delta: Probability | None = Field(
        default=None, description="Largest delta of (epsilon, delta)-DP, a probability in (0, 1). Required at root."
    )
    min_noise_multiplier: NonNegativeFloat | None = Field(
        default=None,
        le=MAX_NOISE_MULTIPLIER,
        description="Smallest DP-SGD noise multiplier (noise std / clipping norm). Required at root.",
    )
    max_clipping_norm: PositiveFloat | None = Field(
        default=None, description="Largest per-sample gradient clipping norm (max_grad_norm, L2). Required at root."
    )
    secure_aggregation_required: StrictBool | None = Field(
        default=None, description="If true, model updates must be securely aggregated; default false."
    )
    max_update_l2_norm: PositiveFloat | None = Field(
        default=None,
        description="Largest L2 norm of a site's model update (its returned arrays minus the global model it "
        "was sent, over all arrays); the coordinator rejects larger updates. None = unbounded (default).",
    )


class TransfersSection(_Strict):
    """Where model updates may go (GDPR Chapter V, FADP Art. 16, HIPAA BAA)."""

    allowed_aggregator_jurisdictions: Annotated[tuple[Jurisdiction, ...], AfterValidator(unique)] | None = Field(
        default=None, description="ISO 3166-1 alpha-2 codes where the aggregator may run. Required at root."
    )
    transfer_mechanisms: dict[Jurisdiction, Mechanism] | None = Field(
        default=None,
        description="Mechanism per destination for cross-border transfers, e.g. {GB: adequacy-decision}; "
        "a site outside the destination needs an entry here.",
    )


class TrainingSection(_Strict):
    """How much training a trial may run on a site's data (GDPR Art. 5(1)(c) minimisation)."""

    max_rounds: StrictInt | None = Field(
        default=None, ge=1, description="Largest number of federated rounds. Required at root."
    )
    max_local_epochs: StrictInt | None = Field(
        default=None, ge=1, description="Largest number of local epochs per round. Required at root."
    )
    allowed_strategies: Annotated[tuple[StrategyName, ...], AfterValidator(unique)] | None = Field(
        default=None,
        description="Flower aggregation strategies a trial may use, e.g. the robust [FedMedian, FedTrimmedAvg] "
        "(AI Act Art. 15(4)-(5) robustness); default: any of " + ", ".join(STRATEGY_NAMES) + ".",
    )


class EnforcementSection(_Strict):
    """Graduated enforcement: how violations at aggregation escalate (AI Act Art. 57(11)-(12), Art. 73).

    Counts are of violations recorded by the coordinator (rejected updates: non-finite, wrong shape,
    norm above the bound). A site is excluded after ``exclude_after_violations`` of its own; the
    trial is suspended, then terminated, after the trial-wide counts. Smaller numbers are stricter.
    """

    exclude_after_violations: StrictInt | None = Field(
        default=None, ge=1, description="A site's violations that exclude it for the next rounds; default 4."
    )
    exclusion_rounds: StrictInt | None = Field(
        default=None, ge=1, description="Rounds an excluded site sits out; default 2 (a larger number is stricter)."
    )
    suspend_after_violations: StrictInt | None = Field(
        default=None,
        ge=1,
        description="Trial-wide violations that suspend the trial until a regulator resumes it; default 6.",
    )
    terminate_after_violations: StrictInt | None = Field(
        default=None, ge=1, description="Trial-wide violations that terminate the trial; default 8."
    )
    reporting_deadline_hours: StrictInt | None = Field(
        default=None, ge=1, description="Hours within which an incident must be reported to the regulator; default 72."
    )


class ValiditySection(_Strict):
    """When the policy applies; after ``valid_until`` (the sunset) it refuses everything."""

    valid_from: PolicyDate | None = Field(
        default=None, description="First UTC day the policy applies (inclusive); ISO date or today[+-]Nd."
    )
    valid_until: PolicyDate | None = Field(
        default=None, description="Last UTC day the policy applies (inclusive); ISO date or today[+-]Nd. None = open."
    )

    @model_validator(mode="after")
    def _ordered(self) -> ValiditySection:
        if self.valid_from and self.valid_until and self.valid_from > self.valid_until:
            raise ValueError(f"valid_from {self.valid_from} is after valid_until {self.valid_until}")
        return self


class ApprovalsSection(_Strict):
    """Approvals a trial needs (ethics review; regulator sandbox plan, AI Act Art. 57(5))."""

    ethics_approval_required: StrictBool | None = Field(
        default=None, description="If true, a trial must carry an ethics board approval reference; default false."
    )
    ethics_approval_ref: Text | None = Field(
        default=None, description="If set, the only ethics approval reference a trial may carry here."
    )
    sandbox_plan_required: StrictBool | None = Field(
        default=None, description="If true, a trial must carry a regulator sandbox plan id; default false."
    )
    sandbox_plan_id: Text | None = Field(
        default=None, description="If set, the only sandbox plan id a trial may carry here."
    )
    sandbox_plan_start: PolicyDate | None = Field(
        default=None, description="First UTC day of the sandbox plan (inclusive); ISO date or today[+-]Nd."
    )
    sandbox_plan_end: PolicyDate | None = Field(
        default=None, description="Last UTC day of the sandbox plan (inclusive); ISO date or today[+-]Nd."
    )

    @model_validator(mode="after")
    def _ordered(self) -> ApprovalsSection:
        start, end = self.sandbox_plan_start, self.sandbox_plan_end
        if start and end and start > end:
            raise ValueError(f"sandbox_plan_start {start} is after sandbox_plan_end {end}")
        return self


class PolicyLayer(_Strict):
    """One policy file as written: a region preset, a country layer or an institution's file."""

    extends: Text | None = Field(
        default=None,
        description="The layer this one tightens: 'preset:NAME' or a path relative to this file. None = root.",
    )
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)] | None = Field(
        default=None, description="Short kebab-case name; presets must match their file name. Default: the file stem."
    )
    title: Text | None = Field(default=None, description="Human title shown by `sandbox policies list`.")
    summary: Text | None = Field(default=None, description="One-line summary shown by `sandbox policies list`.")
    region: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9-]{1,15}$")] | None = Field(
        default=None, description="Regulatory region of the preset (EU, UK, US, CH); fixed once set."
    )
    jurisdiction: Jurisdiction | None = Field(
        default=None, description="ISO 3166-1 alpha-2 country of the site; fixed once set (country layer)."
    )
    purposes: PurposesSection = Field(default=PurposesSection(), description=PurposesSection.__doc__)
    ai: AiSection = Field(default=AiSection(), description=AiSection.__doc__)
    data: DataSection = Field(default=DataSection(), description=DataSection.__doc__)
    privacy: PrivacySection = Field(default=PrivacySection(), description=PrivacySection.__doc__)
    transfers: TransfersSection = Field(default=TransfersSection(), description=TransfersSection.__doc__)
    training: TrainingSection = Field(default=TrainingSection(), description=TrainingSection.__doc__)
    validity: ValiditySection = Field(default=ValiditySection(), description=ValiditySection.__doc__)
    approvals: ApprovalsSection = Field(default=ApprovalsSection(), description=ApprovalsSection.__doc__)
    enforcement: EnforcementSection = Field(default=EnforcementSection(), description=EnforcementSection.__doc__)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: Any) -> Any:
        """A section written with no keys (``privacy:``) is an empty section, not an error."""
        if isinstance(data, dict):
            return {k: ({} if v is None and k in _SECTION_NAMES else v) for k, v in data.items()}
        return data


_SECTION_NAMES = frozenset({"purposes", "ai", "data", "privacy", "transfers", "training", "validity", "approvals"})
