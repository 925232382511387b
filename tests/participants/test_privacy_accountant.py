"""Privacy accounting: known answers, agreement with Opacus, the laws epsilon obeys, and what is refused.

Epsilon is for record-level (epsilon, delta)-DP of a history of DP-SGD runs (noise multiplier,
Poisson sample rate, steps). The sandbox computes it with Opacus's RDP or PRV accountant; these
tests check it against answers computed independently (closed form of the Gaussian mechanism,
Opacus's own accountants driven directly) and against the properties any accountant must have.
"""

from __future__ import annotations

import json
import math
import resource
import time
import warnings

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from opacus.accountants import PRVAccountant, RDPAccountant
from scipy.optimize import brentq
from scipy.stats import norm
from typer.testing import CliRunner

from sandbox.cli import app
from trialcore.errors import ExitCode
from trialcore.privacy_accountant import (
    PRV_MAX_EPSILON,
    Accountant,
    Mechanism,
    PrivacyInputError,
    epsilon,
    parse_accountant,
)

noise_multipliers = st.floats(min_value=0.6, max_value=5.0)
sample_rates = st.one_of(st.just(1.0), st.floats(min_value=1e-3, max_value=1.0, exclude_min=True))
step_counts = st.integers(min_value=1, max_value=2000)
deltas = st.floats(min_value=1e-7, max_value=1e-3)
mechanisms = st.builds(Mechanism, noise_multipliers, sample_rates, step_counts)


def opacus_rdp(history: list[tuple[float, float, int]], delta: float) -> float:
    """Epsilon by Opacus's RDPAccountant (default orders), driven directly."""
    engine = RDPAccountant()
    engine.history = list(history)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the")
        return float(engine.get_epsilon(delta=delta))


def opacus_prv(history: list[tuple[float, float, int]], delta: float) -> float:
    """Epsilon by Opacus's PRVAccountant (default error bounds), driven directly."""
    engine = PRVAccountant()
    engine.history = list(history)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.filterwarnings("ignore", message="Optimal order is the")
        return float(engine.get_epsilon(delta=delta))


def gaussian_mechanism_epsilon(noise_multiplier: float, steps: int, delta: float) -> float:
    """Exact epsilon of ``steps`` full-batch Gaussian steps: one Gaussian mechanism with mu = sqrt(T) / sigma.

    delta(eps) = Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2) (Balle & Wang 2018), solved for eps.
    """
    mu = math.sqrt(steps) / noise_multiplier

    def excess(eps: float) -> float:
        return float(norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * norm.cdf(-eps / mu - mu / 2)) - delta

    return float(brentq(excess, 0.0, 500.0, xtol=1e-12))


def rdp(history: list[Mechanism], delta: float) -> float:
    return epsilon(history, delta=delta, accountant=Accountant.RDP)


# -- known answers ---------------------------------------------------------------------------------


def test_rdp_known_answer() -> None:
    """RDP of 1000 steps at sigma 1.0, q 0.01, delta 1e-5 is the textbook 2.10."""
    assert rdp([Mechanism(1.0, 0.01, 1000)], 1e-5) == pytest.approx(2.10, abs=0.01)


@pytest.mark.parametrize(
    ("sigma", "steps", "delta"), [(1.0, 10, 1e-5), (2.0, 4, 1e-5), (0.8, 50, 1e-6), (3.0, 100, 1e-3)]
)
def test_prv_at_full_batch_is_the_exact_gaussian_mechanism(sigma: float, steps: int, delta: float) -> None:
    """At q = 1 the PRV epsilon is the exact Gaussian-mechanism epsilon (an upper estimate within 0.02); RDP bounds it from above."""
    exact = gaussian_mechanism_epsilon(sigma, steps, delta)
    prv = epsilon([Mechanism(sigma, 1.0, steps)], delta=delta, accountant=Accountant.PRV)
    assert exact - 1e-6 <= prv <= exact + 0.02, (prv, exact)
    assert rdp([Mechanism(sigma, 1.0, steps)], delta) >= exact


def test_exact_reference_itself_is_right() -> None:
    """The independent reference reproduces the known value for sigma 1, 10 steps, delta 1e-5 (17.857)."""
    assert gaussian_mechanism_epsilon(1.0, 10, 1e-5) == pytest.approx(17.857, abs=1e-3)


