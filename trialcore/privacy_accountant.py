"""Privacy accounting for DP-SGD: epsilon from a history of Gaussian mechanisms, with Opacus.

A *mechanism* is a run of ``steps`` DP-SGD steps, each a Poisson-subsampled Gaussian mechanism
with sampling rate ``sample_rate`` (probability in (0, 1]) and ``noise_multiplier`` (noise
standard deviation over the clipping norm, dimensionless). A history of mechanisms composes;
its epsilon is for record-level (epsilon, delta)-DP at the given ``delta``.

Two of Opacus's accountants are offered:

* ``rdp`` (default): Rényi-DP with Opacus's default orders (Mironov 2017; Mironov et al. 2019),
  an upper bound on epsilon;
* ``prv``: the privacy-random-variable accountant (Gopi et al. 2021), a tighter numerical estimate
  within Opacus's default error bounds.

Opacus's Gaussian (CLT) accountant is refused: it is an asymptotic approximation that can
report less epsilon than is really spent.
"""

from __future__ import annotations

import enum
import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from trialcore.errors import BadInputError, Problem, show_value

REFUSED_ACCOUNTANTS = {
    "gdp": "Opacus's Gaussian (CLT) accountant is an asymptotic approximation that can under-report epsilon",
    "gaussian": "the Gaussian (CLT) accountant is an asymptotic approximation that can under-report epsilon",
    "clt": "the central-limit-theorem accountant is an approximation that can under-report epsilon",
}
"""Accountant names users may try, and why the sandbox refuses each."""


class Accountant(str, enum.Enum):
    """The privacy accountants the sandbox accepts."""

    RDP = "rdp"
    PRV = "prv"


ACCOUNTANT_CHOICES = ", ".join(a.value for a in Accountant)


MECHANISM_FIELDS = ("noise_multiplier", "sample_rate", "steps")

MAX_NOISE_MULTIPLIER = 1e6
"""Largest noise multiplier the accountants take: epsilon is flat long before it, and Opacus's RDP
arithmetic overflows near 1e154 (a policy floor or spec asking for more is an input error)."""

PRV_MAX_EPSILON = 200.0
"""Above this RDP upper bound the PRV accountant is refused: its grid needs memory growing with epsilon."""
PRV_MAX_STEPS = 1_000_000
"""Above this many steps in all the PRV accountant is refused: its grid grows with the square root of the steps."""


class PrivacyInputError(BadInputError):
    """A noise multiplier, sample rate, step count, delta or accountant name is out of range."""


@dataclass(frozen=True)
class Mechanism:
    """``steps`` DP-SGD steps at Poisson sampling rate ``sample_rate`` and ``noise_multiplier``."""

    noise_multiplier: float
    sample_rate: float
    steps: int

    def problems(self, source: str = "mechanism", names: tuple[str, str, str] = MECHANISM_FIELDS) -> list[Problem]:
        """What is out of range, one :class:`Problem` each (empty when valid); ``names`` label the three fields."""
        found: list[Problem] = []
        if not (math.isfinite(self.noise_multiplier) and 0 < self.noise_multiplier <= MAX_NOISE_MULTIPLIER):
            found.append(
                Problem(
                    source, names[0], show_value(self.noise_multiplier), f"a number > 0 and <= {MAX_NOISE_MULTIPLIER:g}"
                )
            )
        if not (math.isfinite(self.sample_rate) and 0 < self.sample_rate <= 1):
            found.append(Problem(source, names[1], show_value(self.sample_rate), "a probability in (0, 1]"))
        if self.steps < 0:
            found.append(Problem(source, names[2], show_value(self.steps), "a whole number >= 0"))
        return found


def accountant_refusal(name: str) -> tuple[str, str] | None:
    """Why no accountant called ``name`` is accepted, as (summary, what is allowed); None when one is.

    The one check behind the spec's ``privacy.accountant`` field and every ``--accountant`` option.
    """
    lowered = name.strip().lower()
    if lowered in REFUSED_ACCOUNTANTS:
        return f"Accountant {show_value(name)} is refused", f"{ACCOUNTANT_CHOICES} ({REFUSED_ACCOUNTANTS[lowered]})"
    if lowered not in {a.value for a in Accountant}:
        return f"Unknown accountant {show_value(name)}", ACCOUNTANT_CHOICES
    return None


def parse_accountant(name: str, *, source: str = "--accountant") -> Accountant:
    """The accountant called ``name``; refuse the Gaussian (CLT) one and unknown names (exit 2)."""
    refusal = accountant_refusal(name)
    if refusal is not None:
        summary, allowed = refusal
        raise PrivacyInputError(summary, [Problem(source, "accountant", show_value(name), allowed)])
    return Accountant(name.strip().lower())


