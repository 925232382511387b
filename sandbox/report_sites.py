"""Per-site figures of the report beside the pooled ones: the mean over sites and the site served worst.

``final.global`` pools the sites' test parts (weighted by their released counts); a large site
can hide a small one that the model serves badly. ``final.mean_over_sites`` weighs every site
alike and names the site with the lowest test accuracy. Both are computed from the per-site
statistics the sites released (sites below the minimum cohort are suppressed and not counted).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def mean_over_sites(sites: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
    """Unweighted mean of the released sites' test accuracy and loss, and the worst site; None with no site."""
    if not sites:
        return None
    accuracies = {site: float(stats["test_accuracy"]) for site, stats in sites.items()}
    losses = [float(stats["test_loss"]) for stats in sites.values()]
    worst = min(sorted(accuracies), key=lambda site: accuracies[site])
    return {
        "test_accuracy": sum(accuracies.values()) / len(accuracies),
        "test_loss": sum(losses) / len(losses),
        "sites": len(accuracies),
        "worst_site": {"site_id": worst, "test_accuracy": accuracies[worst]},
    }
