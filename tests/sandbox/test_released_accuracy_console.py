"""The console shows the released (noised) accuracy with its noise, never as if it were exact."""

from __future__ import annotations

import io
import math

import pytest

from sandbox.release_noise import accuracy_noise_std, pooled_accuracy_noise_std
from sandbox.round_outcome import GlobalRoundMetrics, RoundOutcome, SiteRoundMetrics
from sandbox.run_view import RoundProgress


def _outcome(num_test_by_site: dict[str, int], accuracy: float) -> RoundOutcome:
    sites = {
        site: SiteRoundMetrics(
            site, num_train=3 * n, num_test=n, test_accuracy=accuracy, test_loss=0.3, test_auroc=None
        )
        for site, n in num_test_by_site.items()
    }
    pooled = GlobalRoundMetrics(accuracy, 0.3, None, None, num_test=sum(num_test_by_site.values()))
    return RoundOutcome(server_round=1, sites=sites, global_metrics=pooled, trained_sites=list(sites))


def test_pooled_noise_is_one_sites_noise_scaled_by_sites_and_records() -> None:
    one = accuracy_noise_std(num_test=30, accuracy=0.9, noise_multiplier=40.0)
    pooled = pooled_accuracy_noise_std(num_test=120, num_sites=4, accuracy=0.9, noise_multiplier=40.0)
    assert pooled == pytest.approx(one * math.sqrt(4) * 30 / 120)
    # the demo's setting: 4 sites of 30-40 test records at noise 40 -> the pooled figure is noise
    assert pooled > 1.0
    assert pooled_accuracy_noise_std(num_test=40_000, num_sites=4, accuracy=0.9, noise_multiplier=1.0) < 0.001


@pytest.mark.parametrize(("noise", "shown"), [(40.0, "(released with noise, ± 1.66)"), (None, None)])
def test_round_line_names_the_noise_of_the_released_accuracy(noise: float | None, shown: str | None) -> None:
    progress = RoundProgress(1, enabled=False, evaluation_noise_multiplier=noise)
    buffer = io.StringIO()
    progress._progress.console.file = buffer
    with progress:
        progress.update(_outcome({"a": 30, "b": 30, "c": 30, "d": 40}, 0.9))
    line = buffer.getvalue()
    assert "round 1: global test accuracy 0.900" in line
    if shown is None:
        assert "noise" not in line
    else:
        assert shown in line
