"""Composing the sites of a trial: strictest wins per field, provenance kept, infeasibility found."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from policy_layer_builders import PINNED, site_policy, trial

from policies import ComposedPolicy, compose_sites, evaluate

# (path, site a's institution layer, site b's, composed value, which site's file wins)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], Any, str]] = [
    (
        "purposes.allowed",
        {"purposes": {"allowed": ["treatment-research", "epidemiology"]}},
        {"purposes": {"allowed": ["treatment-research", "public-health-statistics"]}},
        frozenset({"treatment-research"}),
        "b",
    ),
    (
        "ai.allowed_risk_tiers",
        {"ai": {"allowed_risk_tiers": ["minimal", "high"]}},
        {"ai": {"allowed_risk_tiers": ["limited", "high"]}},
        frozenset({"high"}),
        "b",
    ),
    ("data.allowed_categories", {"data": {"allowed_categories": ["health"]}}, {}, frozenset({"health"}), "a"),
    ("data.min_cohort_size", {}, {"data": {"min_cohort_size": 20}}, 20, "b"),
    ("data.count_granularity", {"data": {"count_granularity": 50}}, {"data": {"count_granularity": 20}}, 50, "a"),
    ("privacy.epsilon_budget", {"privacy": {"epsilon_budget": 4.0}}, {"privacy": {"epsilon_budget": 6.0}}, 4.0, "a"),
    ("privacy.delta", {"privacy": {"delta": 1e-6}}, {"privacy": {"delta": 1e-7}}, 1e-7, "b"),
    (
        "privacy.min_noise_multiplier",
        {"privacy": {"min_noise_multiplier": 0.8}},
        {"privacy": {"min_noise_multiplier": 0.6}},
        0.8,
        "a",
    ),
    (
        "privacy.max_clipping_norm",
        {"privacy": {"max_clipping_norm": 0.9}},
        {"privacy": {"max_clipping_norm": 0.7}},
        0.7,
        "b",
    ),
    ("privacy.secure_aggregation_required", {}, {"privacy": {"secure_aggregation_required": True}}, True, "b"),
    ("privacy.max_update_l2_norm", {}, {"privacy": {"max_update_l2_norm": 5.0}}, 5.0, "b"),
    (
        "privacy.max_update_l2_norm",
        {"privacy": {"max_update_l2_norm": 3.0}},
        {"privacy": {"max_update_l2_norm": 5.0}},
        3.0,
        "a",
    ),
    (
        "transfers.allowed_aggregator_jurisdictions",
        {"transfers": {"allowed_aggregator_jurisdictions": ["DE", "FR"]}},
        {"transfers": {"allowed_aggregator_jurisdictions": ["DE", "GB"]}},
        frozenset({"DE"}),
        "b",
    ),
    ("training.max_rounds", {"training": {"max_rounds": 30}}, {"training": {"max_rounds": 40}}, 30, "a"),
    ("training.max_local_epochs", {"training": {"max_local_epochs": 3}}, {"training": {"max_local_epochs": 2}}, 2, "b"),
    (
        "validity.valid_from",
        {"validity": {"valid_from": "2024-01-01"}},
        {"validity": {"valid_from": "2023-01-01"}},
        date(2024, 1, 1),
        "a",
    ),
    (
        "validity.valid_until",
        {"validity": {"valid_until": "2030-01-01"}},
        {"validity": {"valid_until": "2029-01-01"}},
        date(2029, 1, 1),
        "b",
    ),
    (
        "approvals.sandbox_plan_start",
        {"approvals": {"sandbox_plan_start": "2026-01-01"}},
        {"approvals": {"sandbox_plan_start": "2026-02-01"}},
        date(2026, 2, 1),
        "b",
    ),
    (
        "approvals.sandbox_plan_end",
        {"approvals": {"sandbox_plan_end": "2027-01-01"}},
        {"approvals": {"sandbox_plan_end": "2028-01-01"}},
        date(2027, 1, 1),
        "a",
    ),
]


def _two_sites(tmp_path: Path, a: dict[str, Any], b: dict[str, Any]) -> dict[str, ComposedPolicy]:
    return {"a": site_policy(tmp_path, "a", institution=a), "b": site_policy(tmp_path, "b", institution=b)}


@pytest.mark.parametrize(("path", "a", "b", "expected", "winner"), CASES)
def test_strictest_wins_with_provenance(
    tmp_path: Path, path: str, a: dict[str, Any], b: dict[str, Any], expected: Any, winner: str
) -> None:
    """Across sites each field takes the strictest value, and provenance names the file that set it."""
    combined = compose_sites(_two_sites(tmp_path, a, b)).policy
    assert combined.value(path) == expected
    assert combined.source_of(path) == f"{tmp_path}/{winner}/institutions/{winner}.yaml"


def test_redlines_are_the_union(tmp_path: Path) -> None:
    """A redline any site adds applies to the whole trial, sourced to that site's file."""
    combined = compose_sites(_two_sites(tmp_path, {}, {"purposes": {"redlines": ["commercial-marketing"]}})).policy
    assert "commercial-marketing" in combined.redline_purposes
    assert combined.term_source("purposes.redlines", "commercial-marketing") == f"{tmp_path}/b/institutions/b.yaml"


