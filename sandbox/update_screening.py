"""Screening one site's model update before it may enter the global model.

A train reply carries the site's locally trained arrays. Before aggregation the coordinator
compares them with the global arrays it sent that round and rejects the update, with one of
three reasons, when it

* ``wrong-shape``: cannot be aggregated: not exactly one ArrayRecord, other array names, other
  shapes or dtypes, or arrays that do not decode as NumPy arrays;
* ``non-finite``: holds any NaN, +Inf or -Inf;
* ``norm-too-large``: moves the model further than the policy allows: the L2 norm of
  (update - global), over all arrays together, exceeds ``privacy.max_update_l2_norm``.

Checks run in that order and the first failure is the reason. Bounding the update norm is the
norm-thresholding defence against model poisoning of Sun et al. 2019 ("Can you really backdoor
federated learning?"); rejecting manipulated updates answers AI Act Art. 15(5) (resilience
against data and model poisoning). Pure: no I/O, no Flower messaging, nothing changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from flwr.app import ArrayRecord, RecordDict
from numpy.typing import NDArray

__all__ = [
    "COUNT_MISMATCH",
    "NON_FINITE",
    "NORM_TOO_LARGE",
    "SCREENING_REASONS",
    "SITE_IDENTITY",
    "SITE_REFUSED",
    "TRUST_REASONS",
    "WRONG_SHAPE",
    "Rejection",
    "screen_reply",
    "screen_update",
    "update_l2_norm",
]

SITE_REFUSED = "site-refused"
"""The site replied with an error instead of an update (not screened here; counted alike)."""
NON_FINITE = "non-finite"
WRONG_SHAPE = "wrong-shape"
NORM_TOO_LARGE = "norm-too-large"
SCREENING_REASONS = (NON_FINITE, WRONG_SHAPE, NORM_TOO_LARGE)
"""Every reason :func:`screen_update` can give."""
SITE_IDENTITY = "site-identity"
"""The reply claims another site than the one its node is bound to, or its node is bound to none."""
COUNT_MISMATCH = "count-mismatch"
"""The reply's record count differs from the one its site committed before round 1 (or is malformed)."""
TRUST_REASONS = (SITE_IDENTITY, COUNT_MISMATCH)
"""Reasons the governed strategy gives for a reply whose claims it cannot check (:mod:`sandbox.governed_strategy`)."""


@dataclass(frozen=True)
class Rejection:
    """Why one site's update stays out of the global model.

    Attributes
    ----------
    site_id:
        The site whose update it was.
    reason:
        One of :data:`SCREENING_REASONS` or :data:`SITE_REFUSED` (a metric label value).
    detail:
        One line with the numbers behind the reason (for the audit chain and report, never a label).
    """

    site_id: str
    reason: str
    detail: str


def screen_reply(
    site_id: str, content: RecordDict, global_arrays: ArrayRecord, *, max_update_l2_norm: float | None
) -> Rejection | None:
    """Screen a train reply's content, which must hold exactly one ArrayRecord; None if accepted."""
    records = list(content.array_records.values())
    if len(records) != 1:
        return Rejection(site_id, WRONG_SHAPE, f"expected exactly one ArrayRecord in the reply, found {len(records)}")
    return screen_update(site_id, records[0], global_arrays, max_update_l2_norm=max_update_l2_norm)


