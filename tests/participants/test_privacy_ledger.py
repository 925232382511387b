"""A site's privacy ledger: durable charges that compose per trial and per dataset, within both budgets, whatever runs at once."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from participants.accounted_release import gaussian_mechanism
from participants.privacy_ledger import Charge, PlannedCharge, PrivacyLedger, ReleaseKind, summarise
from participants.privacy_plan import planned_charge, round_mechanism, trial_cost
from participants.site_data import load_site_data
from participants.site_floor import site_floor
from participants.site_guard import site_policy
from sandbox.cli import app
from tests.approved_demo import DemoCopy
from trialcore.errors import BudgetExhausted, ExitCode, IntegrityError
from trialcore.privacy_accountant import Accountant, Mechanism, epsilon
from trialcore.spec import TrialSpec
from trialcore.spec_loading import load_spec

REPO = Path(__file__).resolve().parents[2]
DELTA = 1e-5
ROUND = Mechanism(noise_multiplier=1.0, sample_rate=0.1, steps=10)
OTHER = Mechanism(noise_multiplier=1.5, sample_rate=0.2, steps=5)
PLENTY = 1e6


def planned(
    trial_id: str = "trial-a",
    server_round: int = 1,
    mechanism: Mechanism = ROUND,
    *,
    budget: float = PLENTY,
    trial_budget: float = PLENTY,
    delta: float = DELTA,
) -> PlannedCharge:
    return PlannedCharge(
        site_id="de-berlin",
        dataset="embedded-breast-cancer-0",
        trial_id=trial_id,
        spec_hash="ab" * 32,
        round=server_round,
        accountant=Accountant.RDP,
        mechanism=mechanism,
        delta=delta,
        epsilon_budget=budget,
        trial_epsilon_budget=trial_budget,
    )


def rdp(history: list[Mechanism], delta: float = DELTA) -> float:
    return epsilon(history, delta=delta, accountant=Accountant.RDP)


@pytest.fixture
def ledger(tmp_path: Path) -> PrivacyLedger:
    """An empty ledger where a site keeps it (``<state_dir>/privacy/<dataset>.jsonl``)."""
    return PrivacyLedger(tmp_path / "state" / "privacy" / "embedded-breast-cancer-0.ledger.jsonl")


@pytest.fixture
def two_trials(ledger: PrivacyLedger) -> list[Charge]:
    """Trial a charges two rounds, trial b one (another mechanism), then trial a a third."""
    return [
        ledger.charge(planned("trial-a", 1)),
        ledger.charge(planned("trial-a", 2)),
        ledger.charge(planned("trial-b", 1, OTHER, trial_budget=20.0)),
        ledger.charge(planned("trial-a", 3)),
    ]


# -- charges compose and last -----------------------------------------------------------------------


def test_charges_are_appended_and_durable(ledger: PrivacyLedger) -> None:
    """Each charge appends one whole line, owner-only; a new reader of the file sees every charge as returned."""
    made = [ledger.charge(planned(server_round=r)) for r in (1, 2, 3)]
    raw = ledger.path.read_bytes()
    assert raw.endswith(b"\n") and raw.count(b"\n") == 3
    assert stat.S_IMODE(ledger.path.stat().st_mode) == 0o600
    assert PrivacyLedger(Path(str(ledger.path))).charges() == made
    assert [c.round for c in made] == [1, 2, 3]
    assert (made[0].site_id, made[0].dataset, made[0].steps, made[0].sample_rate) == (
        "de-berlin",
        "embedded-breast-cancer-0",
        10,
        0.1,
    )
    for count, charge in enumerate(made, start=1):
        assert charge.trial_epsilon == charge.cumulative_epsilon == pytest.approx(rdp([ROUND] * count), rel=1e-12)


def test_trial_epsilon_composes_one_trial_and_cumulative_every_trial(
    ledger: PrivacyLedger, two_trials: list[Charge]
) -> None:
    """A charge's trial epsilon composes only its trial's charges; its cumulative epsilon every charge on the dataset."""
    a1, a2, b1, a3 = two_trials
    assert a2.trial_epsilon == pytest.approx(rdp([ROUND, ROUND]), rel=1e-12)
    assert b1.trial_epsilon == pytest.approx(rdp([OTHER]), rel=1e-12)
    assert b1.cumulative_epsilon == pytest.approx(rdp([ROUND, ROUND, OTHER]), rel=1e-12)
    assert a3.trial_epsilon == pytest.approx(rdp([ROUND] * 3), rel=1e-12)
    assert a3.cumulative_epsilon == pytest.approx(rdp([ROUND] * 3 + [OTHER]), rel=1e-12)
    assert a1.cumulative_epsilon < a2.cumulative_epsilon < b1.cumulative_epsilon < a3.cumulative_epsilon


def test_second_trial_starts_from_the_first_trials_spend(ledger: PrivacyLedger, two_trials: list[Charge]) -> None:
    """A later trial's first charge already carries what earlier trials spent: cumulative above its own trial epsilon."""
    b1 = two_trials[2]
    assert b1.cumulative_epsilon > b1.trial_epsilon > 0
    assert b1.cumulative_epsilon > two_trials[1].cumulative_epsilon
    spend = ledger.spend(trial_id="trial-c", delta=DELTA, accountant=Accountant.RDP)
    assert spend.trial_epsilon == 0.0 and spend.cumulative_epsilon == pytest.approx(two_trials[-1].cumulative_epsilon)