def test_why_not_names_the_excluding_site(tmp_path: Path) -> None:
    """For a purpose missing from the composition, provenance names the site file that excluded it."""
    policies = _two_sites(tmp_path, {}, {"purposes": {"allowed": ["treatment-research"]}})
    combined = compose_sites(policies).policy
    assert combined.term_source("purposes.allowed", "epidemiology") == f"{tmp_path}/b/institutions/b.yaml"


def test_compatible_sites_have_no_findings(tmp_path: Path) -> None:
    """Sites whose policies can all be met together produce no infeasibility finding."""
    assert compose_sites(_two_sites(tmp_path, {}, {})).findings == ()


@pytest.mark.parametrize(
    ("kind", "a", "b"),
    [
        (
            "no-common-purpose",
            {"purposes": {"allowed": ["epidemiology"]}},
            {"purposes": {"allowed": ["treatment-research"]}},
        ),
        ("no-common-risk-tier", {"ai": {"allowed_risk_tiers": ["minimal"]}}, {"ai": {"allowed_risk_tiers": ["high"]}}),
        (
            "no-common-data-category",
            {"data": {"allowed_categories": ["health"]}},
            {"data": {"allowed_categories": ["demographic"]}},
        ),
        (
            "no-common-aggregator-jurisdiction",
            {"transfers": {"allowed_aggregator_jurisdictions": ["DE"]}},
            {"transfers": {"allowed_aggregator_jurisdictions": ["GB"]}},
        ),
        ("windows-disjoint", {"validity": {"valid_until": "2024-12-31"}}, {"validity": {"valid_from": "2025-01-01"}}),
        (
            "windows-disjoint",
            {"approvals": {"sandbox_plan_end": "2025-06-30"}},
            {"validity": {"valid_from": "2025-07-01"}},
        ),
        (
            "windows-disjoint",
            {"approvals": {"sandbox_plan_start": "2026-01-01"}},
            {"approvals": {"sandbox_plan_end": "2025-12-31"}},
        ),
        (
            "conflicting-approvals",
            {"approvals": {"sandbox_plan_id": "SBX-1"}},
            {"approvals": {"sandbox_plan_id": "SBX-2"}},
        ),
    ],
)
def test_infeasible_combinations_are_reported(tmp_path: Path, kind: str, a: dict[str, Any], b: dict[str, Any]) -> None:
    """Each way two sites cannot be satisfied together is a finding naming both sites' files."""
    findings = compose_sites(_two_sites(tmp_path, a, b)).findings
    assert [f.kind for f in findings] == [kind]
    assert set(findings[0].sources) == {f"{tmp_path}/a/institutions/a.yaml", f"{tmp_path}/b/institutions/b.yaml"}


def test_mechanism_is_needed_for_a_reachable_aggregator(tmp_path: Path) -> None:
    """An allowed destination without a transfer mechanism is not reachable from a foreign site."""
    policies = _two_sites(tmp_path, {}, {"transfers": {"transfer_mechanisms": {"DE": "intra-eea"}}})
    combined = compose_sites({"b": policies["b"], "a": policies["a"]}).policy
    assert combined.allowed_aggregator_jurisdictions == frozenset({"DE"})
    assert combined.term_source("transfers.allowed_aggregator_jurisdictions", "GB") == (
        f"{tmp_path}/b/institutions/b.yaml"
    )


def test_thousand_sites_compose_to_the_strictest_and_preflight(tmp_path: Path) -> None:
    """1,000 site policies compose to the strictest budget and pre-flight passes (its speed is measured by make bench)."""
    base = site_policy(tmp_path, "base")
    policies = {
        f"site-{i:04d}": dataclasses.replace(
            base,
            name=f"site-{i:04d}",
            epsilon_budget=8.0 - (i % 7) * 0.5,
            provenance={**base.provenance, "privacy.epsilon_budget": f"s{i}.yaml"},
        )
        for i in range(1000)
    }
    facts = trial(sites=[(site, "DE") for site in policies])
    composed = compose_sites(policies)
    result = evaluate(facts, policies, clock=PINNED)
    assert composed.policy.epsilon_budget == 5.0 and not result.refused
    assert composed.policy.provenance["privacy.epsilon_budget"] == "s6.yaml", (
        "the strictest site is named as the source"
    )
