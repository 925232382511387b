"""Gaussian releases of clipped sums: charged to the site's ledger beside DP-SGD, priced as Opacus prices them, refused over budget."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

from participants.accounted_release import (
    ReleaseContext,
    Released,
    gaussian_mechanism,
    release_rows,
    release_sums,
)
from participants.privacy_ledger import Charge, PlannedCharge, PrivacyLedger, epsilon_by_release, summarise
from trialcore.errors import BadInputError, BudgetExhausted
from trialcore.privacy_accountant import Accountant, Mechanism, epsilon

DELTA = 1e-5
SGD_ROUND = Mechanism(noise_multiplier=1.0, sample_rate=0.1, steps=10)


def context(*, server_round: int = 0, budget: float = 1e6, trial_budget: float = 1e6) -> ReleaseContext:
    return ReleaseContext(
        site_id="de-berlin",
        dataset="embedded-breast-cancer-0",
        trial_id="trial-a",
        spec_hash="ab" * 32,
        round=server_round,
        accountant=Accountant.RDP,
        delta=DELTA,
        epsilon_budget=budget,
        trial_epsilon_budget=trial_budget,
    )


@pytest.fixture
def ledger(tmp_path: Path) -> PrivacyLedger:
    return PrivacyLedger(tmp_path / "privacy" / "embedded-breast-cancer-0.ledger.jsonl")


def opacus_rdp_epsilon(history: list[tuple[float, float, int]], delta: float) -> float:
    """Opacus's own RDPAccountant, fed the history directly."""
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = list(history)
    with warnings.catch_warnings():
        # Opacus hints that more orders could tighten the bound; the repository's accountant uses the same orders.
        warnings.filterwarnings("ignore", message="Optimal order is the")
        return float(accountant.get_epsilon(delta=delta))


def analytic_gaussian_epsilon(noise_multiplier: float, delta: float) -> float:
    """Exact epsilon of one Gaussian mechanism (Balle & Wang 2018, Thm 8), by bisection on epsilon."""

    def delta_of(eps: float) -> float:
        s = noise_multiplier
        return float(norm.cdf(1 / (2 * s) - eps * s) - math.exp(eps) * norm.cdf(-1 / (2 * s) - eps * s))

    low, high = 0.0, 100.0
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if delta_of(middle) > delta else (low, middle)
    return high


@pytest.mark.parametrize("sigma", [0.8, 2.0, 5.0, 20.0])
def test_one_release_is_one_unsampled_step_in_renyi_dp(sigma: float) -> None:
    """Known answer: the charge's per-order RDP is alpha / (2 sigma^2), the Gaussian mechanism's (Mironov 2017, Prop. 7)."""
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis.rdp import compute_rdp

    orders = np.asarray(RDPAccountant.DEFAULT_ALPHAS, dtype=np.float64)
    mechanism = gaussian_mechanism(sigma)
    assert (mechanism.sample_rate, mechanism.steps) == (1.0, 1)
    per_order = compute_rdp(q=1.0, noise_multiplier=sigma, steps=1, orders=list(orders))
    np.testing.assert_allclose(per_order, orders / (2 * sigma**2), rtol=1e-12)
    # ... and Opacus converts it to the same epsilon the repository's accountant reports.
    assert epsilon([mechanism], delta=DELTA) == pytest.approx(opacus_rdp_epsilon([(sigma, 1.0, 1)], DELTA), rel=1e-9)


@pytest.mark.parametrize("sigma", [1.0, 3.0, 10.0])
def test_release_epsilon_brackets_the_exact_gaussian_epsilon(sigma: float) -> None:
    """RDP is an upper bound on the exact (analytic) Gaussian epsilon; PRV is within its error bound (0.02) of it."""
    exact = analytic_gaussian_epsilon(sigma, DELTA)
    rdp = epsilon([gaussian_mechanism(sigma)], delta=DELTA, accountant=Accountant.RDP)
    prv = epsilon([gaussian_mechanism(sigma)], delta=DELTA, accountant=Accountant.PRV)
    assert rdp >= exact
    assert rdp <= exact * 1.35, "RDP's conversion is loose, but not by more than a third at these settings"
    assert prv == pytest.approx(exact, abs=0.02)
    assert prv <= rdp


def test_releases_compose_with_dp_sgd_in_one_history(ledger: PrivacyLedger) -> None:
    """A release and DP-SGD rounds on one ledger give Opacus's epsilon of the joint history."""
    rng = np.random.default_rng(0)
    release_sums(
        np.zeros(4),
        l2_sensitivity=2.0,
        noise_multiplier=8.0,
        kind="feature-statistics",
        statistic="sums",
        ledger=ledger,
        context=context(),
        rng=rng,
    )
    for server_round in (1, 2):
        ledger.charge(
            PlannedCharge(
                **{**vars(context(server_round=server_round)), "mechanism": SGD_ROUND},
            )
        )
    released = release_sums(
        np.zeros(3),
        l2_sensitivity=2.0,
        noise_multiplier=12.0,
        kind="evaluation",
        statistic="",
        ledger=ledger,
        context=context(server_round=2),
        rng=rng,
    )
    expected = opacus_rdp_epsilon([(8.0, 1.0, 1), (1.0, 0.1, 20), (12.0, 1.0, 1)], DELTA)
    assert released.charge.trial_epsilon == pytest.approx(expected, rel=1e-9)
    charges = ledger.charges()
    assert [c.release for c in charges] == ["feature-statistics", "dp-sgd", "dp-sgd", "evaluation"]
    by_kind = epsilon_by_release(charges, trial_id="trial-a", delta=DELTA, accountant=Accountant.RDP)
    assert by_kind["dp-sgd"] == pytest.approx(opacus_rdp_epsilon([(1.0, 0.1, 20)], DELTA), rel=1e-9)
    assert by_kind["feature-statistics"] == pytest.approx(opacus_rdp_epsilon([(8.0, 1.0, 1)], DELTA), rel=1e-9)
    assert max(by_kind.values()) < released.charge.trial_epsilon <= sum(by_kind.values())
    summary = summarise(charges)["trials"][0]
    assert (summary["rounds"], summary["steps"]) == (2, 20), "rounds and steps count training only"
    assert summary["releases"] == {"dp-sgd": 2, "feature-statistics": 1, "evaluation": 1}


