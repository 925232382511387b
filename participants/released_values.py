"""Rules for values a site takes from a message or puts into a reply, beyond the verified spec.

* **Record counts** leave a site rounded down to a multiple of its policy's
  ``data.count_granularity`` (default :data:`COUNT_GRANULARITY`, 10; when policies compose the
  largest wins); they are treated as public. A count is the weight of a site's update and its
  evaluation, so the coordinator learns the size of a site's parts to within that granularity,
  never one patient more or less.
* **Feature scaling** (the federation-wide mean and standard deviation the coordinator sends) is
  checked (one finite value per feature, standard deviations > 0) and **pinned**: the first
  scaling a site uses in a trial is kept in its trial folder (``feature-scaling.json``) and a
  message with any other scaling is refused, so a coordinator cannot vary the scaling between
  questions to probe the records.
* **Minimum cohort**: the site applies the larger of its own policy's minimum cohort and the one
  the message asks for (the composed policy's), and pins the asked one on first use
  (``min-cohort.json``): a message asking another one later in the trial is refused, so a
  coordinator cannot search for an exact count by varying the threshold; one threshold per trial
  is all it can try (counts are treated as public anyway).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from trialcore import layout
from trialcore.atomic_file import write_json_atomic

__all__ = ["COUNT_GRANULARITY", "ScalingRefused", "pinned_min_cohort", "pinned_scaling", "released_count"]

COUNT_GRANULARITY = 10
"""Record counts are released rounded down to a multiple of this many records."""


class ScalingRefused(ValueError):
    """The feature scaling or minimum cohort a message carries is malformed or differs from the one pinned."""


def released_count(count: int, granularity: int = COUNT_GRANULARITY) -> int:
    """``count`` rounded down to a multiple of ``granularity`` (>= 1): what a site releases."""
    return (max(count, 0) // granularity) * granularity


def pinned_scaling(
    folder: Path, mean: list[float], std: list[float], *, num_features: int, median: list[float] | None = None
) -> None:
    """Check the scaling ``(mean, std)`` and pin it in ``folder`` on first use; raise :class:`ScalingRefused`.

    Call it with the site's trial folder and the question book's lock held.
    """
    if len(mean) != num_features or len(std) != num_features:
        raise ScalingRefused(
            f"feature scaling has {len(mean)} means and {len(std)} standard deviations for {num_features} features"
        )
    if median is not None and len(median) != num_features:
        raise ScalingRefused(f"feature scaling has {len(median)} medians for {num_features} features")
    if not all(math.isfinite(v) for v in [*mean, *std, *(median or [])]) or not all(s > 0 for s in std):
        raise ScalingRefused("feature scaling must be finite, with standard deviations > 0")
    scaling: dict[str, list[float]] = {"mean": mean, "std": std, **({"median": median} if median is not None else {})}
    path = layout.scaling_file(folder)
    if not path.exists():
        write_json_atomic(path, scaling)
        return
    pinned = json.loads(path.read_text(encoding="utf-8"))
    if pinned != scaling:
        raise ScalingRefused(
            "feature scaling differs from the one this site already used in this trial; a trial has one scaling"
        )


def pinned_min_cohort(folder: Path, asked: int) -> int:
    """Pin ``asked`` (the minimum cohort a message asks for) in ``folder`` on first use and return it.

    Raises :class:`ScalingRefused` if a different one was pinned for the trial. Call it with the
    question book's lock held.
    """
    path = layout.min_cohort_file(folder)
    if not path.exists():
        write_json_atomic(path, {"min_cohort_size": asked})
        return asked
    pinned = json.loads(path.read_text(encoding="utf-8"))["min_cohort_size"]
    if pinned != asked:
        raise ScalingRefused(
            f"minimum cohort {asked} differs from the {pinned} this trial asked before; a trial has one"
        )
    return int(pinned)
