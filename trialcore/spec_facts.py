"""The facts of a trial spec that policies judge, shared by the coordinator's pre-flight and each site's guard."""

from __future__ import annotations

from collections.abc import Sequence

from trialcore.facts import SiteFacts, TrialFacts
from trialcore.spec import TrialSpec


def trial_facts(spec: TrialSpec, *, sites: Sequence[SiteFacts] | None = None) -> TrialFacts:
    """What the policies judge, taken from a validated trial spec.

    ``sites`` narrows the facts to the sites given (a site judging only itself, whatever the
    number of participants); by default every participant.
    """
    return TrialFacts(
        trial_id=spec.trial_id,
        purpose=spec.purpose,
        ai_risk_tier=spec.ai_risk_tier,
        data_categories=tuple(spec.data_categories),
        rounds=spec.rounds,
        local_epochs=spec.local_training.epochs,
        aggregator_jurisdiction=spec.aggregator.jurisdiction,
        sites=[SiteFacts(p.site_id, p.jurisdiction) for p in spec.participants] if sites is None else list(sites),
        noise_multiplier=spec.privacy.noise_multiplier,
        max_grad_norm=spec.privacy.max_grad_norm,
        delta=spec.privacy.delta,
        secure_aggregation=False,
        ethics_approval_ref=spec.approvals.ethics_board_ref,
        sandbox_plan_id=spec.approvals.sandbox_plan_id,
        strategy=spec.strategy.name,
    )
