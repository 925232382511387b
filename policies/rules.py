"""The one table saying, for every policy field, which direction is *stricter*.

Both ways of combining policies read this table: layering along one site's chain
(:mod:`policies.layering`, a lower layer may only tighten) and composing across the
sites of a trial (:mod:`policies.composition`, strictest wins).

========  ===========================================  =====================================
kind      stricter means                               across sites
========  ===========================================  =====================================
SUBSET    fewer terms (lower layer lists a subset)     intersection
SUPERSET  more terms (lower layer adds; union)         union
CEILING   smaller number (``None`` = no limit)         minimum
FLOOR     larger number                                maximum
REQUIRE   ``True`` (once required, stays required)     any
START     later date (``None`` = since ever)           latest
END       earlier date (``None`` = open-ended)         earliest
LABEL     cannot change once set                       the common value, else ``None``
PINNED    cannot change once set                       the common value; a conflict is a finding
SUBMAP    fewer keys (no new destination)              per-key union of values (informative)
REFINE    lower layer may add keys or restate values   keys every site has (informative)
========  ===========================================  =====================================
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date
from typing import Any

from policies.schema import STRATEGY_NAMES, PolicyLayer

__all__ = ["DEFAULT_SOURCE", "FIELD_RULES", "RULES_BY_PATH", "FieldRule", "Kind", "render"]

DEFAULT_SOURCE = "<built-in default>"
"""Provenance of a value no layer set (e.g. ``data.min_cohort_size`` = 11)."""


class Kind(enum.Enum):
    """Which direction of change is a tightening (see the module table)."""

    SUBSET = "subset"
    SUPERSET = "superset"
    CEILING = "ceiling"
    FLOOR = "floor"
    REQUIRE = "require"
    START = "start"
    END = "end"
    LABEL = "label"
    PINNED = "pinned"
    SUBMAP = "submap"
    REFINE = "refine"


@dataclass(frozen=True)
class FieldRule:
    """One policy field: where it sits in the file, its attribute when composed, its kind.

    Attributes
    ----------
    path:
        Dotted key in a policy file, e.g. ``"privacy.epsilon_budget"``; also the key of provenance.
    attr:
        Attribute name on :class:`~policies.composed.ComposedPolicy`.
    kind:
        Which direction is stricter.
    required_at_root:
        Whether a root layer (no ``extends``) must set it.
    default:
        Value when no layer sets it (ignored when ``required_at_root``).
    """

    path: str
    attr: str
    kind: Kind
    required_at_root: bool = False
    default: Any = None

    def read(self, layer: PolicyLayer) -> Any:
        """The raw value ``layer`` sets for this field, or ``None`` (= inherit)."""
        section, _, key = self.path.partition(".")
        if not key:
            return getattr(layer, section)
        return getattr(getattr(layer, section), key)

    def normalise(self, raw: Any) -> Any:
        """Convert a file value to its composed form (tuples → frozensets, dicts copied)."""
        if self.kind in (Kind.SUBSET, Kind.SUPERSET):
            return frozenset(raw)
        if self.kind in (Kind.SUBMAP, Kind.REFINE):
            return dict(raw)
        return raw


FIELD_RULES: tuple[FieldRule, ...] = (
    FieldRule("region", "region", Kind.LABEL),
    FieldRule("jurisdiction", "jurisdiction", Kind.LABEL),
    FieldRule("purposes.allowed", "allowed_purposes", Kind.SUBSET, required_at_root=True),
    FieldRule("purposes.redlines", "redline_purposes", Kind.SUPERSET, default=frozenset()),
    FieldRule("ai.allowed_risk_tiers", "allowed_risk_tiers", Kind.SUBSET, required_at_root=True),
    FieldRule("data.allowed_categories", "allowed_data_categories", Kind.SUBSET, required_at_root=True),
    FieldRule("data.special_category_legal_basis", "special_category_legal_basis", Kind.REFINE, default={}),
    FieldRule("data.min_cohort_size", "min_cohort_size", Kind.FLOOR, default=11),
    FieldRule("data.count_granularity", "count_granularity", Kind.FLOOR, default=10),
    FieldRule("privacy.epsilon_budget", "epsilon_budget", Kind.CEILING, required_at_root=True),
    FieldRule("privacy.delta", "delta", Kind.CEILING, required_at_root=True),
    FieldRule("privacy.min_noise_multiplier", "min_noise_multiplier", Kind.FLOOR, required_at_root=True),
    FieldRule("privacy.max_clipping_norm", "max_clipping_norm", Kind.CEILING, required_at_root=True),
    FieldRule("privacy.secure_aggregation_required", "secure_aggregation_required", Kind.REQUIRE, default=False),
    FieldRule("privacy.max_update_l2_norm", "max_update_l2_norm", Kind.CEILING),
    FieldRule(
        "transfers.allowed_aggregator_jurisdictions",
        "allowed_aggregator_jurisdictions",
        Kind.SUBSET,
        required_at_root=True,
    ),
    FieldRule("transfers.transfer_mechanisms", "transfer_mechanisms", Kind.SUBMAP, default={}),
    FieldRule("training.max_rounds", "max_rounds", Kind.CEILING, required_at_root=True),
    FieldRule("training.max_local_epochs", "max_local_epochs", Kind.CEILING, required_at_root=True),
    FieldRule("training.allowed_strategies", "allowed_strategies", Kind.SUBSET, default=frozenset(STRATEGY_NAMES)),
    FieldRule("validity.valid_from", "valid_from", Kind.START),
    FieldRule("validity.valid_until", "valid_until", Kind.END),
    FieldRule("approvals.ethics_approval_required", "ethics_approval_required", Kind.REQUIRE, default=False),
    FieldRule("approvals.ethics_approval_ref", "ethics_approval_ref", Kind.PINNED),
    FieldRule("approvals.sandbox_plan_required", "sandbox_plan_required", Kind.REQUIRE, default=False),
    FieldRule("approvals.sandbox_plan_id", "sandbox_plan_id", Kind.PINNED),
    FieldRule("approvals.sandbox_plan_start", "sandbox_plan_start", Kind.START),
    FieldRule("approvals.sandbox_plan_end", "sandbox_plan_end", Kind.END),
    FieldRule("enforcement.exclude_after_violations", "exclude_after_violations", Kind.CEILING, default=4),
    FieldRule("enforcement.exclusion_rounds", "exclusion_rounds", Kind.FLOOR, default=2),
    FieldRule("enforcement.suspend_after_violations", "suspend_after_violations", Kind.CEILING, default=6),
    FieldRule("enforcement.terminate_after_violations", "terminate_after_violations", Kind.CEILING, default=8),
    FieldRule("enforcement.reporting_deadline_hours", "reporting_deadline_hours", Kind.CEILING, default=72),
)

RULES_BY_PATH: dict[str, FieldRule] = {rule.path: rule for rule in FIELD_RULES}


def render(value: Any) -> str:
    """Render a policy value for a message: dates as ISO, sets sorted, ``None`` as 'none'."""
    if value is None:
        return "none"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (frozenset, set, tuple, list)):
        return "[" + ", ".join(sorted(str(v) for v in value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(value.items())) + "}"
    return str(value)