# -- agreement with Opacus's accountants ----------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(history=st.lists(mechanisms, min_size=1, max_size=3), delta=deltas)
@example(history=[Mechanism(1.0, 1.0, 10)], delta=1e-5)
@example(history=[Mechanism(1.0, 0.01, 1000), Mechanism(2.0, 1.0, 4)], delta=1e-5)
def test_rdp_agrees_with_opacus(history: list[Mechanism], delta: float) -> None:
    """Our RDP epsilon equals Opacus's RDPAccountant over the same (unmerged) history, within 1e-3 relative."""
    ours = rdp(history, delta)
    theirs = opacus_rdp([(m.noise_multiplier, m.sample_rate, m.steps) for m in history], delta)
    assert ours == pytest.approx(theirs, rel=1e-3)


@settings(max_examples=10, deadline=None)
@given(mechanism=mechanisms, delta=deltas)
@example(mechanism=Mechanism(1.0, 1.0, 10), delta=1e-5)
@example(mechanism=Mechanism(0.6, 1.0, 30), delta=1e-4)
@example(mechanism=Mechanism(5.0, 1e-3, 1), delta=1e-7)
@example(mechanism=Mechanism(1.0, 0.01, 1000), delta=1e-5)
def test_prv_agrees_with_opacus(mechanism: Mechanism, delta: float) -> None:
    """Our PRV epsilon equals Opacus's PRVAccountant within 0.02 (q = 1 included), or is refused when RDP passes 200."""
    if rdp([mechanism], delta) > PRV_MAX_EPSILON:
        with pytest.raises(PrivacyInputError):
            epsilon([mechanism], delta=delta, accountant=Accountant.PRV)
        return
    with warnings.catch_warnings():
        # Opacus's PRV sizes its grid with an RDP bound that may warn; see test_prv_leaks_no_opacus_warning.
        warnings.filterwarnings("ignore", message="Optimal order is the", category=UserWarning)
        ours = epsilon([mechanism], delta=delta, accountant=Accountant.PRV)
    theirs = opacus_prv([(mechanism.noise_multiplier, mechanism.sample_rate, mechanism.steps)], delta)
    assert ours == pytest.approx(theirs, abs=0.02)
    assert ours <= rdp([mechanism], delta) + 1e-9, "PRV is tighter than the RDP upper bound"