def test_noise_has_the_stated_standard_deviation(ledger: PrivacyLedger) -> None:
    """Each coordinate gets independent Gaussian noise of standard deviation noise_multiplier x sensitivity."""
    sums = np.full(40_000, 5.0)
    released = release_sums(
        sums,
        l2_sensitivity=3.0,
        noise_multiplier=2.5,
        kind="evaluation",
        statistic="",
        ledger=ledger,
        context=context(),
        rng=np.random.default_rng(7),
    )
    assert released.noise_std == 7.5
    noise = released.values - sums
    assert abs(noise.mean()) < 4 * 7.5 / math.sqrt(noise.size)
    assert noise.std() == pytest.approx(7.5, rel=0.02)
    assert released.charge.noise_multiplier == 2.5 and not released.repeated


def test_a_release_over_budget_is_refused_and_writes_nothing(ledger: PrivacyLedger) -> None:
    """Over the trial's budget: BudgetExhausted, the ledger file unchanged, no values."""
    release_sums(
        [1.0],
        l2_sensitivity=1.0,
        noise_multiplier=5.0,
        kind="feature-statistics",
        statistic="sums",
        ledger=ledger,
        context=context(trial_budget=2.0),
        rng=np.random.default_rng(1),
    )
    before = ledger.path.read_bytes()
    with pytest.raises(BudgetExhausted) as caught:
        release_sums(
            [1.0],
            l2_sensitivity=1.0,
            noise_multiplier=1.0,
            kind="evaluation",
            statistic="",
            ledger=ledger,
            context=context(server_round=1, trial_budget=2.0),
            rng=np.random.default_rng(1),
        )
    assert "evaluation release of round 1" in caught.value.problems[0].allowed
    assert ledger.path.read_bytes() == before


def test_a_repeated_release_is_charged_once(ledger: PrivacyLedger) -> None:
    """The same (kind, statistic, round) again reuses its charge; another statistic is a new charge."""

    def sums(statistic: str) -> Released:
        return release_sums(
            [1.0],
            l2_sensitivity=1.0,
            noise_multiplier=4.0,
            kind="feature-statistics",
            statistic=statistic,
            ledger=ledger,
            context=context(),
            rng=np.random.default_rng(1),
        )

    first, again, other = sums("sums"), sums("sums"), sums("medians")
    assert again.repeated and again.charge == first.charge
    assert not other.repeated and len(ledger.charges()) == 2


def test_rows_are_clipped_to_the_sensitivity(ledger: PrivacyLedger) -> None:
    """release_rows bounds every record's contribution, so one outlier moves the sums by at most the sensitivity."""
    rows = np.array([[0.3, 0.4], [300.0, 400.0], [np.nan, 1.0]])
    released = release_rows(
        rows,
        l2_sensitivity=1.0,
        noise_multiplier=0.01,
        kind="feature-statistics",
        statistic="sums",
        ledger=ledger,
        context=context(),
        rng=np.random.default_rng(0),
    )
    np.testing.assert_allclose(released.values, [0.3 + 0.6, 0.4 + 0.8 + 1.0], atol=0.05)


@pytest.mark.parametrize("sensitivity", [0.0, -1.0, math.inf, math.nan])
def test_a_bad_sensitivity_is_refused_before_any_charge(ledger: PrivacyLedger, sensitivity: float) -> None:
    """A sensitivity that is not a finite positive number is an input error; nothing is charged."""
    with pytest.raises(BadInputError):
        release_sums(
            [1.0],
            l2_sensitivity=sensitivity,
            noise_multiplier=1.0,
            kind="evaluation",
            statistic="",
            ledger=ledger,
            context=context(),
            rng=np.random.default_rng(0),
        )
    assert ledger.charges() == []


def test_training_charges_hash_as_before_release_kinds(ledger: PrivacyLedger) -> None:
    """A dp-sgd charge written before release kinds existed (no release/statistic keys) still reads."""
    charge = ledger.charge(PlannedCharge(**{**vars(context(server_round=1)), "mechanism": SGD_ROUND}))
    legacy = charge.model_dump(mode="json", exclude={"release", "statistic"})
    assert Charge.model_validate(legacy).expected_hash() == charge.hash
    ledger.path.write_text(Charge.model_validate(legacy).model_dump_json(exclude={"release", "statistic"}) + "\n")
    assert ledger.charges() == [charge]
