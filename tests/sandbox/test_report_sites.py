"""The report's mean over sites: every released site weighted alike, and the site the model serves worst."""

from __future__ import annotations

import pytest

from sandbox.report_sites import mean_over_sites


def test_mean_over_sites_weighs_sites_alike_and_names_the_worst() -> None:
    """A small site served badly pulls the mean over sites down, whatever its size; it is named."""
    sites = {
        "big": {"test_accuracy": 0.95, "test_loss": 0.2, "num_test": 900},
        "small": {"test_accuracy": 0.55, "test_loss": 0.9, "num_test": 20},
    }
    mean = mean_over_sites(sites)
    assert mean is not None
    assert mean["test_accuracy"] == pytest.approx(0.75) and mean["test_loss"] == pytest.approx(0.55)
    assert mean["worst_site"] == {"site_id": "small", "test_accuracy": 0.55} and mean["sites"] == 2


def test_each_released_figure_states_its_noise() -> None:
    """With the evaluation noise multiplier, the mean and the worst site carry their noise's standard deviation."""
    sites = {
        "big": {"test_accuracy": 0.95, "test_loss": 0.2, "num_test": 900},
        "small": {"test_accuracy": 0.55, "test_loss": 0.9, "num_test": 20},
    }
    mean = mean_over_sites(sites, evaluation_noise_multiplier=20.0)
    assert mean is not None
    small = 20.0 * 2 * (1 + 0.55**2) ** 0.5 / 20  # noise x sensitivity 2 x delta method / records
    big = 20.0 * 2 * (1 + 0.95**2) ** 0.5 / 900
    assert mean["worst_site"]["test_accuracy_noise_std"] == pytest.approx(small)
    assert mean["test_accuracy_noise_std"] == pytest.approx((small**2 + big**2) ** 0.5 / 2)


def test_no_released_site_gives_no_mean() -> None:
    """With every site suppressed there is nothing to average (None, not 0)."""
    assert mean_over_sites({}) is None
