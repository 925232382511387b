"""The data contract in a trial spec: kinds, ranges, rules, and the model width that follows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from trialcore.data_contract import DataContract
from trialcore.spec import TrialSpec
from trialcore.yaml_file import read_yaml_mapping

DEMO_SPEC = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"

CONTRACT: dict[str, Any] = {
    "missing_tokens": ["", "?"],
    "target": {"column": "outcome", "positive_codes": ["yes", "1"]},
    "features": [
        {"name": "age", "kind": "numeric", "unit": "years", "range": [18, 100], "missing": "impute-median"},
        {
            "name": "bmi",
            "kind": "numeric",
            "unit": "kg/m2",
            "range": [10, 70],
            "sentinels": [0],
            "missing": "indicator",
        },
        {"name": "clinic", "kind": "categorical", "categories": ["KY", "MN", "NY", "TX"]},
        {"name": "smoker", "kind": "binary", "missing": "indicator"},
    ],
}


def _contract(**changes: Any) -> dict[str, Any]:
    return {**CONTRACT, **changes}


def test_input_width_counts_one_hot_columns_and_indicators() -> None:
    contract = DataContract.model_validate(CONTRACT)
    # age 1, bmi 1 + indicator, clinic 4 categories, smoker 1 + indicator
    assert contract.input_width == 1 + 2 + 4 + 2
    assert [f.name for f in contract.numeric_features] == ["age", "bmi"]
    assert contract.normalisation == "federated"


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"target": {"column": "outcome"}}, "exactly one of positive_codes"),
        ({"target": {"column": "outcome", "positive_codes": ["1"], "threshold": 0.5}}, "exactly one of"),
        ({"target": {"column": "age", "threshold": 50}}, "also listed as a feature"),
        ({"features": [CONTRACT["features"][0], CONTRACT["features"][0]]}, "repeated: ['age']"),
        ({"features": [{"name": "x", "kind": "numeric", "unit": "mm", "range": [5, 5]}]}, "low < high"),
        ({"features": [{"name": "x", "kind": "numeric", "unit": "mm", "range": [0, float("inf")]}]}, "finite"),
        ({"features": [{"name": "c", "kind": "categorical", "categories": ["a", "a"]}]}, "distinct"),
        (
            {"features": [{"name": "c", "kind": "categorical", "categories": ["a", "b"], "missing": "impute-mean"}]},
            "drop-row or indicator",
        ),
        ({"features": [{"name": "x", "kind": "ordinal"}]}, "kind"),
        ({"normalisation": "site"}, "normalisation"),
        ({"features": []}, "at least one feature"),
    ],
)
def test_contract_refuses_inconsistent_sections(changes: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError) as caught:
        DataContract.model_validate(_contract(**changes))
    assert needle in str(caught.value)


def test_spec_model_width_must_follow_the_contract(demo_spec_data: dict[str, Any]) -> None:
    wrong = {**demo_spec_data, "data": CONTRACT}
    with pytest.raises(ValidationError) as caught:
        TrialSpec.model_validate(wrong)
    assert "set model.input_features: 9" in str(caught.value)
    right = {**wrong, "model": {**demo_spec_data["model"], "input_features": 9}}
    assert TrialSpec.model_validate(right).data is not None


@pytest.fixture
def demo_spec_data() -> dict[str, Any]:
    return read_yaml_mapping(DEMO_SPEC)


def test_binary_codes_must_differ_and_default_to_zero_one() -> None:
    """A binary feature reads two distinct codes (0/1 unless the contract names others, e.g. No/Yes)."""
    features = [{"name": "smoker", "kind": "binary", "codes": ["N", "N"]}]
    with pytest.raises(ValidationError, match="the two codes of a binary feature must differ"):
        DataContract.model_validate(_contract(features=features))
    default = DataContract.model_validate(_contract(features=[{"name": "smoker", "kind": "binary"}]))
    assert default.features[0].codes == ("0", "1")  # type: ignore[union-attr]


def test_threshold_side_applies_to_a_threshold_only() -> None:
    """positive_when: below makes values under the threshold positive; with positive codes it is refused."""
    below = DataContract.model_validate(
        _contract(target={"column": "weight", "threshold": 2500, "positive_when": "below"})
    )
    assert below.target.positive_when == "below"
    with pytest.raises(ValidationError, match="positive_when applies to a threshold only"):
        DataContract.model_validate(
            _contract(target={"column": "o", "positive_codes": ["y"], "positive_when": "below"})
        )
