"""Federated preprocessing over real site replies: pooled statistics, the charge, refusals below the cohort, per-site choice.

The sites are the real ClientApp of the extract example (examples/extracts.yaml), called in this
process by a small grid (no Ray): guard, handlers, connectors and encoder are the ones a trial uses.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from flwr.app import Context, Message, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from participants.accounted_release import gaussian_mechanism
from participants.client_app import make_client_app
from participants.contract_data import ContractSiteData, load_site_records
from participants.site_config import load_site_config
from sandbox.feature_scaling import FeatureScaling, pooled_feature_scaling
from sandbox.server_app import train_config
from trialcore import wire
from trialcore.data_contract import DataContract
from trialcore.feature_statistics import HISTOGRAM_BINS, combine, release_layout
from trialcore.privacy_accountant import Accountant, epsilon
from trialcore.spec_loading import LoadedSpec, load_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SITES = ("de-berlin", "fr-lyon", "gb-leeds", "ch-zurich")


@pytest.fixture(autouse=True)
def task_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flower messages need the task's identity, which the ServerApp process normally sets."""
    for name in ("_run_id", "_node_id", "_task_id"):
        monkeypatch.setattr(TaskIdentity, name, 1)


class InProcessGrid:
    """Delivers each message to the real ClientApp in this process: node 100 + i is site i of the federation."""

    def __init__(self, federation: Path, run_dir: Path) -> None:
        settings = {
            wire.FEDERATION_DIR: str(federation),
            wire.FEDERATION_SITES: ",".join(SITES),
            wire.RUN_DIR: str(run_dir),
        }
        self.client_app = make_client_app(settings)
        self.contexts = {
            100 + i: Context(
                run_id=7, node_id=100 + i, node_config={"partition-id": i}, state=RecordDict(), run_config={}
            )
            for i in range(len(SITES))
        }

    def get_node_ids(self) -> list[int]:
        return list(self.contexts)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> list[Message]:
        return [self.client_app(m, self.contexts[m.metadata.dst_node_id]) for m in messages]


def _spec(tmp_path: Path, *, privacy: dict[str, Any] | None = None, **contract: Any) -> LoadedSpec:
    """The extract example's spec with ``contract`` (and ``privacy``) changes, its federation the repository's sites."""
    document = load_spec(EXAMPLES / "extracts.yaml").spec.model_dump(mode="json")
    document["data"] |= contract
    document["privacy"] |= privacy or {}
    document["federation"] = str(EXAMPLES / "extract-sites")
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return load_spec(path)


def _scaling(
    loaded: LoadedSpec, run_dir: Path, *, min_cohort_size: int = 11, site_nodes: dict[str, int] | None = None
) -> FeatureScaling:
    config = train_config(loaded)
    config[wire.MIN_COHORT_SIZE] = min_cohort_size
    grid = InProcessGrid(EXAMPLES / "extract-sites", run_dir)
    return pooled_feature_scaling(
        grid,  # type: ignore[arg-type]
        config,
        num_sites=len(SITES),
        num_features=loaded.spec.model.input_features,
        contract=loaded.spec.data,
        site_ids=loaded.spec.site_ids,
        site_nodes=site_nodes,
    )


def _site_data(contract: DataContract, sites: Iterable[str]) -> list[ContractSiteData]:
    parts = []
    for site_id in sites:
        data = load_site_records(load_site_config(EXAMPLES / "extract-sites" / f"{site_id}.yaml"), contract)
        assert isinstance(data, ContractSiteData)
        parts.append(data)
    return parts


def _report(scaling: FeatureScaling) -> dict[str, Any]:
    assert scaling.preprocessing is not None
    return scaling.preprocessing


