"""What one round produced, as the coordinator saw it: per-site aggregates and pooled global metrics.

Global accuracy and loss are pooled over the sites' test parts, weighted by the test counts the
sites release (rounded down to 10 records), so they equal the accuracy on the union of the test
parts to within that rounding (the demo: 0.9525 reported, 0.9514 on the exact union). Global AUROC is the test-record-weighted
mean of the per-site AUROCs (the coordinator never sees scores, so a pooled ROC is not available);
it says which sites and how many test records it covers (``auroc_sites``, ``auroc_num_test``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SiteRoundMetrics:
    """One site's aggregate metrics after a round (from its evaluate reply)."""

    site_id: str
    num_train: int
    num_test: int
    test_accuracy: float
    test_loss: float
    test_auroc: float | None
    train_accuracy: float | None = None
    """Sites release no metric of their train part: None from a real site (kept for callers that have one)."""
    train_loss: float | None = None


@dataclass(frozen=True)
class GlobalRoundMetrics:
    """Metrics of the global model pooled over every reporting site's test (and train) part."""

    test_accuracy: float
    test_loss: float
    test_auroc: float | None
    train_accuracy: float | None
    num_test: int
    auroc_sites: int = 0
    """Sites the AUROC averages over (those whose test part has both classes)."""
    auroc_num_test: int = 0
    """Test records of those sites: what the AUROC covers, out of ``num_test``."""


@dataclass
class RoundOutcome:
    """One round: who trained, who refused and why, and the metrics of the resulting global model."""

    server_round: int
    duration_seconds: float = 0.0
    trained_sites: list[str] = field(default_factory=list)
    refusals: list[tuple[str, str]] = field(default_factory=list)
    sites: dict[str, SiteRoundMetrics] = field(default_factory=dict)
    global_metrics: GlobalRoundMetrics | None = None
    withheld_sites: list[str] = field(default_factory=list)
    """Sites that withheld their statistics because a part was below the minimum cohort."""
    site_audit_heads: dict[str, tuple[str, int]] = field(default_factory=dict)
    """Each site's newest audit entry (hash, chain length), as the site named it in its replies."""


def pool(sites: list[SiteRoundMetrics]) -> GlobalRoundMetrics | None:
    """Pool per-site metrics into global ones, weighting by each site's record counts."""
    num_test = sum(s.num_test for s in sites)
    if num_test == 0:
        return None
    with_auroc = [s for s in sites if s.test_auroc is not None]
    auroc_weight = sum(s.num_test for s in with_auroc)
    with_train = [s for s in sites if s.train_accuracy is not None]
    train_weight = sum(s.num_train for s in with_train)
    return GlobalRoundMetrics(
        test_accuracy=sum(s.test_accuracy * s.num_test for s in sites) / num_test,
        test_loss=sum(s.test_loss * s.num_test for s in sites) / num_test,
        test_auroc=(sum((s.test_auroc or 0.0) * s.num_test for s in with_auroc) / auroc_weight)
        if auroc_weight
        else None,
        train_accuracy=(sum((s.train_accuracy or 0.0) * s.num_train for s in with_train) / train_weight)
        if train_weight
        else None,
        num_test=num_test,
        auroc_sites=len(with_auroc),
        auroc_num_test=auroc_weight,
    )