def test_spend_is_recomputed_at_the_delta_asked(ledger: PrivacyLedger, two_trials: list[Charge]) -> None:
    """The ledger keeps mechanisms, so spend at another delta or with PRV recomposes every charge."""
    at_other_delta = ledger.spend(trial_id="trial-a", delta=1e-3, accountant=Accountant.RDP)
    assert at_other_delta.trial_epsilon == pytest.approx(rdp([ROUND] * 3, delta=1e-3), rel=1e-12)
    assert at_other_delta.cumulative_epsilon == pytest.approx(rdp([ROUND] * 3 + [OTHER], delta=1e-3), rel=1e-12)
    prv = ledger.spend(trial_id="trial-b", delta=DELTA, accountant=Accountant.PRV, extra=[OTHER])
    assert prv.trial_epsilon == pytest.approx(epsilon([OTHER, OTHER], delta=DELTA, accountant=Accountant.PRV))


# -- both budgets --------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["site", "trial"])
def test_charge_past_a_budget_is_refused_and_writes_nothing(
    ledger: PrivacyLedger, two_trials: list[Charge], which: str
) -> None:
    """A charge that would pass the site policy's budget (across trials) or the trial's is refused (exit 4); the file is untouched."""
    before = ledger.path.read_bytes()
    cumulative_after = rdp([ROUND] * 4 + [OTHER])
    trial_after = rdp([ROUND] * 4)
    if which == "site":
        attempt = planned("trial-a", 4, budget=cumulative_after * 0.999)
        reason = "the site policy's budget"
    else:
        attempt = planned("trial-a", 4, trial_budget=trial_after * 0.999)
        reason = "the trial's budget"
    with pytest.raises(BudgetExhausted) as caught:
        ledger.charge(attempt)
    assert caught.value.exit_code is ExitCode.BUDGET_EXHAUSTED and int(caught.value.exit_code) == 4
    (problem,) = caught.value.problems
    assert reason in problem.allowed and "round 4" in problem.allowed and problem.source == str(ledger.path)
    assert ledger.path.read_bytes() == before
    assert ledger.charges() == two_trials


def test_other_trials_count_against_the_site_budget(ledger: PrivacyLedger, two_trials: list[Charge]) -> None:
    """A new trial whose own spend is tiny is refused when the dataset's spend across trials would pass the site budget."""
    first_of_c = planned("trial-c", 1, Mechanism(4.0, 0.01, 1), budget=two_trials[-1].cumulative_epsilon)
    assert rdp([first_of_c.mechanism]) < 0.2 * two_trials[-1].cumulative_epsilon
    with pytest.raises(BudgetExhausted, match="exhausted"):
        ledger.charge(first_of_c)
    assert len(ledger.charges()) == 4


def test_spending_exactly_the_budget_is_allowed(ledger: PrivacyLedger) -> None:
    """A charge that brings epsilon exactly to the budget is accepted; the next one is refused."""
    exact = rdp([ROUND, ROUND])
    ledger.charge(planned(server_round=1, budget=exact, trial_budget=exact))
    assert ledger.charge(planned(server_round=2, budget=exact, trial_budget=exact)).cumulative_epsilon == exact
    with pytest.raises(BudgetExhausted):
        ledger.charge(planned(server_round=3, budget=exact, trial_budget=exact))
    assert len(ledger.charges()) == 2


