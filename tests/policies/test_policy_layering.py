"""Layering one site's chain: lower layers may only tighten, and a loosening names both files."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from policy_layer_builders import PINNED, chain

from policies import LooseningError, load_policies, load_policy
from policies.rules import DEFAULT_SOURCE
from policies.vocabulary import VOCABULARY_SOURCE

REPO = Path(__file__).resolve().parents[2]

# (dotted path, root override, institution value that tightens, composed value, value that loosens)
CASES: list[tuple[str, dict[str, Any], Any, Any, Any]] = [
    (
        "purposes.allowed",
        {},
        ["treatment-research"],
        frozenset({"treatment-research"}),
        ["treatment-research", "product-safety"],
    ),
    ("ai.allowed_risk_tiers", {}, ["minimal"], frozenset({"minimal"}), None),
    (
        "ai.allowed_risk_tiers",
        {"ai": {"allowed_risk_tiers": ["minimal", "limited"]}},
        ["limited"],
        frozenset({"limited"}),
        ["limited", "high"],
    ),
    ("data.allowed_categories", {}, ["health"], frozenset({"health"}), ["health", "genetic"]),
    ("data.min_cohort_size", {}, 20, 20, 5),
    ("data.count_granularity", {}, 50, 50, 5),
    ("privacy.epsilon_budget", {}, 4.0, 4.0, 20.0),
    ("privacy.delta", {}, 1e-6, 1e-6, 1e-3),
    ("privacy.min_noise_multiplier", {}, 1.0, 1.0, 0.1),
    ("privacy.max_clipping_norm", {}, 0.5, 0.5, 2.0),
    ("privacy.max_update_l2_norm", {}, 5.0, 5.0, None),
    ("privacy.max_update_l2_norm", {"privacy": {"max_update_l2_norm": 10.0}}, 5.0, 5.0, 20.0),
    ("privacy.secure_aggregation_required", {}, True, True, None),
    ("privacy.secure_aggregation_required", {"privacy": {"secure_aggregation_required": True}}, True, True, False),
    ("transfers.allowed_aggregator_jurisdictions", {}, ["DE"], frozenset({"DE"}), ["DE", "US"]),
    (
        "transfers.transfer_mechanisms",
        {},
        {"DE": "intra-eea"},
        {"DE": "intra-eea"},
        {"DE": "intra-eea", "US": "standard-contractual-clauses"},
    ),
    ("training.max_rounds", {}, 10, 10, 200),
    ("training.max_local_epochs", {}, 1, 1, 10),
    ("validity.valid_from", {}, "2021-01-01", date(2021, 1, 1), "2019-01-01"),
    (
        "validity.valid_until",
        {"validity": {"valid_until": "2030-12-31"}},
        "2029-12-31",
        date(2029, 12, 31),
        "2031-12-31",
    ),
    ("approvals.ethics_approval_required", {}, True, True, False),
    ("approvals.sandbox_plan_required", {}, True, True, False),
    (
        "approvals.sandbox_plan_start",
        {"approvals": {"sandbox_plan_start": "2025-01-01"}},
        "2025-06-01",
        date(2025, 6, 1),
        "2024-06-01",
    ),
    (
        "approvals.sandbox_plan_end",
        {"approvals": {"sandbox_plan_end": "2030-01-01"}},
        "2029-01-01",
        date(2029, 1, 1),
        "2031-01-01",
    ),
]


def _nested(path: str, value: Any) -> dict[str, Any]:
    section, _, key = path.partition(".")
    return {section: {key: value}} if key else {section: value}


@pytest.mark.parametrize(("path", "root", "tighter", "expected", "_looser"), CASES)
def test_lower_layer_may_tighten(
    tmp_path: Path, path: str, root: dict[str, Any], tighter: Any, expected: Any, _looser: Any
) -> None:
    """An institution file that tightens any field takes effect and is named as its source."""
    institution = chain(tmp_path, root=root, institution=_nested(path, tighter))
    policy = load_policy(institution, clock=PINNED)
    plain = load_policy(chain(tmp_path / "plain", root=root), clock=PINNED)
    assert policy.value(path) == expected
    restated = plain.value(path) == expected
    assert policy.source_of(path) == (plain.source_of(path).replace("/plain", "") if restated else str(institution))


@pytest.mark.parametrize(("path", "root", "_tighter", "_expected", "looser"), [c for c in CASES if c[4] is not None])
def test_lower_layer_may_not_loosen(
    tmp_path: Path, path: str, root: dict[str, Any], _tighter: Any, _expected: Any, looser: Any
) -> None:
    """A loosening lower layer is refused naming both files, the field and both values."""
    institution = chain(tmp_path, root=root, institution=_nested(path, looser))
    with pytest.raises(LooseningError) as caught:
        load_policy(institution, clock=PINNED)
    (line,) = caught.value.lines()
    assert line.startswith(f"{institution}: {path}: found ")
    assert f"set by {tmp_path}/root.yaml (lower layers may only tighten)" in line
    assert "must not loosen" in line or "must not add to" in line


def test_loosening_example_message_matches_the_documented_form(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped loosening example fails with exactly the documented one-line message."""
    monkeypatch.chdir(REPO)
    with pytest.raises(LooseningError) as caught:
        load_policy("examples/policies/institutions/loosening-example.yaml", clock=PINNED)
    assert caught.value.lines() == [
        "examples/policies/institutions/loosening-example.yaml: privacy.epsilon_budget: found 20.0; "
        "must not loosen 8.0 set by policies/presets/eu-gdpr-ai-act.yaml (lower layers may only tighten)"
    ]


