"""Per-site figures of the report beside the pooled ones: the mean over sites and the site served worst.

``final.global`` pools the sites' test parts (weighted by their released counts); a large site
can hide a small one that the model serves badly. ``final.mean_over_sites`` weighs every site
alike and names the site with the lowest test accuracy. Both are computed from the per-site
statistics the sites released (sites below the minimum cohort are suppressed and not counted).
Released accuracies are noised (each site's evaluation release): with the trial's evaluation
noise multiplier, each figure carries the standard deviation of its noise
(:func:`sandbox.release_noise.accuracy_noise_std`), so a reader sees when a "worst site" is noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sandbox.release_noise import accuracy_noise_std


def mean_over_sites(
    sites: Mapping[str, Mapping[str, Any]], *, evaluation_noise_multiplier: float | None = None
) -> dict[str, Any] | None:
    """Unweighted mean of the released sites' test accuracy and loss, and the worst site; None with no site."""
    if not sites:
        return None
    accuracies = {site: float(stats["test_accuracy"]) for site, stats in sites.items()}
    losses = [float(stats["test_loss"]) for stats in sites.values()]
    worst = min(sorted(accuracies), key=lambda site: accuracies[site])
    mean: dict[str, Any] = {
        "test_accuracy": sum(accuracies.values()) / len(accuracies),
        "test_loss": sum(losses) / len(losses),
        "sites": len(accuracies),
        "worst_site": {"site_id": worst, "test_accuracy": accuracies[worst]},
    }
    if evaluation_noise_multiplier is not None:
        noise = {
            site: accuracy_noise_std(
                num_test=int(stats.get("num_test") or 0),
                accuracy=accuracies[site],
                noise_multiplier=evaluation_noise_multiplier,
            )
            for site, stats in sites.items()
        }
        mean["test_accuracy_noise_std"] = math.sqrt(sum(v * v for v in noise.values())) / len(noise)
        mean["worst_site"]["test_accuracy_noise_std"] = noise[worst]
    return mean
