"""Pre-flight of a trial against its sites' policies: every denial names rule, file and value."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from policy_layer_builders import PINNED, site_policy, trial

from policies import ROW_COLUMNS, Clause, PrivacyCost, evaluate, fixed_clock, load_policies
from policies.vocabulary import VOCABULARY_SOURCE, vocabulary
from trialcore.errors import ExitCode

REPO = Path(__file__).resolve().parents[2]
DEMO_SITES = {"de-berlin": "DE", "fr-lyon": "FR", "gb-leeds": "GB", "ch-zurich": "CH"}


def _demo(monkeypatch: pytest.MonkeyPatch, at: datetime, extra: dict[str, str] | None = None) -> Any:
    monkeypatch.chdir(REPO)
    sites = {**DEMO_SITES, **(extra or {})}
    clock = fixed_clock(at)
    policies = load_policies({s: f"examples/policies/institutions/{s}.yaml" for s in sites}, clock=clock)
    return policies, trial(sites=list(sites.items())), clock


@pytest.mark.parametrize("year", [2026, 2031, 2045])
def test_demo_federation_is_permitted_in_any_year(monkeypatch: pytest.MonkeyPatch, year: int) -> None:
    """The shipped demo federation passes pre-flight whatever year it is run in."""
    policies, facts, clock = _demo(monkeypatch, datetime(year, 3, 1, tzinfo=UTC))
    result = evaluate(facts, policies, clock=clock)
    assert not result.refused, result.rows(include_permits=False)
    assert len(result.decisions) == len(DEMO_SITES) * (len(Clause) - 1)


@pytest.mark.parametrize("redline", sorted(vocabulary().redlines))
def test_redline_purpose_is_refused_by_every_site(monkeypatch: pytest.MonkeyPatch, redline: str) -> None:
    """A redline purpose is denied by every site's pre-flight, naming the file that made it a redline."""
    policies, facts, clock = _demo(monkeypatch, datetime(2026, 3, 1, tzinfo=UTC))
    result = evaluate(trial(sites=facts.sites, purpose=redline), policies, clock=clock)
    denied = {d.site_id: d for d in result.denials if d.clause == Clause.PURPOSE_REDLINE}
    assert result.refused and set(denied) == set(DEMO_SITES)
    for decision in denied.values():
        assert decision.value_found == redline and decision.source_file.startswith("policies/")


def test_expired_policy_refuses_under_pinned_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """After its sunset (2020-12-31) a site's policy denies validity and the sandbox plan, naming its file."""
    policies, facts, clock = _demo(monkeypatch, datetime(2026, 3, 1, tzinfo=UTC), {"expired-example": "FR"})
    result = evaluate(facts, policies, clock=clock)
    denied = {d.clause: d for d in result.denials if d.site_id == "expired-example"}
    assert denied[Clause.VALIDITY].source_file == "examples/policies/institutions/expired-example.yaml"
    assert "expired on 2020-12-31" in denied[Clause.VALIDITY].reason
    assert denied[Clause.VALIDITY].value_found == "2026-03-01"
    assert "ended on 2020-12-31" in denied[Clause.SANDBOX_PLAN].reason
    assert "windows-disjoint" in {f.kind for f in result.findings}


