"""Gaussian releases of clipped sums, charged to the site's privacy ledger before they leave.

Every statistic a site sends besides its DP-SGD updates (feature statistics before round 1,
evaluation results each round, the federated preprocessing statistics) leaves through this
module: the Gaussian mechanism on sums of per-record contributions whose L2 norm is bounded by a
public sensitivity (Dwork & Roth 2014, Thm A.1; Mironov 2017, Prop. 7).

API
---
``release_rows(rows, *, l2_sensitivity, noise_multiplier, kind, statistic, ledger, context, rng)``
    ``rows`` is an ``(n_records, k)`` array: one row per record, the record's contribution to ``k``
    sums. Each row is clipped to L2 norm ``l2_sensitivity`` (a no-op when the caller already
    bounded it, e.g. by clipping values to the data contract's public ranges), the rows are
    summed, and :func:`release_sums` releases the ``k`` sums. The preferred entry: the bound holds
    by construction, whatever the data.
``release_sums(sums, *, l2_sensitivity, noise_multiplier, kind, statistic, ledger, context, rng)``
    ``sums`` are ``k`` sums over records whose per-record contribution vector has L2 norm at most
    ``l2_sensitivity`` (the caller's promise; state the bound where it is computed). Charges the
    ledger, then returns a :class:`Released`: ``sums + N(0, (noise_multiplier * l2_sensitivity)^2)``
    independently per coordinate.
``release_context(site, spec, policy, *, spec_hash, server_round)``
    The :class:`ReleaseContext` (who pays, on which ledger, at which delta, within which budgets).
``noise_generator(site, *, seed)``
    The random generator a site draws noise from: secret (the OS's) at a real site, seeded at a
    simulated one (a demo run is reproducible).

Invariants (tested in ``tests/participants/test_accounted_release.py``):

* the charge is on disk (:meth:`participants.privacy_ledger.PrivacyLedger.charge`) before the
  noised values exist; a release that would pass the site's budget for the dataset or the spec's
  budget for the trial raises :class:`~trialcore.errors.BudgetExhausted` (exit 4), writes nothing
  and releases nothing; the budget covers every release kind, composed with DP-SGD;
* the charge is ``Mechanism(noise_multiplier, sample_rate=1.0, steps=1)``: a Gaussian mechanism
  with L2 sensitivity ``D`` and noise standard deviation ``sigma * D`` has Renyi DP
  ``alpha / (2 sigma^2)`` at every order alpha (Mironov 2017, Prop. 7), exactly one DP-SGD step
  with noise multiplier ``sigma`` and no subsampling, so it composes with DP-SGD in the same
  accountant history (Opacus's ``compute_rdp`` at ``q = 1`` returns ``alpha / (2 sigma^2)``);
* the privacy unit is one record (add or remove one record at the site); values are released as
  float64 sums, nothing is rounded or clamped here (post-processing is the caller's, and free);
* a release is charged once per (trial, spec hash, kind, statistic, round): a repeat after a crash
  reuses the charge (``Released.repeated``); the caller must then release only what the first
  call would have (the site's question book stores each reply before it leaves, so a repeated
  question gets the stored reply and never fresh noise).

Caveat: noise is drawn by numpy in floating point; the known attacks on floating-point Laplace
noise (Mironov 2012) are not defended against here (nor by Opacus for DP-SGD).
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from participants.privacy_ledger import Charge, PlannedCharge, PrivacyLedger, ReleaseKind
from participants.privacy_plan import dataset_key
from participants.site_config import LoadedSiteConfig
from policies import ComposedPolicy
from trialcore.errors import BadInputError, Problem, show_value
from trialcore.privacy_accountant import Accountant, Mechanism
from trialcore.spec import TrialSpec

__all__ = [
    "ReleaseContext",
    "Released",
    "gaussian_mechanism",
    "noise_generator",
    "release_context",
    "release_rows",
    "release_sums",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ReleaseContext:
    """Who pays for a release and within which limits: the ledger fields of a charge but the mechanism."""

    site_id: str
    dataset: str
    trial_id: str
    spec_hash: str
    round: int
    accountant: Accountant
    delta: float
    epsilon_budget: float
    trial_epsilon_budget: float


@dataclass(frozen=True)
class Released:
    """Noised sums that may leave the site, the noise standard deviation used and the ledger charge paid."""

    values: FloatArray
    noise_std: float
    charge: Charge
    repeated: bool
    """True if the ledger already held this release's charge (a repeat after a crash): nothing was added."""


def gaussian_mechanism(noise_multiplier: float) -> Mechanism:
    """The accountant's view of one Gaussian release: one step at sample rate 1 (see the module docstring)."""
    return Mechanism(noise_multiplier=noise_multiplier, sample_rate=1.0, steps=1)