def test_every_loosening_reported_at_once(tmp_path: Path) -> None:
    """All loosened fields of a chain come in one error, not one per run."""
    path = chain(
        tmp_path, institution={"privacy": {"epsilon_budget": 9.0, "delta": 0.1}, "training": {"max_rounds": 1000}}
    )
    with pytest.raises(LooseningError) as caught:
        load_policy(path, clock=PINNED)
    fields = [p.field for p in caught.value.problems]
    assert fields == ["privacy.epsilon_budget", "privacy.delta", "training.max_rounds"]


def test_loosening_names_the_file_that_set_the_limit_not_just_the_parent(tmp_path: Path) -> None:
    """If the country tightened a value, loosening it names the country file as the limit's source."""
    path = chain(
        tmp_path,
        country={"jurisdiction": "DE", "privacy": {"epsilon_budget": 3.0}},
        institution={"privacy": {"epsilon_budget": 5.0}},
    )
    with pytest.raises(LooseningError) as caught:
        load_policy(path, clock=PINNED)
    assert caught.value.lines() == [
        f"{path}: privacy.epsilon_budget: found 5.0; must not loosen 3.0 set by "
        f"{tmp_path}/countries/xx.yaml (lower layers may only tighten)"
    ]


def test_jurisdiction_is_fixed_once_set(tmp_path: Path) -> None:
    """An institution cannot move itself to another jurisdiction than its country layer's."""
    path = chain(tmp_path, institution={"jurisdiction": "FR"})
    with pytest.raises(LooseningError) as caught:
        load_policy(path, clock=PINNED)
    assert "jurisdiction: found FR; must not change DE set by" in caught.value.lines()[0]


def test_pinned_approval_reference_cannot_change(tmp_path: Path) -> None:
    """An ethics approval reference pinned by a higher layer cannot be replaced below."""
    path = chain(
        tmp_path,
        country={"jurisdiction": "DE", "approvals": {"ethics_approval_ref": "EK-1"}},
        institution={"approvals": {"ethics_approval_ref": "EK-2"}},
    )
    with pytest.raises(LooseningError):
        load_policy(path, clock=PINNED)


def test_vocabulary_redlines_always_apply(tmp_path: Path) -> None:
    """Every vocabulary redline is in force even if no layer lists it, sourced to the vocabulary."""
    policy = load_policy(chain(tmp_path), clock=PINNED)
    assert {"re-identification", "insurance-pricing", "employment-screening", "mass-surveillance"} <= (
        policy.redline_purposes
    )
    assert policy.term_source("purposes.redlines", "mass-surveillance") == VOCABULARY_SOURCE


def test_lower_layer_redline_removes_an_allowed_purpose(tmp_path: Path) -> None:
    """A lower layer that adds a redline removes it from the allowed purposes, and is named for it."""
    path = chain(tmp_path, institution={"purposes": {"redlines": ["epidemiology"]}})
    policy = load_policy(path, clock=PINNED)
    assert "epidemiology" not in policy.allowed_purposes and "epidemiology" in policy.redline_purposes
    assert policy.term_source("purposes.allowed", "epidemiology") == str(path)


def test_provenance_names_the_file_that_set_each_value(tmp_path: Path) -> None:
    """Untouched fields are sourced to the root, tightened ones to the lower file, unset ones to defaults."""
    path = chain(
        tmp_path,
        root={"data": {"min_cohort_size": None}},
        country={"jurisdiction": "DE", "training": {"max_rounds": 20}},
    )
    policy = load_policy(path, clock=PINNED)
    assert policy.source_of("privacy.epsilon_budget") == f"{tmp_path}/root.yaml"
    assert policy.source_of("training.max_rounds") == f"{tmp_path}/countries/xx.yaml"
    assert (policy.min_cohort_size, policy.source_of("data.min_cohort_size")) == (11, DEFAULT_SOURCE)


def test_legal_basis_may_be_refined(tmp_path: Path) -> None:
    """A country layer may restate the legal basis with its national law; provenance follows."""
    path = chain(
        tmp_path,
        country={
            "jurisdiction": "DE",
            "data": {"special_category_legal_basis": {"health": "GDPR Art. 9(2)(j) with BDSG s.27"}},
        },
    )
    policy = load_policy(path, clock=PINNED)
    assert policy.special_category_legal_basis == {"health": "GDPR Art. 9(2)(j) with BDSG s.27"}
    assert policy.term_source("data.special_category_legal_basis", "health") == f"{tmp_path}/countries/xx.yaml"


def test_federation_load_reports_every_loosening_site(tmp_path: Path) -> None:
    """Loading a federation names every site file that loosens its chain, in one error."""
    good = chain(tmp_path / "a", "a")
    bad = chain(tmp_path / "b", "b", institution={"training": {"max_rounds": 101}})
    with pytest.raises(LooseningError) as caught:
        load_policies({"a": good, "b": bad}, clock=PINNED)
    assert [p.source for p in caught.value.problems] == [str(bad)]