def epsilon(
    history: Iterable[Mechanism],
    *,
    delta: float,
    accountant: Accountant = Accountant.RDP,
    source: str = "accounting",
    names: tuple[str, str, str, str] = (*MECHANISM_FIELDS, "delta"),
) -> float:
    """Epsilon of the composed ``history`` at ``delta`` (0.0 for an empty history or zero steps).

    Mechanisms with the same noise multiplier and sample rate are merged (composition does not
    depend on order), so a long ledger costs no more than its distinct settings.

    Raises :class:`PrivacyInputError` (exit 2) naming every out-of-range value, as field
    ``names`` of ``source``.
    """
    mechanisms = list(history)
    problems = [p for m in mechanisms for p in m.problems(source, names[:3])]
    if not (math.isfinite(delta) and 0 < delta < 1):
        problems.append(Problem(source, names[3], show_value(delta), "a probability in (0, 1)"))
    if problems:
        raise PrivacyInputError("Cannot compute epsilon", problems)
    merged: dict[tuple[float, float], int] = {}
    for m in mechanisms:
        if m.steps > 0:
            key = (m.noise_multiplier, m.sample_rate)
            merged[key] = merged.get(key, 0) + m.steps
    if not merged:
        return 0.0
    history_key = tuple(sorted((sigma, q, steps) for (sigma, q), steps in merged.items()))
    upper_bound = _rdp_epsilon(history_key, delta)
    if accountant is Accountant.RDP:
        return upper_bound
    total_steps = sum(steps for _, _, steps in history_key)
    if total_steps > PRV_MAX_STEPS:
        raise PrivacyInputError(
            "The prv accountant cannot compute epsilon over this many steps",
            [
                Problem(
                    source,
                    names[2],
                    str(total_steps),
                    f"at most {PRV_MAX_STEPS:,} steps for prv (its numerical grid grows with the steps to gigabytes); "
                    "use rdp for longer histories",
                )
            ],
        )
    if upper_bound > PRV_MAX_EPSILON:
        raise PrivacyInputError(
            "The prv accountant cannot compute an epsilon this large",
            [
                Problem(
                    source,
                    "accountant",
                    f"prv with an RDP bound of epsilon {upper_bound:.4g}",
                    f"rdp for settings whose epsilon exceeds {PRV_MAX_EPSILON:g} (PRV's numerical grid grows with epsilon "
                    "to gigabytes; such an epsilon is no meaningful privacy anyway)",
                )
            ],
        )
    return _prv_epsilon(history_key, delta)


def _rdp_epsilon(history: tuple[tuple[float, float, int], ...], delta: float) -> float:
    """Opacus's RDPAccountant computation (default orders), with the per-step RDP of each setting cached."""
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis import rdp as rdp_analysis

    orders = RDPAccountant.DEFAULT_ALPHAS
    total = sum(steps * _rdp_per_step(sigma, q) for sigma, q, steps in history)
    with warnings.catch_warnings():
        # "Optimal order is the smallest/largest alpha": a hint that a wider range of orders could
        # give a tighter bound. The bound Opacus's default orders give is still an upper bound.
        warnings.filterwarnings("ignore", message="Optimal order is the")
        value, _ = rdp_analysis.get_privacy_spent(orders=orders, rdp=total, delta=delta)
    return max(float(value), 0.0)


@lru_cache(maxsize=256)
def _rdp_per_step(noise_multiplier: float, sample_rate: float) -> npt.NDArray[np.float64]:
    """RDP of one step at each of Opacus's default orders (RDP is linear in the number of steps)."""
    # Imported here: Opacus loads torch, which commands that never account need not pay for.
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis import rdp as rdp_analysis

    per_step = rdp_analysis.compute_rdp(
        q=sample_rate, noise_multiplier=noise_multiplier, steps=1, orders=RDPAccountant.DEFAULT_ALPHAS
    )
    result = np.asarray(per_step, dtype=np.float64)
    result.setflags(write=False)
    return result


@lru_cache(maxsize=256)
def _prv_epsilon(history: tuple[tuple[float, float, int], ...], delta: float) -> float:
    """Opacus's PRVAccountant with its default error bounds."""
    from opacus.accountants import PRVAccountant

    engine = PRVAccountant()
    engine.history = list(history)
    # At sample rate 1, Opacus's PRV takes log(1 - q) = log(0) on the way; the result is still right.
    # It sizes its grid with an RDP bound, which may hint "Optimal order is the largest alpha".
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.filterwarnings("ignore", message="Optimal order is the")
        value = float(engine.get_epsilon(delta=delta))
    return max(value, 0.0)