def screen_update(
    site_id: str, update: ArrayRecord, global_arrays: ArrayRecord, *, max_update_l2_norm: float | None
) -> Rejection | None:
    """Screen ``update`` against the ``global_arrays`` sent that round; None if it may be aggregated.

    Parameters
    ----------
    site_id:
        Named in the rejection.
    update:
        The site's returned arrays (a full model, not a difference).
    global_arrays:
        The global model the site was sent this round.
    max_update_l2_norm:
        Largest allowed L2 norm of ``update - global_arrays`` over all arrays; None = unbounded.
    """
    decoded = _decode(update)
    if isinstance(decoded, str):
        return Rejection(site_id, WRONG_SHAPE, decoded)
    reference = _decode(global_arrays)
    if isinstance(reference, str):
        raise ValueError(f"the global model's arrays are malformed: {reference}")
    mismatch = _layout_mismatch(decoded, reference)
    if mismatch is not None:
        return Rejection(site_id, WRONG_SHAPE, mismatch)
    non_finite = _non_finite(decoded)
    if non_finite is not None:
        return Rejection(site_id, NON_FINITE, non_finite)
    if max_update_l2_norm is None:
        return None
    norm = update_l2_norm(decoded, reference)
    if not norm <= max_update_l2_norm:
        return Rejection(
            site_id,
            NORM_TOO_LARGE,
            f"L2 norm of the update {norm:.6g} exceeds the policy bound {max_update_l2_norm:.6g}",
        )
    return None


def update_l2_norm(update: dict[str, NDArray[np.generic]], global_arrays: dict[str, NDArray[np.generic]]) -> float:
    """L2 norm of ``update - global_arrays`` over all arrays together, computed in float64.

    Both must hold the same names and shapes (see :func:`screen_update`). Differences too large
    for float64 give ``inf``.
    """
    squares = 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        for key, reference in global_arrays.items():
            delta = update[key].astype(np.float64) - reference.astype(np.float64)
            squares += float(np.sum(np.square(delta)))
    return math.sqrt(squares) if not math.isnan(squares) else math.inf


def _decode(record: ArrayRecord) -> dict[str, NDArray[np.generic]] | str:
    """Each array as NumPy, or a line saying which one does not decode or lies about its layout."""
    arrays: dict[str, NDArray[np.generic]] = {}
    for key, array in record.items():
        try:
            value = array.numpy()
        except (TypeError, ValueError, OSError, EOFError) as err:
            return f"array {key!r} does not decode as a NumPy array ({type(err).__name__})"
        if tuple(value.shape) != tuple(array.shape) or str(value.dtype) != array.dtype:
            return (
                f"array {key!r} declares shape {tuple(array.shape)} dtype {array.dtype} "
                f"but holds shape {tuple(value.shape)} dtype {value.dtype}"
            )
        arrays[key] = value
    return arrays


def _layout_mismatch(update: dict[str, NDArray[np.generic]], reference: dict[str, NDArray[np.generic]]) -> str | None:
    """A line naming the first difference in array names, shapes or dtypes; None if they match."""
    missing, extra = sorted(reference.keys() - update.keys()), sorted(update.keys() - reference.keys())
    if missing or extra:
        return f"array names differ from the global model's: missing {missing}, unexpected {extra}"
    for key, expected in reference.items():
        found = update[key]
        if found.shape != expected.shape or found.dtype != expected.dtype:
            return (
                f"array {key!r} has shape {found.shape} dtype {found.dtype}; "
                f"the global model's has shape {expected.shape} dtype {expected.dtype}"
            )
    return None


def _non_finite(update: dict[str, NDArray[np.generic]]) -> str | None:
    """A line counting NaN, +Inf and -Inf values and naming the first array holding one; None if all finite."""
    nan = pos = neg = total = 0
    first: str | None = None
    for key, value in update.items():
        total += value.size
        if not np.issubdtype(value.dtype, np.floating):
            continue  # integer and boolean arrays are always finite
        floats = np.asarray(value, dtype=np.float64)
        counts = int(np.isnan(floats).sum()), int(np.isposinf(floats).sum()), int(np.isneginf(floats).sum())
        if any(counts):
            first = first or key
            nan, pos, neg = nan + counts[0], pos + counts[1], neg + counts[2]
    if first is None:
        return None
    return f"{nan + pos + neg} of {total} values are not finite (NaN {nan}, +Inf {pos}, -Inf {neg}); first in array {first!r}"