def test_expired_policy_was_valid_before_its_sunset(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same expired policy permits when the pinned clock is inside its window."""
    monkeypatch.chdir(REPO)
    clock = fixed_clock(datetime(2020, 6, 1, tzinfo=UTC))
    policies = load_policies({"x": "examples/policies/institutions/expired-example.yaml"}, clock=clock)
    result = evaluate(trial(sites=[("x", "FR")]), policies, clock=clock)
    assert not result.refused, result.rows(include_permits=False)


def test_not_yet_valid_policy_refuses(tmp_path: Path) -> None:
    """Before valid_from a policy denies validity, naming the file and the start date."""
    policies = {"site": site_policy(tmp_path, institution={"validity": {"valid_from": "2027-01-01"}})}
    (denial,) = evaluate(trial(), policies, clock=PINNED).denials
    assert (denial.clause, denial.value_found) == (Clause.VALIDITY, "2026-06-01")
    assert "not yet valid" in denial.reason and "2027-01-01" in denial.reason
    assert denial.source_file == f"{tmp_path}/site/institutions/site.yaml"


def test_site_forbidding_the_aggregator_jurisdiction_is_infeasible(monkeypatch: pytest.MonkeyPatch) -> None:
    """A US-only site in a DE-aggregated trial denies the transfer and the trial is reported infeasible."""
    policies, facts, clock = _demo(monkeypatch, datetime(2026, 3, 1, tzinfo=UTC), {"us-boston": "US"})
    result = evaluate(facts, policies, clock=clock)
    (denial,) = [d for d in result.denials if d.clause == Clause.TRANSFER]
    assert (denial.site_id, denial.value_found, denial.allowed) == ("us-boston", "DE", "[US]")
    assert denial.source_file == "examples/policies/institutions/us-boston.yaml"
    kinds = {f.kind for f in result.findings}
    assert {"aggregator-jurisdiction-forbidden", "no-common-aggregator-jurisdiction"} <= kinds


def _denial(
    tmp_path: Path,
    facts: dict[str, Any],
    *,
    institution: dict[str, Any] | None = None,
    root: dict[str, Any] | None = None,
) -> Any:
    policies = {"site": site_policy(tmp_path, institution=institution or {}, root=root or {})}
    return evaluate(trial(**{"max_grad_norm": 0.5, **facts}), policies, clock=PINNED).denials


INSTITUTION = "{tmp}/site/institutions/site.yaml"
ROOT_FILE = "{tmp}/site/root.yaml"
LIMITS = {
    "training": {"max_rounds": 20, "max_local_epochs": 2},
    "privacy": {"epsilon_budget": 3.0, "delta": 1e-6, "min_noise_multiplier": 0.8, "max_clipping_norm": 0.9},
    "ai": {"allowed_risk_tiers": ["high"]},
}


@pytest.mark.parametrize(
    ("facts", "clause", "found", "source"),
    [
        ({"rounds": 21}, Clause.MAX_ROUNDS, "21", INSTITUTION),
        ({"local_epochs": 3}, Clause.MAX_LOCAL_EPOCHS, "3", INSTITUTION),
        ({"noise_multiplier": 0.5, "max_grad_norm": 0.5}, Clause.NOISE_FLOOR, "0.5", INSTITUTION),
        ({"max_grad_norm": 2.0, "noise_multiplier": 1.0}, Clause.CLIPPING_CEILING, "2.0", INSTITUTION),
        ({"max_grad_norm": None}, Clause.CLIPPING_CEILING, "none", INSTITUTION),
        (
            {"privacy_costs": {"site": PrivacyCost("rdp", 2.9, 3.5, 3.5, 3.0, 8.0, 0, 10)}},
            Clause.PRIVACY_BUDGET,
            "trial 3.5; dataset 2.9 spent -> 3.5 after (rdp)",
            INSTITUTION,
        ),
        ({"delta": 1e-5}, Clause.PRIVACY_DELTA, "1e-05", INSTITUTION),
        ({"ai_risk_tier": "limited"}, Clause.RISK_TIER, "limited", INSTITUTION),
        ({"ai_risk_tier": "unacceptable"}, Clause.RISK_TIER, "unacceptable", VOCABULARY_SOURCE),
        ({"data_categories": ["administrative"]}, Clause.DATA_CATEGORY, "[administrative]", ROOT_FILE),
        ({"purpose": "product-safety"}, Clause.PURPOSE_ALLOWED, "product-safety", ROOT_FILE),
        ({"purpose": "not-a-term"}, Clause.PURPOSE_ALLOWED, "not-a-term", VOCABULARY_SOURCE),
        ({"aggregator_jurisdiction": "US"}, Clause.TRANSFER, "US", ROOT_FILE),
        ({"ethics_approval_ref": None}, Clause.APPROVALS, "none", ROOT_FILE),
        ({"sandbox_plan_id": None}, Clause.SANDBOX_PLAN, "none", ROOT_FILE),
        ({"sites": [("site", "FR")]}, Clause.JURISDICTION, "FR", "{tmp}/site/countries/xx.yaml"),
    ],
)
def test_each_clause_denial_names_rule_file_and_value(
    tmp_path: Path, facts: dict[str, Any], clause: Clause, found: str, source: str
) -> None:
    """Breaking one limit gives exactly one denial naming that clause, the value and the file that set it."""
    denials = _denial(tmp_path, facts, institution=LIMITS)
    assert [(d.clause, d.value_found, d.source_file) for d in denials] == [
        (clause.value, found, source.format(tmp=tmp_path))
    ]
    assert denials[0].reason and denials[0].allowed


def test_no_differential_privacy_is_denied(tmp_path: Path) -> None:
    """A trial without DP noise is denied by the noise floor and by the (unbounded) privacy budget."""
    clauses = {d.clause for d in _denial(tmp_path, {"noise_multiplier": None})}
    assert clauses == {Clause.NOISE_FLOOR.value, Clause.PRIVACY_BUDGET.value}


def test_secure_aggregation_required(tmp_path: Path) -> None:
    """A site requiring secure aggregation denies a trial without it."""
    (denial,) = _denial(tmp_path, {}, institution={"privacy": {"secure_aggregation_required": True}})
    assert denial.clause == Clause.SECURE_AGGREGATION and denial.value_found == "false"


def test_special_category_without_legal_basis(tmp_path: Path) -> None:
    """Health data at a site whose policy names no legal basis for it is denied."""
    (denial,) = _denial(tmp_path, {}, root={"data": {"special_category_legal_basis": None}})
    assert (denial.clause, denial.value_found) == (Clause.LEGAL_BASIS, "[health]")


def test_site_without_policy_is_denied(tmp_path: Path) -> None:
    """A trial site with no loaded policy is denied rather than silently skipped."""
    policies = {"site": site_policy(tmp_path)}
    result = evaluate(trial(sites=[("site", "DE"), ("ghost", "DE")]), policies, clock=PINNED)
    assert [(d.site_id, d.clause) for d in result.denials] == [("ghost", "policy")]


def test_min_cohort_is_reported(tmp_path: Path) -> None:
    """Pre-flight reports each site's minimum cohort size for released statistics."""
    result = evaluate(trial(), {"site": site_policy(tmp_path)}, clock=PINNED)
    (cohort,) = [d for d in result.decisions if d.clause == Clause.MIN_COHORT]
    assert cohort.permit and cohort.allowed == ">= 11"


def test_result_renders_as_json_rows_and_refusal(tmp_path: Path) -> None:
    """A refused result renders as one JSON document, table rows, and a PolicyRefusal exiting 3."""
    result = evaluate(trial(rounds=500), {"site": site_policy(tmp_path)}, clock=PINNED)
    doc = json.loads(json.dumps(result.as_json()))
    assert doc["refused"] is True and doc["trial_id"] == "demo"
    assert doc["summary"] == {"sites": 1, "sites_denying": ["site"], "denials": 1, "findings": 0}
    assert set(doc["decisions"][0]) == {
        "site_id",
        "clause",
        "permit",
        "reason",
        "source_file",
        "value_found",
        "allowed",
    }
    assert doc["combined_policy"]["fields"]["training.max_rounds"] == {
        "value": 100,
        "source": f"{tmp_path}/site/root.yaml",
    }
    assert all(len(row) == len(ROW_COLUMNS) for row in result.rows())
    error = result.refusal()
    assert error.exit_code is ExitCode.REFUSED_BY_POLICY
    assert error.lines() == [
        f"{tmp_path}/site/root.yaml: site.max-rounds: found 500; rounds 500 exceeds the limit 100 (allowed: <= 100)"
    ]


def test_naive_clock_is_rejected(tmp_path: Path) -> None:
    """A clock returning a naive datetime is a programming error, caught before any decision."""
    with pytest.raises(ValueError, match="naive"):
        evaluate(trial(), {"site": site_policy(tmp_path)}, clock=lambda: datetime(2026, 1, 1))
