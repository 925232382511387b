"""What a pre-flight check says: per-site decisions, cross-site findings, the whole result.

A :class:`Decision` is one clause of one site's policy applied to one trial; a denial
names the clause, the file the limiting value came from, the value that failed and what
was allowed. A :class:`Finding` is a cross-site infeasibility that no single site's
clause shows (no purpose every site allows, windows that never overlap, ...). A trial is
refused if any decision denies or any finding exists.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from policies.composed import ComposedPolicy
from trialcore.errors import PolicyRefusal, Problem
from trialcore.facts import PrivacyCost

__all__ = ["ROW_COLUMNS", "Clause", "Decision", "Finding", "PreflightResult"]


class Clause(enum.StrEnum):
    """The rules a pre-flight check applies to every site, in the order reported."""

    POLICY = "policy"
    JURISDICTION = "jurisdiction"
    VALIDITY = "validity"
    PURPOSE_ALLOWED = "purpose-allowed"
    PURPOSE_REDLINE = "purpose-redline"
    RISK_TIER = "risk-tier"
    DATA_CATEGORY = "data-category"
    LEGAL_BASIS = "legal-basis"
    MAX_ROUNDS = "max-rounds"
    MAX_LOCAL_EPOCHS = "max-local-epochs"
    STRATEGY = "strategy"
    NOISE_FLOOR = "noise-floor"
    CLIPPING_CEILING = "clipping-ceiling"
    PRIVACY_BUDGET = "privacy-budget"
    PRIVACY_DELTA = "privacy-delta"
    SECURE_AGGREGATION = "secure-aggregation"
    TRANSFER = "transfer"
    APPROVALS = "ethics-approval"
    """The ethics board approval the policy requires (the signed approval of the spec is ``approval``)."""
    SANDBOX_PLAN = "sandbox-plan"
    MIN_COHORT = "min-cohort"


@dataclass(frozen=True, slots=True)
class Decision:
    """One clause of one site's policy applied to the trial.

    Attributes
    ----------
    site_id:
        The site whose policy decided.
    clause:
        The rule applied (a :class:`Clause` value).
    permit:
        Whether this clause lets the trial run at this site.
    reason:
        One line a researcher or regulator can act on.
    source_file:
        The policy file that set the deciding value (empty if none applies).
    value_found:
        The trial's value, rendered.
    allowed:
        What the policy allows, rendered.
    """

    site_id: str
    clause: str
    permit: bool
    reason: str
    source_file: str
    value_found: str
    allowed: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "site_id": self.site_id,
            "clause": self.clause,
            "permit": self.permit,
            "reason": self.reason,
            "source_file": self.source_file,
            "value_found": self.value_found,
            "allowed": self.allowed,
        }

    def problem(self) -> Problem:
        """This denial as a one-line :class:`Problem` (file: site.clause: found ...; reason)."""
        return Problem(
            self.source_file or "(no policy file)",
            f"{self.site_id}.{self.clause}",
            self.value_found,
            f"{self.reason} (allowed: {self.allowed})",
        )


@dataclass(frozen=True, slots=True)
class Finding:
    """A cross-site infeasibility: the sites' policies cannot all be met at once.

    Attributes
    ----------
    kind:
        Short kebab-case name, e.g. ``no-common-purpose``, ``windows-disjoint``.
    reason:
        One line saying what cannot be satisfied and by whom.
    sites:
        The sites involved (all of them when an intersection is empty).
    sources:
        The policy files whose values conflict.
    """

    kind: str
    reason: str
    sites: tuple[str, ...]
    sources: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "reason": self.reason, "sites": list(self.sites), "sources": list(self.sources)}

    def problem(self) -> Problem:
        return Problem(", ".join(self.sources) or "(trial)", self.kind, "", self.reason)


ROW_COLUMNS: tuple[str, ...] = ("site", "clause", "decision", "value", "allowed", "source", "reason")
"""Column headers of :meth:`PreflightResult.rows`."""


@dataclass(frozen=True)
class PreflightResult:
    """Every decision for every site of one trial, plus cross-site findings.

    ``combined`` is the strictest-wins composition of all sites' policies (``None`` when
    no site had a policy); its provenance names, per field, the file that set the winner.
    """

    trial_id: str
    evaluated_at: datetime
    decisions: tuple[Decision, ...]
    findings: tuple[Finding, ...]
    combined: ComposedPolicy | None
    privacy_costs: Mapping[str, PrivacyCost] = field(default_factory=dict)
    """The privacy dry run per site (empty when not computed)."""

    @property
    def refused(self) -> bool:
        """True if any site denies any clause or any cross-site finding exists."""
        return bool(self.findings) or any(not d.permit for d in self.decisions)

    @property
    def denials(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if not d.permit)

    def for_site(self, site_id: str) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if d.site_id == site_id)

    def rows(self, *, include_permits: bool = True) -> list[tuple[str, ...]]:
        """Table rows matching :data:`ROW_COLUMNS`; findings come last with site ``*``."""
        rows: list[tuple[str, ...]] = [
            (d.site_id, d.clause, "permit" if d.permit else "DENY", d.value_found, d.allowed, d.source_file, d.reason)
            for d in self.decisions
            if include_permits or not d.permit
        ]
        rows += [("*", f.kind, "INFEASIBLE", "", "", ", ".join(f.sources), f.reason) for f in self.findings]
        return rows

    def as_json(self) -> dict[str, Any]:
        """One JSON document: verdict, decisions, findings and the combined policy."""
        sites = sorted({d.site_id for d in self.decisions})
        denied = sorted({d.site_id for d in self.decisions if not d.permit})
        return {
            "trial_id": self.trial_id,
            "evaluated_at": self.evaluated_at.isoformat(),
            "refused": self.refused,
            "summary": {
                "sites": len(sites),
                "sites_denying": denied,
                "denials": len(self.denials),
                "findings": len(self.findings),
            },
            "decisions": [d.as_dict() for d in self.decisions],
            "findings": [f.as_dict() for f in self.findings],
            "combined_policy": None if self.combined is None else self.combined.as_json(),
            "privacy_dry_run": {site: cost.as_dict() for site, cost in sorted(self.privacy_costs.items())},
        }

    def refusal(self) -> PolicyRefusal:
        """A :class:`PolicyRefusal` (exit 3) listing every denial and finding, for the CLI to raise."""
        problems = [d.problem() for d in self.denials] + [f.problem() for f in self.findings]
        return PolicyRefusal(f"Trial {self.trial_id!r} is refused by policy", problems)