def test_refused_first_charge_creates_no_ledger(ledger: PrivacyLedger) -> None:
    """A site whose very first round is over budget keeps no ledger file at all."""
    with pytest.raises(BudgetExhausted):
        ledger.charge(planned(budget=0.01))
    assert not ledger.path.exists() and ledger.charges() == []


# -- damage ----------------------------------------------------------------------------------------


def _truncate_mid_line(raw: bytes) -> bytes:
    return raw[: len(raw) - 60]


def _edit_first_byte_of_line_2(raw: bytes) -> bytes:
    lines = raw.split(b"\n")
    lines[1] = b"#" + lines[1][1:]
    return b"\n".join(lines)


def _negative_steps_in_line_3(raw: bytes) -> bytes:
    lines = raw.split(b"\n")
    assert b'"steps":5,' in lines[2]
    lines[2] = lines[2].replace(b'"steps":5,', b'"steps":-5,')
    return b"\n".join(lines)


def _blank_line_2(raw: bytes) -> bytes:
    first, rest = raw.split(b"\n", 1)
    return first + b"\n\n" + rest


DAMAGES = [(_truncate_mid_line, 4), (_edit_first_byte_of_line_2, 2), (_negative_steps_in_line_3, 3), (_blank_line_2, 2)]


@pytest.mark.parametrize(("damage", "line"), DAMAGES, ids=lambda d: getattr(d, "__name__", str(d)))
def test_damaged_ledger_is_an_integrity_error(
    ledger: PrivacyLedger, two_trials: list[Charge], damage: Callable[[bytes], bytes], line: int
) -> None:
    """A damaged line fails reading (exit 5, naming file and line); no further charge is made on top of it."""
    ledger.path.write_bytes(damage(ledger.path.read_bytes()))
    damaged = ledger.path.read_bytes()
    with pytest.raises(IntegrityError) as caught:
        ledger.charges()
    assert caught.value.exit_code is ExitCode.INTEGRITY_FAILED and int(caught.value.exit_code) == 5
    assert str(ledger.path) in caught.value.summary and f"line {line}" in caught.value.summary
    (problem,) = caught.value.problems
    assert problem.source == str(ledger.path) and problem.field == f"line {line}"
    with pytest.raises(IntegrityError):
        ledger.charge(planned("trial-a", 4))
    assert ledger.path.read_bytes() == damaged


@pytest.mark.parametrize("output", ["text", "json"])
def test_cli_exits_5_on_a_damaged_ledger(ledger: PrivacyLedger, two_trials: list[Charge], output: str) -> None:
    """`sandbox privacy ledger PATH` exits 5 on a truncated ledger, naming the file and the line."""
    ledger.path.write_bytes(_truncate_mid_line(ledger.path.read_bytes()))
    result = CliRunner().invoke(app, ["privacy", "ledger", str(ledger.path), "--format", output])
    assert result.exit_code == 5
    if output == "json":
        document = json.loads(result.stdout)
        assert document["exit_code"] == 5 and document["problems"][0]["field"] == "line 4"
        assert document["problems"][0]["file"] == str(ledger.path)
    else:
        assert str(ledger.path) in result.stderr and "line 4" in result.stderr


def test_non_utf8_byte_is_an_integrity_error(ledger: PrivacyLedger, two_trials: list[Charge]) -> None:
    """A byte that is not UTF-8 inside a line is damage like any other: IntegrityError naming the line."""
    raw = ledger.path.read_bytes()
    ledger.path.write_bytes(raw.replace(b'"round"', b'\xff"round"', 1))
    with pytest.raises(IntegrityError, match="line 1"):
        ledger.charges()


def test_an_edit_that_keeps_the_line_valid_is_caught_by_the_hash(
    ledger: PrivacyLedger, two_trials: list[Charge]
) -> None:
    """Lowering a charge's steps leaves valid JSON, but its hash no longer matches: IntegrityError naming the line."""
    lines = ledger.path.read_bytes().split(b"\n")
    steps = f'"steps":{two_trials[1].steps},'.encode()
    assert steps in lines[1]
    lines[1] = lines[1].replace(steps, b'"steps":1,')
    ledger.path.write_bytes(b"\n".join(lines))
    with pytest.raises(IntegrityError, match="line 2") as caught:
        ledger.charges()
    assert "edited" in caught.value.lines()[0]