def test_prv_leaks_no_opacus_warning() -> None:
    """PRV for a tiny epsilon (sigma 4.9, q 1.1e-3, one step) returns without Opacus's order warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # settings no other test uses: the PRV result is cached, and a cached call warns nothing
        value = epsilon([Mechanism(4.9, 1.1e-3, 1)], delta=1.3e-7, accountant=Accountant.PRV)
    assert 0 < value < 0.1


# -- properties ------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(sigma=noise_multipliers, q=sample_rates, steps=step_counts, more=st.integers(1, 1000), delta=deltas)
def test_epsilon_grows_with_steps(sigma: float, q: float, steps: int, more: int, delta: float) -> None:
    """More steps at the same settings always cost strictly more epsilon."""
    assert rdp([Mechanism(sigma, q, steps)], delta) < rdp([Mechanism(sigma, q, steps + more)], delta)


@settings(max_examples=60, deadline=None)
@given(sigma=noise_multipliers, q=st.floats(1e-3, 0.9), factor=st.floats(1.1, 100.0), steps=step_counts, delta=deltas)
def test_epsilon_grows_with_sample_rate(sigma: float, q: float, factor: float, steps: int, delta: float) -> None:
    """A larger Poisson sample rate (up to 1) costs strictly more epsilon."""
    larger = min(q * factor, 1.0)
    assert rdp([Mechanism(sigma, q, steps)], delta) < rdp([Mechanism(sigma, larger, steps)], delta)


@settings(max_examples=60, deadline=None)
@given(sigma=noise_multipliers, factor=st.floats(1.1, 3.0), q=sample_rates, steps=step_counts, delta=deltas)
def test_epsilon_falls_with_noise(sigma: float, factor: float, q: float, steps: int, delta: float) -> None:
    """More noise costs strictly less epsilon."""
    assert rdp([Mechanism(sigma * factor, q, steps)], delta) < rdp([Mechanism(sigma, q, steps)], delta)


@settings(max_examples=60, deadline=None)
@given(mechanism=mechanisms, delta=deltas, factor=st.floats(2.0, 100.0))
def test_epsilon_falls_with_delta(mechanism: Mechanism, delta: float, factor: float) -> None:
    """A weaker guarantee (larger delta) comes with strictly smaller epsilon."""
    assert rdp([mechanism], delta * factor) < rdp([mechanism], delta)


@pytest.mark.parametrize("accountant", list(Accountant))
def test_nothing_spent_is_zero(accountant: Accountant) -> None:
    """An empty history, or one whose runs have zero steps, costs exactly 0.0 with either accountant."""
    assert epsilon([], delta=1e-5, accountant=accountant) == 0.0
    assert epsilon([Mechanism(1.0, 0.5, 0), Mechanism(0.7, 1.0, 0)], delta=1e-5, accountant=accountant) == 0.0


@settings(max_examples=60, deadline=None)
@given(sigma=noise_multipliers, q=sample_rates, a=st.integers(0, 1000), b=st.integers(0, 1000), delta=deltas)
def test_two_runs_compose_like_one(sigma: float, q: float, a: int, b: int, delta: float) -> None:
    """a steps then b steps at the same settings cost the same as a + b steps in one run."""
    assert rdp([Mechanism(sigma, q, a), Mechanism(sigma, q, b)], delta) == pytest.approx(
        rdp([Mechanism(sigma, q, a + b)], delta), rel=1e-12, abs=0.0
    )


@settings(max_examples=60, deadline=None)
@given(first=mechanisms, second=mechanisms, delta=deltas)
def test_composition_never_forgets_a_run(first: Mechanism, second: Mechanism, delta: float) -> None:
    """Composing two runs costs more than either alone, whatever the order."""
    both = rdp([first, second], delta)
    assert both == rdp([second, first], delta)
    assert both > rdp([first], delta) and both > rdp([second], delta)


# -- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gdp", "Gaussian", " CLT ", "GDP"])
def test_clt_accountants_refused_with_the_reason(name: str) -> None:
    """The Gaussian (CLT) accountant is refused (exit 2), saying it can under-report and what is accepted."""
    with pytest.raises(PrivacyInputError) as caught:
        parse_accountant(name)
    assert caught.value.exit_code is ExitCode.BAD_INPUT and int(caught.value.exit_code) == 2
    (problem,) = caught.value.problems
    assert problem.field == "accountant" and problem.found == repr(name)
    assert "under-report" in problem.allowed and "rdp, prv" in problem.allowed


@pytest.mark.parametrize("name", ["moments", "", "rdp2", "prv-accountant"])
def test_unknown_accountants_refused(name: str) -> None:
    """A name that is no accountant is refused (exit 2), listing the accountants accepted."""
    with pytest.raises(PrivacyInputError) as caught:
        parse_accountant(name, source="spec.yaml")
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    assert "Unknown accountant" in caught.value.summary
    (problem,) = caught.value.problems
    assert problem.source == "spec.yaml" and problem.allowed == "rdp, prv"


@pytest.mark.parametrize(
    ("name", "expected"), [("rdp", Accountant.RDP), ("RDP", Accountant.RDP), (" prv ", Accountant.PRV)]
)
def test_accepted_accountant_names(name: str, expected: Accountant) -> None:
    """The two accountants are accepted whatever their case and surrounding spaces."""
    assert parse_accountant(name) is expected


@pytest.mark.parametrize(
    ("history", "delta", "bad"),
    [
        ([Mechanism(0.0, 1.5, -1)], 1.0, {"noise_multiplier", "sample_rate", "steps", "delta"}),
        ([Mechanism(math.nan, 0.0, 5)], 0.0, {"noise_multiplier", "sample_rate", "delta"}),
        ([Mechanism(math.inf, 0.5, 5)], math.nan, {"noise_multiplier", "delta"}),
        ([Mechanism(1.0, -0.1, 5)], 1e-5, {"sample_rate"}),
        ([Mechanism(1.0, math.inf, 5)], 1e-5, {"sample_rate"}),
        ([Mechanism(1.0, 0.1, 5)], -1e-5, {"delta"}),
    ],
)
def test_out_of_range_inputs_name_every_bad_field(history: list[Mechanism], delta: float, bad: set[str]) -> None:
    """Every out-of-range value is named (and nothing else), with the value found, in one exit-2 error."""
    for accountant in Accountant:
        with pytest.raises(PrivacyInputError) as caught:
            epsilon(history, delta=delta, accountant=accountant, source="trial.yaml")
        assert caught.value.exit_code == ExitCode.BAD_INPUT
        assert {p.field for p in caught.value.problems} == bad
        assert len(caught.value.problems) == len(bad)
        assert all(p.source == "trial.yaml" for p in caught.value.problems)


def test_every_bad_run_of_a_history_is_named() -> None:
    """A history with two bad runs among good ones names both, not just the first."""
    history = [Mechanism(1.0, 0.1, 5), Mechanism(-1.0, 0.1, 5), Mechanism(1.0, 0.1, 5), Mechanism(1.0, 2.0, 5)]
    with pytest.raises(PrivacyInputError) as caught:
        epsilon(history, delta=1e-5)
    assert [(p.field, p.found) for p in caught.value.problems] == [("noise_multiplier", "-1.0"), ("sample_rate", "2.0")]


def test_prv_refused_quickly_when_epsilon_is_huge() -> None:
    """PRV is refused (exit 2, pointing to rdp) for an RDP bound past 200, at once and without a memory blow-up."""
    huge = [Mechanism(0.3, 1.0, 1000)]
    bound = rdp(huge, 1e-5)
    assert math.isfinite(bound) and bound > PRV_MAX_EPSILON
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(PrivacyInputError) as caught:
        epsilon(huge, delta=1e-5, accountant=Accountant.PRV)
    assert time.perf_counter() - started < 10.0  # at once: a blow-up takes minutes
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 100_000  # KiB
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    (problem,) = caught.value.problems
    assert problem.field == "accountant" and "rdp" in problem.allowed and "200" in problem.allowed


# -- the command line ------------------------------------------------------------------------------


def privacy_epsilon(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["privacy", "epsilon", *args])
    return result.exit_code, result.stdout, result.stderr


KNOWN = ("--noise-multiplier", "1", "--sample-rate", "0.01", "--steps", "1000", "--delta", "1e-5")


def test_cli_epsilon_json() -> None:
    """`sandbox privacy epsilon --format json` prints one document with the RDP epsilon and the settings used."""
    code, out, err = privacy_epsilon(*KNOWN, "--format", "json")
    assert code == 0, err
    document = json.loads(out)
    assert document["epsilon"] == pytest.approx(2.10, abs=0.01)
    assert document | {"epsilon": None} == {
        "epsilon": None,
        "accountant": "rdp",
        "noise_multiplier": 1.0,
        "sample_rate": 0.01,
        "steps": 1000,
        "delta": 1e-5,
    }


def test_cli_epsilon_text() -> None:
    """The text output shows epsilon to four places and the accountant used."""
    code, out, _ = privacy_epsilon(*KNOWN)
    assert code == 0
    assert out.startswith(f"epsilon = {rdp([Mechanism(1.0, 0.01, 1000)], 1e-5):.4f}") and "rdp accountant" in out


def test_cli_prv_equals_opacus() -> None:
    """`--accountant prv` prints Opacus's PRV epsilon for the same settings."""
    code, out, err = privacy_epsilon(*KNOWN, "--accountant", "prv", "--format", "json")
    assert code == 0, err
    document = json.loads(out)
    assert document["accountant"] == "prv"
    assert document["epsilon"] == pytest.approx(opacus_prv([(1.0, 0.01, 1000)], 1e-5), abs=1e-9)


