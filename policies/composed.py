"""The result of combining policy layers: one effective policy, with provenance.

A :class:`ComposedPolicy` is what pre-flight checks read. It is a plain frozen
dataclass (not a pydantic model) so composing and checking 1,000 sites re-validates
nothing: the layers were validated once, when loaded.

Provenance answers "why not": ``provenance[path]`` names the file that set the winning
value of each field (keys are the dotted paths of a policy file, see
:data:`policies.rules.FIELD_RULES`); for set- and mapping-valued fields,
``term_sources[path][term]`` names the file that excluded a term (allowed sets) or
added it (redlines, legal bases, transfer mechanisms). The key ``"*"`` holds the file
that first defined an allowed set, which excluded every term it did not list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from policies.rules import FIELD_RULES, RULES_BY_PATH

__all__ = ["ComposedPolicy"]


@dataclass(frozen=True, slots=True)
class ComposedPolicy:
    """The effective policy of one site (or, composed across sites, of a whole trial).

    Units: ``epsilon_budget`` and ``delta`` are (epsilon, delta)-DP per dataset over the
    validity window; ``min_noise_multiplier`` is noise std / clipping norm;
    ``max_clipping_norm`` is an L2 norm; ``max_update_l2_norm`` is the L2 norm of a site's
    update minus the global model, over all arrays (``None`` = unbounded); ``min_cohort_size``
    counts people; ``count_granularity`` (records) is what every released record count is rounded
    down to a multiple of (the largest wins); dates are UTC days, inclusive at both ends, ``None`` meaning unbounded.

    Invariants: ``redline_purposes`` always contains the vocabulary redlines and never
    meets ``allowed_purposes``; ``allowed_risk_tiers`` never contains ``unacceptable``.
    """

    name: str
    title: str
    summary: str
    sources: tuple[str, ...]
    region: str | None
    jurisdiction: str | None
    allowed_purposes: frozenset[str]
    redline_purposes: frozenset[str]
    allowed_risk_tiers: frozenset[str]
    allowed_data_categories: frozenset[str]
    special_category_legal_basis: Mapping[str, str]
    min_cohort_size: int
    count_granularity: int
    epsilon_budget: float
    delta: float
    min_noise_multiplier: float
    max_clipping_norm: float
    secure_aggregation_required: bool
    max_update_l2_norm: float | None
    allowed_aggregator_jurisdictions: frozenset[str]
    transfer_mechanisms: Mapping[str, str]
    max_rounds: int
    max_local_epochs: int
    allowed_strategies: frozenset[str]
    valid_from: date | None
    valid_until: date | None
    ethics_approval_required: bool
    ethics_approval_ref: str | None
    sandbox_plan_required: bool
    sandbox_plan_id: str | None
    sandbox_plan_start: date | None
    sandbox_plan_end: date | None
    exclude_after_violations: int
    exclusion_rounds: int
    suspend_after_violations: int
    terminate_after_violations: int
    reporting_deadline_hours: int
    provenance: Mapping[str, str]
    term_sources: Mapping[str, Mapping[str, str]]

    def value(self, path: str) -> Any:
        """The composed value of the field at dotted ``path`` (e.g. ``"privacy.delta"``)."""
        return getattr(self, RULES_BY_PATH[path].attr)

    def source_of(self, path: str) -> str:
        """The file that set the winning value of the field at ``path``."""
        return self.provenance[path]

    def term_source(self, path: str, term: str) -> str:
        """The file responsible for ``term`` in a set or mapping field.

        For an allowed set (``purposes.allowed``, ``ai.allowed_risk_tiers``, ...) and a term
        *not* in it: the file that excluded it. For redlines, legal bases and transfer
        mechanisms: the file that added it. Falls back to :meth:`source_of`.
        """
        terms = self.term_sources.get(path, {})
        return terms.get(term) or terms.get("*") or self.provenance[path]

    def reachable_aggregators(self) -> frozenset[str]:
        """Aggregator jurisdictions this site can actually send updates to.

        A destination must be allowed, and unless it is the site's own jurisdiction it
        needs a transfer mechanism. With no jurisdiction set (a bare preset), every
        allowed destination counts.
        """
        if self.jurisdiction is None:
            return self.allowed_aggregator_jurisdictions
        return frozenset(
            d for d in self.allowed_aggregator_jurisdictions if d == self.jurisdiction or d in self.transfer_mechanisms
        )

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict: metadata, then every field with its value and source file."""
        return {
            "name": self.name,
            "title": self.title,
            "summary": self.summary,
            "region": self.region,
            "jurisdiction": self.jurisdiction,
            "sources": list(self.sources),
            "fields": {
                rule.path: {"value": _jsonable(getattr(self, rule.attr)), "source": self.provenance[rule.path]}
                for rule in FIELD_RULES
            },
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, (frozenset, set, tuple)):
        return sorted(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in sorted(value.items())}
    return value