def release_context(
    site: LoadedSiteConfig, spec: TrialSpec, policy: ComposedPolicy, *, spec_hash: str, server_round: int
) -> ReleaseContext:
    """The context of a release by ``site`` in ``spec``'s ``server_round`` (0 before round 1)."""
    return ReleaseContext(
        site_id=site.config.site_id,
        dataset=dataset_key(site),
        trial_id=spec.trial_id,
        spec_hash=spec_hash,
        round=server_round,
        accountant=Accountant(spec.privacy.accountant),
        delta=spec.privacy.delta,
        epsilon_budget=policy.epsilon_budget,
        trial_epsilon_budget=spec.privacy.epsilon_budget,
    )


def noise_generator(site: LoadedSiteConfig, *, seed: int) -> np.random.Generator:
    """A secret generator (OS entropy) at a real site; one seeded with ``seed`` at a simulated site."""
    if site.config.simulated:
        return np.random.default_rng(seed)
    return np.random.default_rng(secrets.randbits(128))


def release_rows(
    rows: npt.ArrayLike,
    *,
    l2_sensitivity: float,
    noise_multiplier: float,
    kind: ReleaseKind,
    statistic: str,
    ledger: PrivacyLedger,
    context: ReleaseContext,
    rng: np.random.Generator,
) -> Released:
    """Clip each record's row to L2 norm ``l2_sensitivity``, sum the rows, release the sums (see the module docstring)."""
    matrix = np.asarray(rows, dtype=np.float64)
    if matrix.ndim != 2:
        raise _bad("rows", f"an array of {matrix.ndim} dimension(s)", "one row per record: a 2-D array")
    _check_sensitivity(l2_sensitivity)
    matrix = np.where(np.isfinite(matrix), matrix, 0.0)  # a non-finite contribution counts as none
    norms = np.linalg.norm(matrix, axis=1)
    scale = np.minimum(1.0, l2_sensitivity / np.maximum(norms, np.finfo(np.float64).tiny))
    sums = (matrix * scale[:, None]).sum(axis=0)
    return release_sums(
        sums,
        l2_sensitivity=l2_sensitivity,
        noise_multiplier=noise_multiplier,
        kind=kind,
        statistic=statistic,
        ledger=ledger,
        context=context,
        rng=rng,
    )


def release_sums(
    sums: npt.ArrayLike,
    *,
    l2_sensitivity: float,
    noise_multiplier: float,
    kind: ReleaseKind,
    statistic: str,
    ledger: PrivacyLedger,
    context: ReleaseContext,
    rng: np.random.Generator,
) -> Released:
    """Charge ``context``'s ledger for a Gaussian release of ``sums``, then return them noised.

    Raises
    ------
    BudgetExhausted
        (exit 4) the release would pass a budget; nothing is written or released.
    BadInputError
        (exit 2) a sensitivity, noise multiplier or sum out of range; nothing is charged.
    IntegrityError
        (exit 5) the ledger is damaged; nothing is charged.
    """
    values = np.asarray(sums, dtype=np.float64).reshape(-1)
    _check_sensitivity(l2_sensitivity)
    if not np.all(np.isfinite(values)):
        raise _bad("sums", "a non-finite sum", "finite sums of clipped contributions")
    mechanism = gaussian_mechanism(noise_multiplier)
    problems = mechanism.problems("release", ("noise_multiplier", "sample_rate", "steps"))
    if problems:
        raise BadInputError("Cannot release statistics", problems)
    before = len(ledger.charges())
    charge = ledger.charge(
        PlannedCharge(
            site_id=context.site_id,
            dataset=context.dataset,
            trial_id=context.trial_id,
            spec_hash=context.spec_hash,
            round=context.round,
            accountant=context.accountant,
            mechanism=mechanism,
            delta=context.delta,
            epsilon_budget=context.epsilon_budget,
            trial_epsilon_budget=context.trial_epsilon_budget,
            release=kind,
            statistic=statistic,
        )
    )
    repeated = charge.seq < before
    noise_std = noise_multiplier * l2_sensitivity
    noised = values + rng.normal(0.0, noise_std, size=values.shape)
    return Released(values=noised, noise_std=noise_std, charge=charge, repeated=repeated)


def _check_sensitivity(l2_sensitivity: float) -> None:
    if not (isinstance(l2_sensitivity, (int, float)) and math.isfinite(l2_sensitivity) and l2_sensitivity > 0):
        raise _bad("l2_sensitivity", show_value(l2_sensitivity), "a finite number > 0 (public, never from the data)")


def _bad(field: str, found: str, allowed: str) -> BadInputError:
    return BadInputError("Cannot release statistics", [Problem("release", field, found, allowed)])