@pytest.mark.parametrize("output", ["text", "json"])
def test_cli_refuses_the_gaussian_accountant(output: str) -> None:
    """`--accountant gdp` exits 2 and says why, in either output format."""
    code, out, err = privacy_epsilon(*KNOWN, "--accountant", "gdp", "--format", output)
    assert code == 2
    if output == "json":
        document = json.loads(out)
        assert document["ok"] is False and document["exit_code"] == 2
        assert any("under-report" in line for line in document["lines"])
    else:
        assert "under-report" in err and out == ""


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"--sample-rate": "1.5"}, {"--sample-rate"}),
        ({"--noise-multiplier": "0", "--delta": "1"}, {"--noise-multiplier", "--delta"}),
        (
            {"--steps": "-3", "--sample-rate": "0", "--noise-multiplier": "-1", "--delta": "0"},
            {"--steps", "--sample-rate", "--noise-multiplier", "--delta"},
        ),
    ],
)
def test_cli_bad_values_exit_2_naming_the_options(changes: dict[str, str], named: set[str]) -> None:
    """Out-of-range values exit 2, naming each bad option by its flag (and no good one)."""
    values = dict(zip(KNOWN[::2], KNOWN[1::2])) | changes
    args = [part for pair in values.items() for part in pair]
    code, out, err = privacy_epsilon(*args, "--format", "json")
    assert code == 2, err
    problems = json.loads(out)["problems"]
    assert {p["field"] for p in problems} == named
    code, _, err = privacy_epsilon(*args)
    assert code == 2 and all(flag in err for flag in named)
    assert not any(flag in err for flag in set(KNOWN[::2]) - named)


def test_a_noise_multiplier_beyond_what_can_be_accounted_is_bad_input() -> None:
    """A noise multiplier near 1e154 (a fuzzed policy floor found it) overflows Opacus: refused as bad input, not a crash."""
    with pytest.raises(PrivacyInputError) as caught:
        epsilon([Mechanism(1.3407807929942597e154, 1 / 6, 60)], delta=1e-5)
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    [problem] = caught.value.problems
    assert problem.field == "noise_multiplier" and "<= 1e+06" in problem.allowed