def test_federated_statistics_equal_pooled_train_statistics_without_noise(tmp_path: Path) -> None:
    """Statistics combined from the sites' exact release sums equal those of their pooled train parts, computed directly."""
    contract = _spec(tmp_path, spread="estimated").spec.data
    assert contract is not None
    parts = _site_data(contract, SITES)
    sums = np.sum([part.release_rows().sum(axis=0) for part in parts], axis=0)
    stats = combine(contract, sums.tolist(), count=sum(part.num_train for part in parts))
    pooled = np.concatenate([part.train_values for part in parts])
    numeric = [j for j, f in enumerate(contract.features) if f.kind == "numeric"]
    for i, j in enumerate(numeric):
        observed = pooled[:, j][~np.isnan(pooled[:, j])]
        assert math.isclose(stats.mean[i], observed.mean(), rel_tol=1e-9), contract.features[j].name
        assert math.isclose(stats.std[i], observed.std(), rel_tol=1e-6), contract.features[j].name
    texture = [f.name for f in contract.numeric_features].index("texture")
    observed = pooled[:, numeric[texture]][~np.isnan(pooled[:, numeric[texture]])]
    ordered, width = np.sort(observed), (50 - 5) / HISTOGRAM_BINS
    assert ordered[(observed.size - 1) // 2] - width <= stats.median[texture] <= ordered[observed.size // 2] + width


def test_noised_statistics_are_charged_to_each_sites_ledger_before_they_leave(tmp_path: Path) -> None:
    """Each site's release costs the Gaussian mechanism's epsilon, on its ledger as feature-statistics; the report says so."""
    loaded = _spec(tmp_path, privacy={"feature_statistics_noise_multiplier": 4.0})
    contract = loaded.spec.data
    assert contract is not None
    run_dir = tmp_path / "run"
    scaling = _scaling(loaded, run_dir)
    report = _report(scaling)
    expected = epsilon(
        [gaussian_mechanism(4.0)],
        delta=loaded.spec.privacy.delta,
        accountant=Accountant(loaded.spec.privacy.accountant),
    )
    assert report["pooled_sites"] == sorted(SITES) and report["refused"] == {}
    assert report["statistics_release"] == "gaussian" and report["normalisation"] == "federated"
    assert sorted(report["statistics_epsilon"]) == sorted(SITES)
    assert all(math.isclose(e, expected, rel_tol=1e-9) for e in report["statistics_epsilon"].values())
    for site_id in SITES:
        [charge] = [
            json.loads(line)
            for path in (run_dir / "sites" / site_id / "privacy").glob("*.ledger.jsonl")
            for line in path.read_text().splitlines()
        ]
        assert (charge["release"], charge["statistic"], charge["round"]) == ("feature-statistics", "sums", 0)
        assert math.isclose(charge["trial_epsilon"], expected, rel_tol=1e-9)
    parts = _site_data(contract, SITES)
    exact = combine(
        contract,
        np.sum([part.release_rows().sum(axis=0) for part in parts], axis=0).tolist(),
        count=sum(c.num_examples for c in scaling.commitments.values()),
    )
    noise_std = 4.0 * release_layout(contract).l2_sensitivity * math.sqrt(len(SITES))
    assert scaling.mean != exact.mean  # the noise moved the statistics ...
    for i, feature in enumerate(contract.numeric_features):  # ... by about what it should (5 noise stds)
        half, seen = (feature.range[1] - feature.range[0]) / 2, sum(p.num_train for p in parts) / 2
        assert abs(scaling.mean[i] - exact.mean[i]) <= 5 * noise_std * half / seen, feature.name
    assert report["statistics"] == {"mean": scaling.mean, "std": scaling.std, "median": scaling.median}


def test_site_below_the_minimum_cohort_is_refused_and_recorded(tmp_path: Path) -> None:
    """A site whose train part is smaller than the minimum cohort releases nothing; the refusal is recorded on both sides."""
    scaling = _scaling(_spec(tmp_path), tmp_path / "run", min_cohort_size=100)
    report = _report(scaling)
    assert "de-berlin" not in report["pooled_sites"] and "fr-lyon" in report["pooled_sites"]  # 90 vs 100 train records
    [reason] = [r for r in report["refused"].values() if "small-cell" in r]
    assert "fewer records than the minimum cohort of 100" in reason
    chain = (tmp_path / "run" / "sites" / "de-berlin" / "audit.jsonl").read_text().splitlines()
    assert any(json.loads(line)["event"] == "statistics-withheld" for line in chain)
    assert not list((tmp_path / "run" / "sites" / "de-berlin").glob("privacy/*.ledger.jsonl"))


def test_per_site_normalisation_releases_no_sums(tmp_path: Path) -> None:
    """Under per-site normalisation the sites send counts only; nothing is combined and nothing is charged."""
    run_dir = tmp_path / "run"
    scaling = _scaling(_spec(tmp_path, normalisation="per-site"), run_dir)
    report = _report(scaling)
    assert report["statistics"] is None and report["pooled_sites"] == [] and len(scaling.commitments) == len(SITES)
    assert report["max_statistics_epsilon"] == 0.0 and report["statistics_release"] == "none"
    assert not list(run_dir.glob("sites/*/privacy/*.ledger.jsonl"))


def test_a_release_the_trial_budget_cannot_pay_is_refused_and_nothing_leaves(tmp_path: Path) -> None:
    """Noise 2 costs about 2.17 at delta 1e-5, above the trial's budget of 2: every site refuses, nothing is charged."""
    run_dir = tmp_path / "run"
    scaling = _scaling(_spec(tmp_path, privacy={"feature_statistics_noise_multiplier": 2.0}), run_dir)
    report = _report(scaling)
    assert report["pooled_sites"] == [] and len(report["refused"]) == len(SITES)
    assert all("privacy-budget-exhausted" in reason for reason in report["refused"].values())
    assert not list(run_dir.glob("sites/*/privacy/*.ledger.jsonl"))


def test_a_refusal_is_named_by_the_site_whose_authenticated_node_sent_it(tmp_path: Path) -> None:
    """In deployment each site is bound to its node: the report names the refusing site, not only its node id."""
    bound = {site: 100 + i for i, site in enumerate(SITES)}
    scaling = _scaling(_spec(tmp_path), tmp_path / "run", min_cohort_size=100, site_nodes=bound)
    refused = _report(scaling)["refused"]
    assert "de-berlin" in refused and "small-cell" in refused["de-berlin"], refused  # 90 train records < 100
    assert not [key for key in refused if key.startswith("node-")]
