"""Builders shared by the policy tests: write layer files into ``tmp_path``, pin a clock.

Not a test module (no ``test_`` prefix); imported by name from the tests in this folder.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from policies import ComposedPolicy, TrialFacts, fixed_clock, load_policy

PINNED_NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PINNED = fixed_clock(PINNED_NOW)

ROOT: dict[str, Any] = {
    "name": "test-root",
    "title": "Test root preset",
    "summary": "A complete root layer for tests.",
    "region": "EU",
    "purposes": {"allowed": ["treatment-research", "epidemiology", "public-health-statistics"]},
    "ai": {"allowed_risk_tiers": ["minimal", "limited", "high"]},
    "data": {
        "allowed_categories": ["health", "demographic"],
        "special_category_legal_basis": {"health": "GDPR Art. 9(2)(j)"},
        "min_cohort_size": 11,
        "count_granularity": 10,
    },
    "privacy": {
        "epsilon_budget": 8.0,
        "delta": 1e-5,
        "min_noise_multiplier": 0.5,
        "max_clipping_norm": 1.0,
        "secure_aggregation_required": False,
    },
    "transfers": {
        "allowed_aggregator_jurisdictions": ["DE", "FR", "GB"],
        "transfer_mechanisms": {"DE": "intra-eea", "FR": "intra-eea", "GB": "adequacy-decision"},
    },
    "training": {"max_rounds": 100, "max_local_epochs": 5},
    "validity": {"valid_from": "2020-01-01"},
    "approvals": {"ethics_approval_required": True, "sandbox_plan_required": True},
}


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in, one level deep per section (``None`` deletes)."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            for inner, inner_value in value.items():
                if inner_value is None:
                    out[key].pop(inner, None)
                else:
                    out[key][inner] = inner_value
        else:
            out[key] = value
    return out


def write(path: Path, data: dict[str, Any] | str) -> Path:
    """Write a layer (a dict dumped as YAML, or raw text) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def chain(
    tmp_path: Path,
    site: str = "site",
    *,
    root: dict[str, Any] | None = None,
    country: dict[str, Any] | None = None,
    institution: dict[str, Any] | None = None,
) -> Path:
    """Write root → countries/xx.yaml → institutions/<site>.yaml and return the institution file."""
    write(tmp_path / "root.yaml", merged(ROOT, root or {}))
    write(tmp_path / "countries" / "xx.yaml", {"extends": "../root.yaml", **(country or {"jurisdiction": "DE"})})
    return write(
        tmp_path / "institutions" / f"{site}.yaml",
        {"extends": "../countries/xx.yaml", "name": site, **(institution or {})},
    )


def site_policy(tmp_path: Path, site: str = "site", **layers: dict[str, Any]) -> ComposedPolicy:
    """Write a three-layer chain for ``site`` under ``tmp_path/site`` and load it at the pinned clock."""
    return load_policy(chain(tmp_path / site, site, **layers), clock=PINNED)


def trial(**overrides: Any) -> TrialFacts:
    """The demo trial's facts (treatment-research, high risk, health, DE aggregator), overridable."""
    facts: dict[str, Any] = {
        "trial_id": "demo",
        "purpose": "treatment-research",
        "ai_risk_tier": "high",
        "data_categories": ["health"],
        "rounds": 10,
        "local_epochs": 1,
        "aggregator_jurisdiction": "DE",
        "sites": [("site", "DE")],
        "noise_multiplier": 1.0,
        "max_grad_norm": 1.0,
        "delta": None,
        "secure_aggregation": False,
        "ethics_approval_ref": "EK-2026-017",
        "sandbox_plan_id": "SBX-EU-2026-001",
    }
    facts.update(overrides)
    return TrialFacts(**facts)
