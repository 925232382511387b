"""A handler's use of the site's privacy ledger: charge or refuse (audited), and the figures a reply carries.

Every release a handler makes is charged here, to the one ledger of the site's dataset
(:func:`participants.privacy_plan.ledger_path`): a DP-SGD round (:func:`charged`) or a Gaussian
release of clipped sums (:func:`released`, through :mod:`participants.accounted_release`). A
charge that would pass a budget, or a ledger that cannot be charged, becomes the audited refusal
the coordinator receives; nothing is released then. A reply after a charge carries the ledger's
figures (:func:`privacy_metrics`): epsilon on the dataset, for the trial and for each release kind
of the trial alone, all at the trial's delta.
"""

from __future__ import annotations

import hashlib
import logging

import numpy.typing as npt
from flwr.app import Message

from participants.accounted_release import Released, noise_generator, release_context, release_rows
from participants.privacy_ledger import Charge, PlannedCharge, PrivacyLedger, ReleaseKind, epsilon_by_release
from participants.privacy_plan import ledger_path
from participants.site_replies import refusal
from participants.site_turn import SiteTurn
from trialcore import wire
from trialcore.errors import BudgetExhausted, SandboxError

logger = logging.getLogger(__name__)


def ledger_of(turn: SiteTurn) -> PrivacyLedger:
    """The ledger of the site's dataset (raises SiteConfigError for a real site without a state folder)."""
    return PrivacyLedger(
        ledger_path(turn.site, trial_id=turn.spec.trial_id, run_id=turn.run_id, settings=turn.settings)
    )


def charged(msg: Message, turn: SiteTurn, planned: PlannedCharge) -> Charge | Message:
    """Charge ``planned`` to the site's ledger (durably), or the audited refusal if it cannot be paid."""
    try:
        ledger = ledger_of(turn)
        return ledger.charge(planned)
    except (SandboxError, OSError) as err:
        return _refused(msg, turn, err, server_round=planned.round, release=planned.release)


def released(
    msg: Message,
    turn: SiteTurn,
    rows: npt.ArrayLike,
    *,
    l2_sensitivity: float,
    noise_multiplier: float,
    kind: ReleaseKind,
    statistic: str,
    server_round: int,
) -> Released | Message:
    """Release the clipped sums of ``rows`` (one per record) with Gaussian noise, charged first; or the audited refusal."""
    # Seeded only at a simulated site (reproducible demo); the spec hash makes every trial's noise its own.
    label = f"{turn.spec_hash}/{server_round}/{kind}/{statistic}/{turn.site.config.site_id}"
    seed = int.from_bytes(hashlib.sha256(label.encode("utf-8")).digest()[:8], "big")
    try:
        return release_rows(
            rows,
            l2_sensitivity=l2_sensitivity,
            noise_multiplier=noise_multiplier,
            kind=kind,
            statistic=statistic,
            ledger=ledger_of(turn),
            context=release_context(
                turn.site, turn.spec, turn.policy, spec_hash=turn.spec_hash, server_round=server_round
            ),
            rng=noise_generator(turn.site, seed=seed),
        )
    except (SandboxError, OSError) as err:
        return _refused(msg, turn, err, server_round=server_round, release=kind)


def privacy_metrics(turn: SiteTurn, charge: Charge) -> dict[str, float]:
    """The ledger's figures after ``charge``, for the coordinator to publish (epsilon per release kind too)."""
    charges = ledger_of(turn).charges()
    by_kind = epsilon_by_release(charges, trial_id=charge.trial_id, delta=charge.delta, accountant=charge.accountant)
    return {
        wire.EPSILON_SPENT: charge.cumulative_epsilon,
        wire.EPSILON_BUDGET: charge.epsilon_budget,
        wire.TRIAL_EPSILON: charge.trial_epsilon,
        wire.TRIAL_EPSILON_BUDGET: charge.trial_epsilon_budget,
        wire.PRIVACY_DELTA: charge.delta,
        **{wire.TRIAL_EPSILON_BY_RELEASE[kind]: value for kind, value in by_kind.items()},
    }


def _refused(msg: Message, turn: SiteTurn, err: Exception, *, server_round: int, release: ReleaseKind) -> Message:
    site_id = turn.site.config.site_id
    if isinstance(err, BudgetExhausted):
        reason = f"{wire.BUDGET_EXHAUSTED_PREFIX} site {site_id}: " + "; ".join(p.allowed for p in err.problems)
        turn.record(
            "privacy-budget-exhausted",
            {"round": server_round, "release": release, "reason": reason, "ledger_charges": _charges(turn)},
        )
        logger.warning("%s", reason)
        return refusal(msg, reason)
    # A damaged or unwritable ledger, or settings no accountant prices.
    detail = "; ".join(err.lines()) if isinstance(err, SandboxError) else f"{type(err).__name__}: {err}"
    reason = f"{wire.LEDGER_ERROR_PREFIX} site {site_id} cannot charge its privacy ledger: {detail}"
    turn.record("privacy-ledger-error", {"round": server_round, "release": release, "reason": reason})
    logger.error("%s", reason)
    return refusal(msg, reason)


def _charges(turn: SiteTurn) -> int | None:
    try:
        return len(ledger_of(turn).charges())
    except (SandboxError, OSError):
        return None