def test_a_removed_charge_breaks_the_chain(ledger: PrivacyLedger, two_trials: list[Charge]) -> None:
    """Deleting a charge from the middle (to forget a spend) is caught at the next line: out of chain."""
    lines = ledger.path.read_bytes().split(b"\n")
    del lines[0]
    ledger.path.write_bytes(b"\n".join(lines))
    with pytest.raises(IntegrityError, match="line 1") as caught:
        ledger.charges()
    assert "out of chain" in caught.value.lines()[0]
    assert CliRunner().invoke(app, ["privacy", "ledger", str(ledger.path)]).exit_code == 5


# -- the command line ------------------------------------------------------------------------------


def test_cli_json_shows_spend_per_trial_and_what_is_left(ledger: PrivacyLedger) -> None:
    """--format json shows each trial's rounds, steps and epsilon, and the dataset's spend and what is left, as charged."""
    made = [ledger.charge(planned("trial-a", r, budget=50.0, trial_budget=30.0)) for r in (1, 2)]
    made.append(ledger.charge(planned("trial-b", 1, OTHER, budget=50.0, trial_budget=20.0)))
    result = CliRunner().invoke(app, ["privacy", "ledger", str(ledger.path), "--format", "json"])
    assert result.exit_code == 0, result.stderr
    (summary,) = json.loads(result.stdout)["ledgers"]
    assert summary == {"path": str(ledger.path), **summarise(made)}
    assert summary["charges"] == 3 and summary["site_id"] == "de-berlin"
    trial_a, trial_b = summary["trials"]
    assert (trial_a["trial_id"], trial_a["rounds"], trial_a["steps"], trial_a["last_round"]) == ("trial-a", 2, 20, 2)
    assert trial_a["trial_epsilon"] == made[1].trial_epsilon and trial_a["trial_epsilon_budget"] == 30.0
    assert (trial_b["trial_id"], trial_b["rounds"], trial_b["steps"]) == ("trial-b", 1, 5)
    assert trial_b["trial_epsilon"] == made[2].trial_epsilon
    assert summary["epsilon_spent"] == made[2].cumulative_epsilon
    assert summary["epsilon_budget"] == 50.0
    assert summary["epsilon_remaining"] == pytest.approx(50.0 - made[2].cumulative_epsilon, abs=1e-12)


def test_cli_text_shows_spend_per_trial_and_what_is_left(ledger: PrivacyLedger) -> None:
    """The text view of a site's privacy folder lists each trial with its epsilon, then what is spent and left."""
    made = [ledger.charge(planned("trial-a", r, budget=50.0)) for r in (1, 2)]
    made.append(ledger.charge(planned("trial-b", 1, OTHER, budget=50.0)))
    state_dir = ledger.path.parent.parent
    for given in (ledger.path, ledger.path.parent, state_dir):
        result = CliRunner().invoke(app, ["privacy", "ledger", str(given)], env={"COLUMNS": "250"})
        assert result.exit_code == 0, result.stderr
        text = result.stdout
        assert "trial-a" in text and "trial-b" in text
        assert f"{made[1].trial_epsilon:.4f}" in text and f"{made[2].trial_epsilon:.4f}" in text
        assert f"Spent {made[2].cumulative_epsilon:.4f} of 50; left {50.0 - made[2].cumulative_epsilon:.4f}" in text


def test_cli_without_a_ledger_exits_2(tmp_path: Path) -> None:
    """A path holding no ledger is bad input (exit 2), not an empty spend."""
    result = CliRunner().invoke(app, ["privacy", "ledger", str(tmp_path)])
    assert result.exit_code == 2 and str(tmp_path) in result.stderr


# -- concurrency -----------------------------------------------------------------------------------

