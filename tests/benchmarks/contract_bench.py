"""``make bench``'s normalisation table on the two data-contract examples (OPT clinics: real multi-centre records).

For each variant (``federated`` normalisation with the statistics released as the spec says, noised
and charged; the same with the noise drawn as zero, to show what the noise costs; ``per-site``
normalisation), the governed trial runs with the real ServerApp and the real ClientApp of every
site, called in this process (:mod:`tests.contract_runs`, no Ray: the time of the preprocessing
phase is not swamped by engine start-up). Each row gives the final model's **true** pooled and
mean-over-sites test accuracy (the released ones are noised), the epsilon the statistics cost,
and the centralised reference: a scikit-learn logistic regression fitted on the pooled train parts
(the very same per-site split, encoded, imputed and scaled with the exact pooled statistics) and
scored on the pooled test parts. The zero-noise rows are a measurement only: the release is still
charged, and no trial can turn the noise off. This is a benchmark, never a timed test.
"""

from __future__ import annotations

import statistics as stats
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from sklearn.linear_model import LogisticRegression

from participants import query_handler, site_privacy
from participants.contract_data import ContractSiteData, load_site_records
from sandbox.resolved_trial import resolve_trial
from tests.contract_runs import run_in_process, true_test_accuracy
from trialcore.feature_statistics import combine, release_rows
from trialcore.spec_loading import LoadedSpec, load_spec

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = {"opt-clinics": "opt-sites", "extracts": "extract-sites"}
"""Example spec -> its federation folder (both under examples/)."""
REPEATS = 2
"""Trials per variant (different seeds); the table gives medians."""


class _ZeroNoise:
    """A noise generator that draws zeros: the statistics as the sites computed them (bench only)."""

    def normal(self, loc: float, scale: float, size: Any = None) -> Any:
        return np.zeros(size)


@contextmanager
def _statistics_without_noise() -> Iterator[None]:
    """Within: the feature-statistics release draws zero noise (still charged); every other release is unchanged."""
    original = query_handler.released

    def released(*args: Any, **kwargs: Any) -> Any:
        generator = site_privacy.noise_generator
        site_privacy.noise_generator = lambda site, *, seed: _ZeroNoise()  # type: ignore[assignment,misc]
        try:
            return original(*args, **kwargs)
        finally:
            site_privacy.noise_generator = generator

    query_handler.released = released  # type: ignore[assignment]
    try:
        yield
    finally:
        query_handler.released = original


def _variant(folder: Path, example: str, name: str, *, seed: int, **contract: Any) -> LoadedSpec:
    document = load_spec(REPO / "examples" / f"{example}.yaml").spec.model_dump(mode="json")
    document["data"] = {**document["data"], **contract}
    document["seed"] = seed
    document["federation"] = str(REPO / "examples" / EXAMPLES[example])
    path = folder / f"{example}-{name}-{seed}.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return load_spec(path)


def centralised_accuracy(loaded: LoadedSpec) -> float:
    """A logistic regression on the pooled train parts (exact pooled statistics), scored on the pooled test parts."""
    contract = loaded.spec.data
    assert contract is not None
    trial = resolve_trial(loaded)
    parts = [load_site_records(site, contract) for site in trial.sites.values()]
    assert all(isinstance(p, ContractSiteData) for p in parts)
    sums = np.sum([release_rows(contract, p.train_values).sum(axis=0) for p in parts], axis=0)  # type: ignore[union-attr]
    pooled = combine(contract, sums.tolist(), count=sum(p.num_train for p in parts))
    prepared = [p.prepared(pooled) for p in parts]  # type: ignore[union-attr]
    x_train = np.concatenate([p.x_train for p in prepared])
    y_train = np.concatenate([p.y_train for p in prepared])
    model = LogisticRegression(max_iter=2000).fit(x_train, y_train)
    x_test = np.concatenate([p.x_test for p in prepared])
    y_test = np.concatenate([p.y_test for p in prepared])
    return float(model.score(x_test, y_test))


def normalisation_table() -> dict[str, Any]:
    """The table (one row per example and variant, medians over :data:`REPEATS` seeds) and the preprocessing time."""
    variants: dict[str, dict[str, Any]] = {
        "federated, noised statistics": {"normalisation": "federated"},
        "federated, statistics without noise": {"normalisation": "federated"},
        "per-site": {"normalisation": "per-site"},
    }
    rows = []
    with tempfile.TemporaryDirectory(prefix="sandbox-contract-bench-") as tmp:
        folder = Path(tmp)
        for example in EXAMPLES:
            reference = centralised_accuracy(_variant(folder, example, "reference", seed=7))
            for name, contract in variants.items():
                pooled, mean_sites, epsilons, seconds, wall = [], [], [], [], []
                for seed in range(7, 7 + REPEATS):
                    loaded = _variant(folder, example, f"v{len(rows)}", seed=seed, **contract)
                    run_dir = folder / "runs" / f"{len(rows)}-{seed}"
                    started = time.perf_counter()
                    with _statistics_without_noise() if "without noise" in name else nullcontext():
                        report = run_in_process(loaded, run_dir)
                    wall.append(time.perf_counter() - started)
                    accuracy, per_site = true_test_accuracy(loaded, run_dir)
                    pooled.append(accuracy)
                    mean_sites.append(sum(per_site.values()) / len(per_site))
                    epsilons.append(report["preprocessing"]["max_statistics_epsilon"])
                    seconds.append(report["preprocessing"]["seconds"])
                rows.append(
                    {
                        "example": example,
                        "variant": name,
                        "pooled_test_accuracy": round(stats.median(pooled), 4),
                        "mean_over_sites_test_accuracy": round(stats.median(mean_sites), 4),
                        "centralised_test_accuracy": round(reference, 4),
                        "statistics_epsilon_max_site": round(stats.median(epsilons), 4),
                        "preprocessing_median_seconds": round(stats.median(seconds), 4),
                        "trial_median_seconds": round(stats.median(wall), 3),
                    }
                )
    return {
        "benchmark": "data-contract examples (opt-clinics: 4 real centres; extracts: 4 simulated sites): federated vs "
        "per-site normalisation, statistics exact or noised, against a centralised logistic regression on the same "
        "split (in-process sites, no engine start-up; DP-SGD as in each spec)",
        "feature_statistics_noise_multiplier": {
            example: load_spec(REPO / "examples" / f"{example}.yaml").spec.privacy.feature_statistics_noise_multiplier
            for example in EXAMPLES
        },
        "repeats": REPEATS,
        "rows": rows,
    }


if __name__ == "__main__":  # pragma: no cover - make bench runs it through tests/benchmarks/run.py
    import json

    print(json.dumps(normalisation_table(), indent=2))
