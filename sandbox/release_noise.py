"""How much noise the sites' released evaluation metrics carry, and whether a fairness gap can be read from them.

Each site releases its test accuracy as the ratio of two noised sums (correct predictions over
records, :mod:`participants.evaluate_handler`), each with Gaussian noise of standard deviation
``evaluation_noise_multiplier x`` :data:`~participants.evaluate_handler.EVALUATION_SENSITIVITY`. By
the delta method the released accuracy's standard deviation is about
``noise_std x sqrt(1 + accuracy^2) / records`` (:func:`accuracy_noise_std`). The fairness gap (best
minus worst site accuracy) is reported and published only when its own noise, about ``sqrt(2) x``
the largest site's, is at most :data:`FAIRNESS_GAP_MAX_NOISE_STD`: a gap made of noise would raise
the fairness alert for nothing (the demo's 30-record test parts give a noise of about 1).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from participants.evaluate_handler import EVALUATION_SENSITIVITY

FAIRNESS_GAP_MAX_NOISE_STD = 0.025
"""Largest noise standard deviation (accuracy, 0-1) of a fairness gap that is still reported: a 0.1 gap is 4 of them."""


def accuracy_noise_std(*, num_test: int, accuracy: float, noise_multiplier: float) -> float:
    """Approximate standard deviation (0-1) of a site's released accuracy over ``num_test`` records."""
    return noise_multiplier * EVALUATION_SENSITIVITY * math.sqrt(1 + accuracy * accuracy) / max(num_test, 1)


def fairness_gap_noise_std(sites: Iterable[tuple[int, float]], *, noise_multiplier: float) -> float | None:
    """Noise standard deviation of the gap between ``(num_test, accuracy)`` sites; None with fewer than two sites."""
    noise = [accuracy_noise_std(num_test=n, accuracy=a, noise_multiplier=noise_multiplier) for n, a in sites]
    return math.sqrt(2) * max(noise) if len(noise) >= 2 else None


def pooled_accuracy_noise_std(*, num_test: int, num_sites: int, accuracy: float, noise_multiplier: float) -> float:
    """Approximate standard deviation (0-1) of the pooled accuracy over ``num_sites`` sites' ``num_test`` records.

    The pooled accuracy is the sum of the sites' noised correct counts over the sum of their
    noised record counts: ``num_sites`` independent noises of the same scale, so the standard
    deviation grows with the square root of the number of sites and falls with the records pooled.
    """
    scale = noise_multiplier * EVALUATION_SENSITIVITY * math.sqrt(max(num_sites, 1))
    return scale * math.sqrt(1 + accuracy * accuracy) / max(num_test, 1)