CHARGER = """
import json, sys
from pathlib import Path
from trialcore.privacy_accountant import Accountant, Mechanism, epsilon
from participants.privacy_ledger import PlannedCharge, PrivacyLedger
from trialcore.errors import BudgetExhausted

worker = sys.argv[1]
mechanism = Mechanism(1.0, 0.1, 10)
epsilon([mechanism], delta=1e-5)  # load Opacus before the first start signal, so the workers really overlap
print("ready", flush=True)
for command in sys.stdin:  # one batch per line: ledger path, attempts, budget
    path, attempts, budget = command.split("\\t")
    accepted = 0
    for attempt in range(int(attempts)):
        try:
            PrivacyLedger(Path(path)).charge(PlannedCharge(
                site_id="de-berlin", dataset="embedded-breast-cancer-0", trial_id=worker, spec_hash="ab" * 32,
                round=attempt + 1, accountant=Accountant.RDP, mechanism=mechanism, delta=1e-5,
                epsilon_budget=float(budget), trial_epsilon_budget=float(budget)))
            accepted += 1
        except BudgetExhausted:
            pass
    print(json.dumps({"accepted": accepted}), flush=True)
"""
WORKERS = 3


class Chargers:
    """Worker processes (started once, Opacus loaded) that charge a ledger together when told to."""

    def __init__(self, folder: Path) -> None:
        script = folder / "charger.py"
        script.write_text(CHARGER, encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.processes = [
            subprocess.Popen(
                [sys.executable, str(script), f"worker-{i}"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                cwd=REPO,
            )
            for i in range(WORKERS)
        ]
        for process in self.processes:
            assert process.stdout is not None
            ready = process.stdout.readline().strip()
            assert ready == "ready", self.close()

    def run(self, ledger: PrivacyLedger, *, attempts: int, budget: float) -> list[int]:
        """Every worker tries ``attempts`` charges on ``ledger`` at once; how many each made."""
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.write(f"{ledger.path}\t{attempts}\t{budget!r}\n")
            process.stdin.flush()
        results = []
        for process in self.processes:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line, self.close()
            results.append(json.loads(line)["accepted"])
        return results

    def close(self) -> str:
        """Stop the workers; their stderr, for a failure message."""
        errors = []
        for process in self.processes:
            if process.poll() is None:
                try:
                    errors.append(process.communicate(timeout=30)[1])
                except subprocess.TimeoutExpired:
                    process.kill()
                    errors.append(process.communicate()[1])
            else:
                errors.append(process.communicate()[1])
        return "\n".join(errors)


@pytest.fixture(scope="module")
def chargers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chargers]:
    """Three charging processes shared by this module's concurrency tests (each loads torch once)."""
    workers = Chargers(tmp_path_factory.mktemp("chargers"))
    yield workers
    errors = workers.close()
    assert all(p.returncode == 0 for p in workers.processes), errors


def assert_each_charge_saw_every_earlier_one(charges: list[Charge]) -> None:
    """The k-th line's cumulative epsilon composes k charges, and each worker's j-th its j charges: no stale reads."""
    per_worker: dict[str, int] = {}
    for count, charge in enumerate(charges, start=1):
        per_worker[charge.trial_id] = per_worker.get(charge.trial_id, 0) + 1
        assert charge.cumulative_epsilon == pytest.approx(rdp([ROUND] * count), rel=1e-12)
        assert charge.trial_epsilon == pytest.approx(rdp([ROUND] * per_worker[charge.trial_id]), rel=1e-12)


def test_concurrent_processes_never_lose_a_charge(chargers: Chargers, ledger: PrivacyLedger) -> None:
    """Three processes charging one ledger at once: every accepted charge is a whole line, none lost."""
    accepted = chargers.run(ledger, attempts=12, budget=PLENTY)
    assert accepted == [12] * WORKERS
    charges = ledger.charges()
    assert len(ledger.path.read_bytes().splitlines()) == len(charges) == sum(accepted)
    assert sorted(c.trial_id for c in charges) == sorted(f"worker-{i}" for i in range(WORKERS) for _ in range(12))
    assert_each_charge_saw_every_earlier_one(charges)


def test_concurrent_processes_never_both_spend_the_last_of_a_budget(chargers: Chargers, ledger: PrivacyLedger) -> None:
    """With a budget for exactly 6 charges, 12 concurrent attempts across three processes make exactly 6."""
    affordable = 6
    budget = (rdp([ROUND] * affordable) + rdp([ROUND] * (affordable + 1))) / 2
    accepted = chargers.run(ledger, attempts=2 * affordable // WORKERS, budget=budget)
    assert sum(accepted) == affordable
    charges = ledger.charges()
    assert len(charges) == affordable and max(c.cumulative_epsilon for c in charges) <= budget
    assert_each_charge_saw_every_earlier_one(charges)


# -- the dry run agrees with charging ---------------------------------------------------------------

COST_CASES = {
    # site, noise multiplier, trial budget, rounds, accountant, rounds an earlier trial already charged, budget that binds
    "site-budget-binds": ("de-berlin", 1.0, 20.0, 10, "rdp", 0, "site"),
    "trial-budget-binds": ("ch-zurich", 2.0, 3.0, 20, "rdp", 0, "trial"),
    "earlier-trial-spent-most": ("fr-lyon", 1.0, 20.0, 10, "rdp", 4, "site"),
    "everything-affordable-prv": ("gb-leeds", 3.0, 8.0, 4, "prv", 2, None),
}


@pytest.mark.parametrize("case", COST_CASES.values(), ids=COST_CASES.keys())
def test_trial_cost_agrees_with_charging_round_by_round(
    unapproved_demo: DemoCopy, tmp_path: Path, case: tuple[str, float, float, int, str, int, str | None]
) -> None:
    """The pre-flight dry run's affordable rounds are exactly the rounds a ledger accepts when charged one by one."""
    site_id, noise, trial_budget, rounds, accountant, earlier_rounds, binding = case
    site = unapproved_demo.site(site_id)
    policy = site_policy(site)
    demo = load_spec(unapproved_demo.spec).spec
    privacy = demo.privacy.model_copy(
        update={"noise_multiplier": noise, "epsilon_budget": trial_budget, "accountant": accountant}
    )
    spec = TrialSpec.model_validate(demo.model_copy(update={"rounds": rounds, "privacy": privacy}).model_dump())
    epochs, dp = site_floor(spec, policy)
    assert dp is not None and dp.noise_multiplier == noise
    num_train = load_site_data(site).num_train
    mechanism = round_mechanism(num_train, epochs=epochs, batch_size=spec.local_training.batch_size, dp=dp)
    ledger = PrivacyLedger(tmp_path / "privacy" / "dataset.ledger.jsonl")
    earlier = spec.model_copy(update={"trial_id": "earlier-trial"})
    for server_round in range(1, earlier_rounds + 1):
        ledger.charge(
            planned_charge(site, earlier, policy, spec_hash="e" * 64, server_round=server_round, mechanism=mechanism)
        )

    cost = trial_cost(
        site,
        spec,
        policy,
        spec_hash="f" * 64,
        num_train=num_train,
        epochs=epochs,
        dp=dp,
        ledger=ledger if earlier_rounds else None,
    )

    # The site's releases as it makes them: the feature sums before round 1, then per round DP-SGD and an evaluation.
    def release(server_round: int, kind: ReleaseKind, mechanism: Mechanism) -> None:
        planned = planned_charge(site, spec, policy, spec_hash="f" * 64, server_round=server_round, mechanism=mechanism)
        ledger.charge(dataclasses.replace(planned, release=kind))

    release(0, "feature-statistics", gaussian_mechanism(spec.privacy.feature_statistics_noise_multiplier))
    accepted: list[int] = []
    for server_round in range(1, rounds + 1):
        try:
            release(server_round, "dp-sgd", mechanism)
            release(server_round, "evaluation", gaussian_mechanism(spec.privacy.evaluation_noise_multiplier))
            accepted.append(server_round)
        except BudgetExhausted:
            pass
    assert accepted == list(range(1, cost.rounds_affordable + 1))
    assert (cost.rounds, cost.accountant, cost.epsilon_budget, cost.trial_epsilon_budget) == (
        rounds,
        accountant,
        8.0,
        trial_budget,
    )
    charges = ledger.charges()
    assert cost.spent_before == (charges[earlier_rounds - 1].cumulative_epsilon if earlier_rounds else 0.0)
    if accepted:
        assert charges[-1].trial_epsilon <= trial_budget and charges[-1].cumulative_epsilon <= 8.0
    if binding is None:
        assert len(accepted) == rounds
        assert cost.cumulative_after == pytest.approx(charges[-1].cumulative_epsilon, rel=1e-12)
        assert cost.trial_epsilon == pytest.approx(charges[-1].trial_epsilon, rel=1e-12)
    elif binding == "site":
        assert 0 < len(accepted) < rounds
        assert cost.cumulative_after > 8.0 and cost.trial_epsilon <= trial_budget
    else:
        assert 0 < len(accepted) < rounds
        assert cost.trial_epsilon > trial_budget and cost.cumulative_after <= 8.0
