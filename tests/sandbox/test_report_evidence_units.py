"""The pieces of a run's evidence on their own: the record's omissions, the signature, cross-references, the page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sandbox.report_html import WITHHELD, render_html
from sandbox.report_record import model_record, privacy_settings
from sandbox.report_signature import coordinator_key, signature_problem, write_signed_report
from sandbox.run_evidence_checks import cross_reference_problem
from sandbox.run_verify import Check
from tests.sandbox.conftest import demo_data
from trialcore.spec import TrialSpec

H = [f"{i:064x}" for i in range(20)]


def spec(**changes: Any) -> TrialSpec:
    data = demo_data()
    data.update(changes)
    return TrialSpec.model_validate(data)


def test_model_section_omits_what_does_not_apply() -> None:
    """A logistic regression has no hidden_units in the report; an MLP keeps its width."""
    assert "hidden_units" not in model_record(spec())
    mlp = spec(model={"name": "mlp", "input_features": 30, "hidden_units": 8})
    assert model_record(mlp)["hidden_units"] == 8


def test_privacy_section_omits_dp_sgd_settings_without_dp_sgd() -> None:
    """Without DP-SGD, no noise multiplier or clipping norm is shown (never a null default).

    The release noise (feature sums, evaluation) applies to every trial, with or without DP-SGD.
    """
    plain = spec(privacy={"epsilon_budget": 1.0, "delta": 1e-5})
    assert set(privacy_settings(plain)) == {
        "epsilon_budget",
        "delta",
        "accountant",
        "feature_statistics_noise_multiplier",
        "evaluation_noise_multiplier",
    }
    demo = spec()
    assert privacy_settings(demo)["noise_multiplier"] == demo.privacy.noise_multiplier is not None
    assert privacy_settings(demo)["max_grad_norm"] == demo.privacy.max_grad_norm is not None


def test_signature_covers_every_byte_of_the_report_and_names_its_key(tmp_path: Path) -> None:
    """A signed report verifies under its key; any edit, or another key, is named."""
    signer = coordinator_key(None)
    report = {"audit": {"coordinator": {"hash": H[1], "length": 3}}, "sites": [{"epsilon": 0.5}]}
    write_signed_report(tmp_path, report, signer)
    public = signer.key.public_key()
    stored = json.loads((tmp_path / "report.json").read_text())
    assert signature_problem(tmp_path, stored, public) is None
    stored["sites"][0]["epsilon"] = 0.4
    assert "edited after signing" in str(signature_problem(tmp_path, stored, public))
    other = coordinator_key(None).key.public_key()
    assert "not by the expected key" in str(signature_problem(tmp_path, report, other))
    (tmp_path / "report.json.sig").unlink()
    assert "missing" in str(signature_problem(tmp_path, report, public))
    assert signer.signer()["pinned"] is False


def entry(seq: int, event: str, digest: str, **payload: Any) -> dict[str, Any]:
    return {"seq": seq, "event": event, "hash": digest, "payload": payload}


COORDINATOR = [
    entry(0, "round-configured", H[1], round=1),
    entry(1, "round-aggregated", H[2], round=1, trained_sites=["a"], site_audit_entries={"a": H[11]}),
]


def test_cross_references_hold_when_both_sides_name_each_other() -> None:
    """The site's entry names the coordinator's round entry, and the coordinator names the site's entry."""
    site = [
        entry(0, "update-sent", H[10], round=1, coordinator_entry=H[1]),
        entry(1, "evaluation-sent", H[11], round=1, coordinator_entry=H[1]),
    ]
    assert cross_reference_problem(COORDINATOR, "a", site) is None


@pytest.mark.parametrize(
    ("site", "says"),
    [
        ([entry(0, "update-sent", H[10], round=1, coordinator_entry=H[1])], "lacks"),
        ([entry(0, "evaluation-sent", H[11], round=1, coordinator_entry=H[1])], "no update-sent"),
        (
            [
                entry(0, "update-sent", H[10], round=1, coordinator_entry=H[1]),
                entry(1, "evaluation-sent", H[11], round=1, coordinator_entry=H[9]),
            ],
            "does not name",
        ),
        (
            [
                entry(0, "update-sent", H[10], round=1, coordinator_entry=H[1]),
                entry(1, "evaluation-sent", H[11], round=1, coordinator_entry=H[2]),
            ],
            "does not name",
        ),
    ],
)
def test_cross_references_catch_a_missing_or_misnamed_entry(site: list[dict[str, Any]], says: str) -> None:
    """A site entry the coordinator names but the site lacks, a trained round without an update, a wrong back-reference."""
    assert says in str(cross_reference_problem(COORDINATOR, "a", site))


def test_page_escapes_text_and_withholds_small_cells() -> None:
    """Text from the spec is escaped; a suppressed site shows no count or accuracy, only that it is withheld."""
    report: dict[str, Any] = {
        "title": "<script>alert(1)</script>",
        "trial_id": "t",
        "state": "finished",
        "rounds": [
            {
                "round": 1,
                "sites": {"a": {"test_accuracy": 0.9}},
                "global": {"test_accuracy": 0.9},
                "refusals": [],
                "rejections": [],
                "aggregated": True,
                "fairness_accuracy_gap": 0.0,
            }
        ],
        "sites": [
            {
                "site_id": "a",
                "suppressed": False,
                "num_train": 100,
                "num_test": 30,
                "final": {"test_accuracy": 0.9},
                "privacy": {"trial_epsilon": 0.1, "trial_epsilon_budget": 0.5},
            },
            {
                "site_id": "b",
                "suppressed": True,
                "num_train": None,
                "num_test": None,
                "final": None,
                "privacy": {"trial_epsilon": 0.2, "trial_epsilon_budget": 0.5},
            },
        ],
        "final": {"global": {"test_accuracy": 0.9}, "fairness_accuracy_gap": 0.0},
    }
    page = render_html(report, [Check("report", True, "ok")])
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.count(WITHHELD) >= 3
    assert 'data-plot="accuracy"' in page and "<svg" in page


def test_page_shows_epsilon_by_kind_of_release_when_the_report_has_it() -> None:
    """Privacy per site is split by release kind (training, feature statistics, evaluation) when the report says."""
    report: dict[str, Any] = {
        "rounds": [],
        "sites": [
            {
                "site_id": "a",
                "privacy": {
                    "trial_epsilon": 0.4,
                    "trial_epsilon_budget": 0.5,
                    "trial_epsilon_by_release": {"dp-sgd": 0.3, "evaluation": {"epsilon": 0.1}},
                },
            }
        ],
    }
    page = render_html(report, [])
    assert "dp-sgd 0.3, evaluation 0.1" in page
    assert "spent: dp-sgd" in page and "spent: evaluation" in page
