"""The per-site clauses of a pre-flight check, one function each, in reporting order.

Each clause reads one site's :class:`~policies.composed.ComposedPolicy` and the trial's
:class:`~trialcore.facts.TrialFacts` and returns one :class:`~policies.decision.Decision`
naming the file that set the deciding value (from the policy's provenance).

Anchors (illustrative, not legal advice): purpose limitation, GDPR Art. 5(1)(b);
redlines, EHDS Regulation (EU) 2025/327 Art. 54; AI risk tier, AI Act Art. 5-6;
special-category legal basis, GDPR Art. 9(2); transfers, GDPR Art. 44-46; sandbox plan,
AI Act Art. 57(5); DP-SGD noise multiplier and clipping norm, Abadi et al. 2016.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from policies.composed import ComposedPolicy
from policies.decision import Clause, Decision
from policies.rules import render
from policies.vocabulary import VOCABULARY_SOURCE, vocabulary
from trialcore.facts import TrialFacts

__all__ = ["CHECKS", "SiteContext"]


@dataclass(frozen=True, slots=True)
class SiteContext:
    """One site as a clause sees it: id, declared jurisdiction, policy, UTC today."""

    site_id: str
    jurisdiction: str
    policy: ComposedPolicy
    today: date

    def decide(
        self, clause: Clause, permit: bool, reason: str, source: str, found: object, allowed: object
    ) -> Decision:
        return Decision(self.site_id, clause.value, permit, reason, source, render(found), render(allowed))


def _jurisdiction(t: TrialFacts, s: SiteContext) -> Decision:
    own = s.policy.jurisdiction
    src = s.policy.source_of("jurisdiction")
    if own is None or own == s.jurisdiction:
        return s.decide(
            Clause.JURISDICTION, True, "site runs where its policy applies", src, s.jurisdiction, own or "any"
        )
    return s.decide(
        Clause.JURISDICTION,
        False,
        f"site declared in {s.jurisdiction} but its policy is for {own}",
        src,
        s.jurisdiction,
        own,
    )


def _validity(t: TrialFacts, s: SiteContext) -> Decision:
    p, today = s.policy, s.today
    start = render(p.valid_from) if p.valid_from else "always"
    window = f"{start} to {render(p.valid_until) if p.valid_until else 'open-ended'}"
    if p.valid_until is not None and today > p.valid_until:
        reason = f"policy expired on {p.valid_until.isoformat()} (after its sunset it refuses everything)"
        return s.decide(Clause.VALIDITY, False, reason, p.source_of("validity.valid_until"), today, window)
    if p.valid_from is not None and today < p.valid_from:
        reason = f"policy not yet valid: it applies from {p.valid_from.isoformat()}"
        return s.decide(Clause.VALIDITY, False, reason, p.source_of("validity.valid_from"), today, window)
    binding = "validity.valid_until" if p.valid_until is not None else "validity.valid_from"
    return s.decide(Clause.VALIDITY, True, "policy is valid today", p.source_of(binding), today, window)


def _purpose_allowed(t: TrialFacts, s: SiteContext) -> Decision:
    p, purpose, path = s.policy, t.purpose, "purposes.allowed"
    if purpose not in vocabulary().purposes:
        return s.decide(
            Clause.PURPOSE_ALLOWED,
            False,
            "not a purpose term of the vocabulary",
            VOCABULARY_SOURCE,
            purpose,
            list(vocabulary().purposes),
        )
    if purpose in p.allowed_purposes:
        return s.decide(Clause.PURPOSE_ALLOWED, True, "purpose allowed", p.source_of(path), purpose, p.allowed_purposes)
    return s.decide(
        Clause.PURPOSE_ALLOWED,
        False,
        f"purpose {purpose} is not allowed at this site",
        p.term_source(path, purpose),
        purpose,
        p.allowed_purposes,
    )


def _purpose_redline(t: TrialFacts, s: SiteContext) -> Decision:
    p, path = s.policy, "purposes.redlines"
    if t.purpose in p.redline_purposes:
        reason = f"{t.purpose} is a redline (never-event) that no policy layer can lift"
        return s.decide(
            Clause.PURPOSE_REDLINE,
            False,
            reason,
            p.term_source(path, t.purpose),
            t.purpose,
            f"none of {render(p.redline_purposes)}",
        )
    return s.decide(
        Clause.PURPOSE_REDLINE,
        True,
        "purpose is not a redline",
        p.source_of(path),
        t.purpose,
        f"none of {render(p.redline_purposes)}",
    )


def _risk_tier(t: TrialFacts, s: SiteContext) -> Decision:
    p, tier, path = s.policy, t.ai_risk_tier, "ai.allowed_risk_tiers"
    if tier in p.allowed_risk_tiers:
        return s.decide(Clause.RISK_TIER, True, "risk tier allowed", p.source_of(path), tier, p.allowed_risk_tiers)
    if tier in vocabulary().prohibited_risk_tiers:
        return s.decide(
            Clause.RISK_TIER,
            False,
            "prohibited AI practice (AI Act Art. 5); no policy can allow it",
            VOCABULARY_SOURCE,
            tier,
            p.allowed_risk_tiers,
        )
    return s.decide(
        Clause.RISK_TIER,
        False,
        f"AI risk tier {tier} is not allowed at this site",
        p.term_source(path, tier),
        tier,
        p.allowed_risk_tiers,
    )


def _data_category(t: TrialFacts, s: SiteContext) -> Decision:
    p, path = s.policy, "data.allowed_categories"
    extra = [c for c in t.data_categories if c not in p.allowed_data_categories]
    if extra:
        return s.decide(
            Clause.DATA_CATEGORY,
            False,
            f"data categories {render(extra)} are not allowed at this site",
            p.term_source(path, extra[0]),
            extra,
            p.allowed_data_categories,
        )
    return s.decide(
        Clause.DATA_CATEGORY,
        True,
        "data categories allowed",
        p.source_of(path),
        t.data_categories,
        p.allowed_data_categories,
    )


def _legal_basis(t: TrialFacts, s: SiteContext) -> Decision:
    p, path = s.policy, "data.special_category_legal_basis"
    special = [c for c in t.data_categories if c in vocabulary().special_categories]
    missing = [c for c in special if c not in p.special_category_legal_basis]
    named = sorted(p.special_category_legal_basis)
    if missing:
        reason = f"special-category data {render(missing)} used without a legal basis in the policy"
        return s.decide(Clause.LEGAL_BASIS, False, reason, p.source_of(path), missing, named)
    if not special:
        return s.decide(Clause.LEGAL_BASIS, True, "no special-category data", p.source_of(path), [], named)
    reason = "; ".join(f"{c}: {p.special_category_legal_basis[c]}" for c in special)
    return s.decide(Clause.LEGAL_BASIS, True, reason, p.term_source(path, special[0]), special, named)


def _ceiling(
    clause: Clause, path: str, what: str, found: Callable[[TrialFacts], float | None]
) -> Callable[[TrialFacts, SiteContext], Decision]:
    def check(t: TrialFacts, s: SiteContext) -> Decision:
        limit, value, src = s.policy.value(path), found(t), s.policy.source_of(path)
        if value is None:
            return s.decide(
                clause,
                True,
                f"{what} not set by the trial; the policy's limit applies",
                src,
                value,
                f"<= {render(limit)}",
            )
        if value > limit:
            return s.decide(
                clause,
                False,
                f"{what} {render(value)} exceeds the limit {render(limit)}",
                src,
                value,
                f"<= {render(limit)}",
            )
        return s.decide(clause, True, f"{what} within the limit", src, value, f"<= {render(limit)}")

    return check


def _strategy(t: TrialFacts, s: SiteContext) -> Decision:
    p, path = s.policy, "training.allowed_strategies"
    if t.strategy is None or t.strategy in p.allowed_strategies:
        return s.decide(
            Clause.STRATEGY,
            True,
            "aggregation strategy allowed",
            p.source_of(path),
            t.strategy or "",
            p.allowed_strategies,
        )
    return s.decide(
        Clause.STRATEGY,
        False,
        f"aggregation strategy {t.strategy} is not allowed at this site (a robust one is required)",
        p.term_source(path, t.strategy),
        t.strategy,
        p.allowed_strategies,
    )


def _noise_floor(t: TrialFacts, s: SiteContext) -> Decision:
    floor, src = s.policy.min_noise_multiplier, s.policy.source_of("privacy.min_noise_multiplier")
    noise = t.noise_multiplier
    if noise is None and floor > 0:
        return s.decide(
            Clause.NOISE_FLOOR,
            False,
            "trial adds no DP noise but the policy requires it",
            src,
            None,
            f">= {render(floor)}",
        )
    if noise is not None and noise < floor:
        return s.decide(
            Clause.NOISE_FLOOR,
            False,
            f"noise multiplier {render(noise)} below the floor {render(floor)}",
            src,
            noise,
            f">= {render(floor)}",
        )
    return s.decide(Clause.NOISE_FLOOR, True, "noise multiplier meets the floor", src, noise, f">= {render(floor)}")


def _clipping(t: TrialFacts, s: SiteContext) -> Decision:
    ceiling, src = s.policy.max_clipping_norm, s.policy.source_of("privacy.max_clipping_norm")
    norm = t.max_grad_norm
    if norm is None:
        return s.decide(
            Clause.CLIPPING_CEILING,
            False,
            "updates are not clipped; the policy caps max_grad_norm",
            src,
            None,
            f"<= {render(ceiling)}",
        )
    if norm > ceiling:
        return s.decide(
            Clause.CLIPPING_CEILING,
            False,
            f"max_grad_norm {render(norm)} exceeds {render(ceiling)}",
            src,
            norm,
            f"<= {render(ceiling)}",
        )
    return s.decide(
        Clause.CLIPPING_CEILING, True, "clipping norm within the ceiling", src, norm, f"<= {render(ceiling)}"
    )


def _budget(t: TrialFacts, s: SiteContext) -> Decision:
    budget, src = s.policy.epsilon_budget, s.policy.source_of("privacy.epsilon_budget")
    cost = t.privacy_costs.get(s.site_id)
    if cost is None and t.noise_multiplier is None:
        return s.decide(
            Clause.PRIVACY_BUDGET,
            False,
            "no differential privacy: epsilon is unbounded",
            src,
            "unbounded",
            f"<= {render(budget)} per dataset",
        )
    if cost is None:
        return s.decide(
            Clause.PRIVACY_BUDGET,
            True,
            "epsilon not yet computed; the site charges its ledger each round",
            src,
            "not yet computed",
            f"<= {render(budget)} per dataset",
        )
    found = (
        f"trial {cost.trial_epsilon:.3g}; dataset {cost.spent_before:.3g} spent -> {cost.cumulative_after:.3g} after "
        f"({cost.accountant})"
    )
    allowed = (
        f"<= {render(budget)} per dataset ({max(budget - cost.spent_before, 0.0):.3g} left), "
        f"<= {render(cost.trial_epsilon_budget)} this trial"
    )
    if cost.rounds_affordable == 0:
        return s.decide(
            Clause.PRIVACY_BUDGET, False, "the remaining budget cannot pay for even round 1", src, found, allowed
        )
    if cost.rounds_affordable < cost.rounds:
        reason = (
            f"only rounds 1-{cost.rounds_affordable} of {cost.rounds} fit: the site will refuse the rest "
            "(the trial stops, exit 4, if too few sites remain)"
        )
        return s.decide(Clause.PRIVACY_BUDGET, True, reason, src, found, allowed)
    return s.decide(Clause.PRIVACY_BUDGET, True, "the whole trial fits within the budget", src, found, allowed)


def _secure_aggregation(t: TrialFacts, s: SiteContext) -> Decision:
    required, src = s.policy.secure_aggregation_required, s.policy.source_of("privacy.secure_aggregation_required")
    allowed = "required" if required else "optional"
    if required and not t.secure_aggregation:
        return s.decide(Clause.SECURE_AGGREGATION, False, "the policy requires secure aggregation", src, False, allowed)
    return s.decide(
        Clause.SECURE_AGGREGATION, True, "secure aggregation requirement met", src, t.secure_aggregation, allowed
    )


def _transfer(t: TrialFacts, s: SiteContext) -> Decision:
    p, dest, home = s.policy, t.aggregator_jurisdiction, s.jurisdiction
    allowed_path, mech_path = "transfers.allowed_aggregator_jurisdictions", "transfers.transfer_mechanisms"
    if dest not in p.allowed_aggregator_jurisdictions:
        reason = f"model updates may not go to {dest}: not an allowed aggregator jurisdiction"
        return s.decide(
            Clause.TRANSFER, False, reason, p.term_source(allowed_path, dest), dest, p.allowed_aggregator_jurisdictions
        )
    if dest == home:
        return s.decide(
            Clause.TRANSFER,
            True,
            f"aggregator in the site's own jurisdiction {home}",
            p.source_of(allowed_path),
            dest,
            p.allowed_aggregator_jurisdictions,
        )
    mechanism = p.transfer_mechanisms.get(dest)
    if mechanism is None:
        reason = f"cross-border transfer {home}->{dest} has no transfer mechanism in the policy"
        return s.decide(Clause.TRANSFER, False, reason, p.source_of(mech_path), dest, sorted(p.transfer_mechanisms))
    return s.decide(
        Clause.TRANSFER,
        True,
        f"{home}->{dest} under {mechanism}",
        p.term_source(mech_path, dest),
        dest,
        p.allowed_aggregator_jurisdictions,
    )


def _approvals(t: TrialFacts, s: SiteContext) -> Decision:
    p, ref = s.policy, t.ethics_approval_ref
    src = p.source_of("approvals.ethics_approval_required")
    if p.ethics_approval_ref is not None and ref != p.ethics_approval_ref:
        return s.decide(
            Clause.APPROVALS,
            False,
            "this site accepts only its own ethics approval reference",
            p.source_of("approvals.ethics_approval_ref"),
            ref,
            p.ethics_approval_ref,
        )
    if p.ethics_approval_required and not ref:
        return s.decide(
            Clause.APPROVALS, False, "ethics board approval reference missing", src, ref, "an ethics approval reference"
        )
    reason = "ethics approval present" if ref else "no ethics approval required"
    return s.decide(Clause.APPROVALS, True, reason, src, ref, "required" if p.ethics_approval_required else "optional")


def _sandbox_plan(t: TrialFacts, s: SiteContext) -> Decision:
    p, plan, today = s.policy, t.sandbox_plan_id, s.today
    allowed = f"{render(p.sandbox_plan_start)} to {render(p.sandbox_plan_end)}"
    if p.sandbox_plan_id is not None and plan != p.sandbox_plan_id:
        return s.decide(
            Clause.SANDBOX_PLAN,
            False,
            "this site accepts only its own sandbox plan id",
            p.source_of("approvals.sandbox_plan_id"),
            plan,
            p.sandbox_plan_id,
        )
    if p.sandbox_plan_required and not plan:
        return s.decide(
            Clause.SANDBOX_PLAN,
            False,
            "regulator sandbox plan id missing",
            p.source_of("approvals.sandbox_plan_required"),
            plan,
            "a sandbox plan id",
        )
    if p.sandbox_plan_end is not None and today > p.sandbox_plan_end:
        return s.decide(
            Clause.SANDBOX_PLAN,
            False,
            f"sandbox plan ended on {p.sandbox_plan_end.isoformat()}",
            p.source_of("approvals.sandbox_plan_end"),
            today,
            allowed,
        )
    if p.sandbox_plan_start is not None and today < p.sandbox_plan_start:
        return s.decide(
            Clause.SANDBOX_PLAN,
            False,
            f"sandbox plan starts on {p.sandbox_plan_start.isoformat()}",
            p.source_of("approvals.sandbox_plan_start"),
            today,
            allowed,
        )
    reason = "sandbox plan in force" if plan else "no sandbox plan required"
    return s.decide(Clause.SANDBOX_PLAN, True, reason, p.source_of("approvals.sandbox_plan_required"), plan, allowed)


def _min_cohort(t: TrialFacts, s: SiteContext) -> Decision:
    n = s.policy.min_cohort_size
    return s.decide(
        Clause.MIN_COHORT,
        True,
        f"released statistics must describe at least {n} people",
        s.policy.source_of("data.min_cohort_size"),
        "",
        f">= {n}",
    )


CHECKS: tuple[Callable[[TrialFacts, SiteContext], Decision], ...] = (
    _jurisdiction,
    _validity,
    _purpose_allowed,
    _purpose_redline,
    _risk_tier,
    _data_category,
    _legal_basis,
    _ceiling(Clause.MAX_ROUNDS, "training.max_rounds", "rounds", lambda t: t.rounds),
    _ceiling(Clause.MAX_LOCAL_EPOCHS, "training.max_local_epochs", "local epochs", lambda t: t.local_epochs),
    _strategy,
    _noise_floor,
    _clipping,
    _budget,
    _ceiling(Clause.PRIVACY_DELTA, "privacy.delta", "delta", lambda t: t.delta),
    _secure_aggregation,
    _transfer,
    _approvals,
    _sandbox_plan,
    _min_cohort,
)
