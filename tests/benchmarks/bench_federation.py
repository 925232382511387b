"""A generated federation of N simulated sites for the scale and plain-Flower benchmarks.

Each site is a seeded draw, with replacement, of :data:`RECORDS_PER_SITE` records of the demo's
data (scikit-learn's breast-cancer set, label 1 = malignant) written as the site's own CSV file,
so its train part (33) and test part (11, ``test_fraction`` 0.25 rounded up) both clear the
minimum cohort of 11. Every site has its own node config and shares one bench policy: a root
policy (no ``extends``) with the EU preset's limits but no approvals required.

DP off: no policy lets a spec without DP run (every site's guard refuses it), so the spec asks for
DP-SGD and the governed sites train with ``privacy_bench.no_dp_train_handler`` (plain SGD, no
ledger charge), as the privacy bench's no-DP row does. Guard, audit chains, screening, metrics
and report all run as in any trial.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from sklearn.datasets import load_breast_cancer

from trialcore.spec_loading import LoadedSpec, load_spec

RECORDS_PER_SITE = 44
"""Records per site: ceil(0.25 x 44) = 11 test and 33 train records, both >= the minimum cohort of 11."""
DRAW_SEED = 20_261_130
JURISDICTIONS = ("DE", "FR", "NL", "SE")

BENCH_POLICY = {
    "name": "bench-no-dp",
    "title": "Benchmark sites: the EU preset's limits, without a DP-SGD floor or approvals",
    "summary": "Benchmark only: lets a governed trial run with DP off, as a plain Flower app does.",
    "region": "EU",
    "purposes": {"allowed": ["treatment-research"]},
    "ai": {"allowed_risk_tiers": ["minimal", "limited", "high"]},
    "data": {
        "allowed_categories": ["health"],
        "special_category_legal_basis": {"health": "GDPR Art. 9(2)(j) with Art. 89(1) safeguards"},
        "min_cohort_size": 11,
    },
    "privacy": {
        "epsilon_budget": 8.0,
        "delta": 1.0e-5,
        "min_noise_multiplier": 0.5,
        "max_clipping_norm": 1.0,
        "max_update_l2_norm": 10.0,
        "secure_aggregation_required": False,
    },
    "transfers": {
        "allowed_aggregator_jurisdictions": list(JURISDICTIONS),
        "transfer_mechanisms": dict.fromkeys(JURISDICTIONS, "intra-eea"),
    },
    "training": {"max_rounds": 100, "max_local_epochs": 5},
    "validity": {"valid_from": "2018-05-25", "valid_until": None},
    "approvals": {"ethics_approval_required": False, "sandbox_plan_required": False},
}


@dataclass(frozen=True)
class BenchFederation:
    """Where a generated federation lives: its spec and each site's node config, in site order."""

    spec: Path
    site_configs: tuple[Path, ...]

    def load(self) -> LoadedSpec:
        return load_spec(self.spec)


def _demo_records() -> tuple[np.ndarray, np.ndarray]:
    bundle = load_breast_cancer()
    return np.asarray(bundle.data, dtype=np.float64), 1.0 - np.asarray(bundle.target, dtype=np.float64)


def write_federation(
    root: Path, *, num_sites: int, rounds: int, records_per_site: int = RECORDS_PER_SITE, trial_id: str = "scale-bench"
) -> BenchFederation:
    """Write a spec of ``num_sites`` sites of ``records_per_site`` records and ``rounds`` rounds under ``root``."""
    features, labels = _demo_records()
    sites_dir = root / "sites"
    (sites_dir / "data").mkdir(parents=True, exist_ok=True)
    (root / "bench-policy.yaml").write_text(yaml.safe_dump(BENCH_POLICY, sort_keys=False), encoding="utf-8")
    rng = np.random.default_rng(DRAW_SEED)
    header = ",".join([*(f"f{column}" for column in range(features.shape[1])), "target"])
    participants, configs = [], []
    for index in range(num_sites):
        site_id = f"site-{index:04d}"
        jurisdiction = JURISDICTIONS[index % len(JURISDICTIONS)]
        rows = rng.integers(0, labels.shape[0], size=records_per_site)
        table = np.column_stack([features[rows], labels[rows]])
        data = sites_dir / "data" / f"{site_id}.csv"
        np.savetxt(data, table, delimiter=",", header=header, comments="", fmt="%.10g")
        config = sites_dir / f"{site_id}.yaml"
        node_config = {
            "site_id": site_id,
            "jurisdiction": jurisdiction,
            "institution": f"Benchmark site {index} (simulated)",
            "simulated": True,
            "data": {"kind": "csv", "path": f"data/{site_id}.csv", "target_column": "target"},
            "test_fraction": 0.25,
            "policy": "../bench-policy.yaml",
        }
        config.write_text(yaml.safe_dump(node_config, sort_keys=False), encoding="utf-8")
        participants.append({"site_id": site_id, "jurisdiction": jurisdiction})
        configs.append(config)
    spec = {
        "trial_id": trial_id,
        "title": f"Benchmark: {num_sites} simulated sites, DP off",
        "purpose": "treatment-research",
        "ai_risk_tier": "high",
        "data_categories": ["health"],
        "model": {"name": "logistic_regression", "input_features": int(features.shape[1])},
        "federation": "sites",
        "aggregator": {"jurisdiction": "DE"},
        "participants": participants,
        "rounds": rounds,
        "min_participants": max(1, num_sites // 2),
        "local_training": {"epochs": 1, "batch_size": 16, "learning_rate": 0.1},
        "privacy": {"epsilon_budget": 8.0, "delta": 1.0e-5, "noise_multiplier": 5.0, "max_grad_norm": 1.0},
        "strategy": {"name": "FedAvg"},
        "seed": 42,
    }
    path = root / f"{trial_id}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return BenchFederation(spec=path, site_configs=tuple(configs))
