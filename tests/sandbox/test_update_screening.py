"""Screening a site's update: what the coordinator refuses to aggregate, and why, in numbers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict

from sandbox.node_loss import SITE_UNAVAILABLE
from sandbox.preflight import preflight
from sandbox.resolved_trial import resolve_trial
from sandbox.server_app import REJECTION_REASONS, max_update_l2_norm
from sandbox.update_screening import (
    NON_FINITE,
    NORM_TOO_LARGE,
    SCREENING_REASONS,
    SITE_REFUSED,
    TRUST_REASONS,
    WRONG_SHAPE,
    screen_reply,
    screen_update,
)
from trialcore.spec_loading import load_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BOUND = 10.0


def global_model() -> dict[str, np.ndarray]:
    """The demo's logistic regression layout: a (1, 30) weight and a (1,) bias, float32."""
    rng = np.random.default_rng(0)
    return {"0.weight": rng.normal(size=(1, 30)).astype(np.float32), "0.bias": np.array([0.1], dtype=np.float32)}


def record(arrays: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({key: Array(value) for key, value in arrays.items()})


def trained(**changes: np.ndarray) -> dict[str, np.ndarray]:
    """A plausible local update (a small step from the global model) with some arrays replaced."""
    arrays = {key: value + np.float32(0.01) for key, value in global_model().items()}
    arrays.update(changes)
    return arrays


def screen(update: dict[str, np.ndarray] | ArrayRecord, bound: float | None = BOUND) -> tuple[str, str] | None:
    found = screen_update(
        "de-berlin",
        update if isinstance(update, ArrayRecord) else record(update),
        record(global_model()),
        max_update_l2_norm=bound,
    )
    if found is None:
        return None
    assert found.site_id == "de-berlin"
    return found.reason, found.detail


def with_value(value: float) -> np.ndarray:
    weight = trained()["0.weight"].copy()
    weight[0, 3] = value
    return weight


def test_a_normal_update_is_accepted() -> None:
    """A small local step with the global model's layout passes every check."""
    assert screen(trained()) is None


@pytest.mark.parametrize(
    ("value", "counts"),
    [(np.nan, "NaN 1, +Inf 0, -Inf 0"), (np.inf, "NaN 0, +Inf 1, -Inf 0"), (-np.inf, "NaN 0, +Inf 0, -Inf 1")],
    ids=["nan", "pos-inf", "neg-inf"],
)
def test_non_finite_values_are_rejected_and_counted(value: float, counts: str) -> None:
    """Any NaN, +Inf or -Inf rejects the update as non-finite; the detail counts them and names the array."""
    found = screen(trained(**{"0.weight": with_value(value)}))
    assert found is not None
    reason, detail = found
    assert reason == NON_FINITE
    assert detail == f"1 of 31 values are not finite ({counts}); first in array '0.weight'"


def test_non_finite_is_rejected_even_without_a_norm_bound() -> None:
    """Without a policy bound, a NaN update is still rejected (it would poison the average)."""
    found = screen(trained(**{"0.bias": np.array([np.nan], dtype=np.float32)}), bound=None)
    assert found is not None and found[0] == NON_FINITE


@pytest.mark.parametrize(
    ("update", "expected"),
    [
        (
            trained(**{"0.weight": np.zeros((1, 31), dtype=np.float32)}),
            "array '0.weight' has shape (1, 31) dtype float32; the global model's has shape (1, 30) dtype float32",
        ),
        (
            trained(**{"0.weight": np.zeros((30,), dtype=np.float32)}),
            "array '0.weight' has shape (30,) dtype float32; the global model's has shape (1, 30) dtype float32",
        ),
        (
            trained(**{"0.weight": np.zeros((1, 30), dtype=np.float64)}),
            "array '0.weight' has shape (1, 30) dtype float64; the global model's has shape (1, 30) dtype float32",
        ),
        (
            {"0.weight": trained()["0.weight"]},
            "array names differ from the global model's: missing ['0.bias'], unexpected []",
        ),
        (
            trained(**{"1.weight": np.zeros((1,), dtype=np.float32)}),
            "array names differ from the global model's: missing [], unexpected ['1.weight']",
        ),
    ],
    ids=["wrong-shape", "flattened", "wrong-dtype", "missing-key", "extra-key"],
)
def test_a_different_layout_is_rejected(update: dict[str, np.ndarray], expected: str) -> None:
    """Other array names, shapes or dtypes than the global model's reject the update as wrong-shape."""
    assert screen(update) == (WRONG_SHAPE, expected)


def test_an_array_lying_about_its_shape_is_rejected() -> None:
    """An Array whose declared shape differs from the data it carries is wrong-shape, not trusted."""
    honest = record(trained())
    forged = Array(dtype="float32", shape=(1, 30), stype=honest["0.bias"].stype, data=honest["0.bias"].data)
    update = ArrayRecord({"0.weight": forged, "0.bias": honest["0.bias"]})
    assert screen(update) == (
        WRONG_SHAPE,
        "array '0.weight' declares shape (1, 30) dtype float32 but holds shape (1,) dtype float32",
    )


def test_an_undecodable_array_is_rejected() -> None:
    """Bytes that are not a NumPy array reject the update as wrong-shape."""
    update = ArrayRecord(
        {**record(trained()), "0.bias": Array(dtype="float32", shape=(1,), stype="numpy.ndarray", data=b"junk")}
    )
    assert screen(update) == (WRONG_SHAPE, "array '0.bias' does not decode as a NumPy array (ValueError)")


def test_a_huge_update_is_rejected_with_its_norm() -> None:
    """An update scaled by 1e6 moves the model far beyond the bound: norm-too-large, with both numbers."""
    scaled = {key: value * np.float32(1e6) for key, value in trained().items()}
    found = screen(scaled)
    assert found is not None
    reason, detail = found
    assert reason == NORM_TOO_LARGE
    assert detail.startswith("L2 norm of the update ") and detail.endswith(" exceeds the policy bound 10")
    assert float(detail.split()[5]) > 1e6


def test_the_bound_is_inclusive_on_a_known_norm() -> None:
    """The norm is taken over (update - global) across all arrays: a 3-4 step has norm 5, allowed at 5, not at 4.99."""
    zero = {"0.weight": np.zeros((1, 30), dtype=np.float32), "0.bias": np.zeros((1,), dtype=np.float32)}
    step = {"0.weight": zero["0.weight"].copy(), "0.bias": np.array([4.0], dtype=np.float32)}
    step["0.weight"][0, 7] = 3.0
    assert screen_update("gb-leeds", record(step), record(zero), max_update_l2_norm=5.0) is None
    found = screen_update("gb-leeds", record(step), record(zero), max_update_l2_norm=4.99)
    assert found is not None
    assert (found.reason, found.detail) == (NORM_TOO_LARGE, "L2 norm of the update 5 exceeds the policy bound 4.99")


def test_no_bound_accepts_large_norms() -> None:
    """With no policy bound (None), a finite, well-shaped update of any size is accepted."""
    assert screen({key: value * np.float32(1e6) for key, value in trained().items()}, bound=None) is None


def test_a_reply_must_hold_exactly_one_array_record() -> None:
    """A train reply with no ArrayRecord, or two, cannot be aggregated: wrong-shape."""
    metrics = MetricRecord({"num-examples": 10})
    none = RecordDict({"metrics": metrics})
    two = RecordDict({"a": record(trained()), "b": record(trained()), "metrics": metrics})
    for content, count in ((none, 0), (two, 2)):
        found = screen_reply("fr-lyon", content, record(global_model()), max_update_l2_norm=None)
        assert found is not None
        assert (found.reason, found.detail) == (
            WRONG_SHAPE,
            f"expected exactly one ArrayRecord in the reply, found {count}",
        )
    one = RecordDict({"arrays": record(trained()), "metrics": metrics})
    assert screen_reply("fr-lyon", one, record(global_model()), max_update_l2_norm=None) is None


def test_every_reason_is_a_known_metric_label() -> None:
    """Each rejection reason, a site's refusal and a lost node have a pre-created sandbox_updates_rejected_total series."""
    assert set(SCREENING_REASONS) | set(TRUST_REASONS) | {SITE_REFUSED, SITE_UNAVAILABLE} == set(REJECTION_REASONS)


def test_the_bound_comes_from_the_sites_composed_policy(tmp_path: Path) -> None:
    """The demo's presets bound updates at 10; a site tightening it lowers it for the trial; no policies, no bound."""
    assert max_update_l2_norm(preflight(resolve_trial(load_spec(EXAMPLES / "demo.yaml")))) == 10.0
    assert max_update_l2_norm(None) is None
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    institution = tmp_path / "examples" / "policies" / "institutions" / "fr-lyon.yaml"
    text = institution.read_text()
    assert "max_update_l2_norm" not in text
    if "\nprivacy:\n" in text:
        text = text.replace("\nprivacy:\n", "\nprivacy:\n  max_update_l2_norm: 2.5\n", 1)
    else:
        text += "\nprivacy:\n  max_update_l2_norm: 2.5\n"
    institution.write_text(text)
    assert max_update_l2_norm(preflight(resolve_trial(load_spec(tmp_path / "examples" / "demo.yaml")))) == 2.5
