"""A site's privacy ledger: every privacy charge against one dataset, across all trials.

The ledger is the site's own record of what its records have paid. It is a JSONL file, one
charge per line, kept in the site's state folder (``<state_dir>/privacy/<dataset>.ledger.jsonl``) and
never sent anywhere. Each charge names the trial, spec hash, round, the **release kind**
(:data:`RELEASE_KINDS`: ``dp-sgd`` for a round of training, ``feature-statistics`` and
``evaluation`` for the Gaussian releases of :mod:`participants.accounted_release`) and the
statistic within it, the accountant, the mechanism (noise multiplier, Poisson sample rate, steps;
a Gaussian release of clipped sums is one step at sample rate 1), delta, and the epsilon that
results: for the trial alone and for the dataset over every trial so far, every kind composed.

Invariants:

* a charge is written (whole file replaced atomically, fsynced, folder fsynced) *before* the
  update it pays for leaves the site, so a crash never forgets a charge, and a reader never sees
  half a line; a release (dataset, trial, spec hash, release kind, statistic, round) is charged
  once, so a repeat after a crash charges nothing more (the site's question book makes sure the round's reply left at
  most once);
* the accountant's state is rebuilt from the ledger for every charge (a ClientApp may start
  afresh for each message), never reset: a trial's epsilon composes all of its charges, a
  dataset's epsilon all charges of every trial;
* read, budget check and append happen under an exclusive lock (``<ledger>.lock``), so two
  trials on the same dataset cannot both spend the last of a budget;
* charges are hash-chained (``seq``, ``prev_hash``, ``hash``: SHA-256 of the charge's canonical
  JSON without its own hash), so an edited, removed, reordered or inserted charge is detected
  when the ledger is read (exit 5), like an audit chain. Charges cut from the end leave a valid
  shorter chain; the site's audit chain names each charge (``seq`` and ``hash`` in the payload of
  its ``update-sent`` entry) so a reviewer can compare the two, but nothing compares them
  automatically;
* a charge of kind ``dp-sgd`` with no statistic hashes as ledgers did before release kinds existed
  (the two fields are left out of its hashed content), so older ledgers still read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trialcore.atomic_file import write_bytes_atomic
from trialcore.canonical_json import canonical_json
from trialcore.errors import BadInputError, BudgetExhausted, IntegrityError, Problem
from trialcore.file_lock import exclusive_lock
from trialcore.privacy_accountant import Accountant, Mechanism, epsilon

GENESIS_HASH = "0" * 64
"""``prev_hash`` of a ledger's first charge."""

ReleaseKind = Literal["dp-sgd", "feature-statistics", "evaluation"]
"""What a charge paid for: a round of DP-SGD, feature statistics before round 1, or an evaluation."""
RELEASE_KINDS: tuple[ReleaseKind, ...] = get_args(ReleaseKind)
"""Every release kind, in report order."""
DP_SGD: ReleaseKind = "dp-sgd"


class Charge(BaseModel):
    """One privacy charge: what one round of DP-SGD at one site cost its dataset."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    time: str = Field(description="UTC time of the charge, ISO 8601.")
    site_id: str
    dataset: str = Field(description="The dataset the charge is against (see dataset_key).")
    trial_id: str
    spec_hash: str
    round: int = Field(ge=0)
    release: ReleaseKind = Field(default=DP_SGD, description="What the charge paid for (see RELEASE_KINDS).")
    statistic: str = Field(
        default="", max_length=64, description="Which statistic of the release kind ('' for dp-sgd), e.g. 'sums'."
    )
    accountant: Accountant
    noise_multiplier: float = Field(gt=0)
    sample_rate: float = Field(gt=0, le=1, description="Poisson sampling rate of DP-SGD (probability).")
    steps: int = Field(ge=0, description="DP-SGD steps of this round (local epochs x expected batches).")
    delta: float = Field(gt=0, lt=1)
    trial_epsilon: float = Field(ge=0, description="Epsilon of this trial's charges so far, this one included.")
    cumulative_epsilon: float = Field(
        ge=0, description="Epsilon of every charge on the dataset so far, this one included."
    )
    epsilon_budget: float = Field(gt=0, description="The site policy's budget for the dataset, across trials.")
    trial_epsilon_budget: float = Field(gt=0, description="The trial spec's budget per site.")
    seq: int = Field(ge=0, description="Position in the ledger, from 0.")
    prev_hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="hash of the previous charge (zeros for the first).")
    hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of this charge's canonical JSON without 'hash'.")

    def expected_hash(self) -> str:
        """The hash this charge's content gives (equal to ``hash`` unless it was edited)."""
        content = self.model_dump(mode="json", exclude={"hash"})
        if self.release == DP_SGD and not self.statistic:
            del content["release"], content["statistic"]  # as ledgers hashed before release kinds existed
        return charge_hash(content)

    @property
    def key(self) -> tuple[str, str, str, str, str, int]:
        """What identifies the release this charge paid for: it is charged once."""
        return (self.dataset, self.trial_id, self.spec_hash, self.release, self.statistic, self.round)

    @property
    def mechanism(self) -> Mechanism:
        return Mechanism(self.noise_multiplier, self.sample_rate, self.steps)


@dataclass(frozen=True)
class PlannedCharge:
    """What a site is about to spend, and the limits it must stay within."""

    site_id: str
    dataset: str
    trial_id: str
    spec_hash: str
    round: int
    accountant: Accountant
    mechanism: Mechanism
    delta: float
    epsilon_budget: float
    trial_epsilon_budget: float
    release: ReleaseKind = DP_SGD
    statistic: str = ""

    @property
    def key(self) -> tuple[str, str, str, str, str, int]:
        """What identifies this release (see :attr:`Charge.key`)."""
        return (self.dataset, self.trial_id, self.spec_hash, self.release, self.statistic, self.round)


@dataclass(frozen=True)
class Spend:
    """Epsilon of one trial's charges and of every charge on the dataset, at one delta and accountant.

    Charges made at another delta or with another accountant compose all the same: the ledger
    keeps mechanisms, and the accountant is rebuilt from them at the delta asked for.
    """

    trial_epsilon: float
    cumulative_epsilon: float


class PrivacyLedger:
    """The ledger file of one dataset at one site."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def charges(self) -> list[Charge]:
        """Every charge, oldest first; IntegrityError (exit 5) naming the line if any charge is damaged or out of chain."""
        if self.path.is_symlink() and not self.path.exists():
            raise IntegrityError(
                f"Privacy ledger {self.path} is a dangling link",
                [
                    Problem(
                        str(self.path), "", "a link to a missing file", "the ledger file itself; restore it from backup"
                    )
                ],
            )
        if not self.path.exists():
            return []
        try:
            data = self.path.read_bytes()
        except OSError as err:
            raise BadInputError(
                f"Cannot read privacy ledger {self.path}",
                [Problem(str(self.path), "", err.strerror or type(err).__name__, "a readable ledger file")],
            ) from err
        charges: list[Charge] = []
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        for number, raw in enumerate(lines, start=1):
            try:
                charge = Charge.model_validate_json(raw)
            except ValidationError as err:
                raise self._damaged(number, raw, f"not a valid privacy charge ({err.error_count()} problems)") from err
            expected_prev = charges[-1].hash if charges else GENESIS_HASH
            if charge.seq != len(charges) or charge.prev_hash != expected_prev:
                raise self._damaged(number, raw, "out of chain: a charge before it was removed, inserted or reordered")
            if charge.hash != charge.expected_hash():
                raise self._damaged(number, raw, "hash mismatch: the charge was edited")
            charges.append(charge)
        return charges

    def _damaged(self, number: int, raw: bytes, what: str) -> IntegrityError:
        shown = raw[:80].decode("utf-8", errors="replace")
        problem = Problem(
            str(self.path),
            f"line {number}",
            shown,
            f"{what}; restore the ledger from backup: no charge may be forgotten",
        )
        return IntegrityError(f"Privacy ledger {self.path} is damaged at line {number}", [problem])

    def spend(self, *, trial_id: str, delta: float, accountant: Accountant, extra: Sequence[Mechanism] = ()) -> Spend:
        """Epsilon of ``trial_id`` and of the whole dataset at ``delta``, with ``extra`` mechanisms added."""
        return spend_of(self.charges(), trial_id=trial_id, delta=delta, accountant=accountant, extra=extra)

    def charge(self, planned: PlannedCharge) -> Charge:
        """Append ``planned`` if both budgets allow it; raise :class:`BudgetExhausted` (exit 4) if not.

        The charge is durable on disk when this returns: only then may the update leave the site.
        A release is charged once: if the ledger already holds a charge with the same
        :attr:`PlannedCharge.key` (the site crashed after charging, before its reply left),
        that charge is returned and nothing is added.
        """
        with self._locked():
            charges = self.charges()
            for earlier in charges:
                if earlier.key == planned.key:
                    return earlier
            after = spend_of(
                charges,
                trial_id=planned.trial_id,
                delta=planned.delta,
                accountant=planned.accountant,
                extra=[planned.mechanism],
            )
            refusal = over_budget(planned, after)
            if refusal:
                raise BudgetExhausted(
                    f"Privacy budget of site {planned.site_id} exhausted",
                    [Problem(str(self.path), "privacy.epsilon_budget", f"{after.cumulative_epsilon:.4g}", refusal)],
                )
            content: dict[str, Any] = {
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "site_id": planned.site_id,
                "dataset": planned.dataset,
                "trial_id": planned.trial_id,
                "spec_hash": planned.spec_hash,
                "round": planned.round,
                "release": planned.release,
                "statistic": planned.statistic,
                "accountant": planned.accountant.value,
                "noise_multiplier": planned.mechanism.noise_multiplier,
                "sample_rate": planned.mechanism.sample_rate,
                "steps": planned.mechanism.steps,
                "delta": planned.delta,
                "trial_epsilon": after.trial_epsilon,
                "cumulative_epsilon": after.cumulative_epsilon,
                "epsilon_budget": planned.epsilon_budget,
                "trial_epsilon_budget": planned.trial_epsilon_budget,
                "seq": len(charges),
                "prev_hash": charges[-1].hash if charges else GENESIS_HASH,
            }
            draft = Charge.model_validate({**content, "hash": GENESIS_HASH})
            charge = draft.model_copy(update={"hash": draft.expected_hash()})
            lines = b"".join(c.model_dump_json().encode("utf-8") + b"\n" for c in (*charges, charge))
            write_bytes_atomic(self.path, lines, mode=0o600)
            return charge

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with exclusive_lock(self.path.with_name(self.path.name + ".lock")):
            yield


def spend_of(
    charges: Sequence[Charge], *, trial_id: str, delta: float, accountant: Accountant, extra: Sequence[Mechanism] = ()
) -> Spend:
    """Epsilon of ``trial_id``'s charges and of all ``charges`` at ``delta``, with ``extra`` mechanisms added."""
    trial = [c.mechanism for c in charges if c.trial_id == trial_id] + list(extra)
    everything = [c.mechanism for c in charges] + list(extra)
    return Spend(
        trial_epsilon=epsilon(trial, delta=delta, accountant=accountant),
        cumulative_epsilon=epsilon(everything, delta=delta, accountant=accountant),
    )


def epsilon_by_release(
    charges: Sequence[Charge], *, trial_id: str, delta: float, accountant: Accountant
) -> dict[ReleaseKind, float]:
    """Epsilon of each release kind of ``trial_id`` alone, at ``delta`` (every kind listed; 0.0 if none).

    The kinds compose into the trial's epsilon (:func:`spend_of`), which is at most their sum
    and usually well below it: RDP composes before the conversion to (epsilon, delta).
    """
    return {
        kind: epsilon(
            [c.mechanism for c in charges if c.trial_id == trial_id and c.release == kind],
            delta=delta,
            accountant=accountant,
        )
        for kind in RELEASE_KINDS
    }


def charge_hash(content: dict[str, Any]) -> str:
    """SHA-256 (hex) of a charge's canonical JSON without its ``hash`` field."""
    return hashlib.sha256(canonical_json(content)).hexdigest()


def over_budget(planned: PlannedCharge, after: Spend) -> str | None:
    """Why spending ``planned`` (leading to ``after``) is not allowed, or None if it is."""
    what = (
        f"round {planned.round}"
        if planned.release == DP_SGD
        else f"the {planned.release} release of round {planned.round}"
    )
    if after.cumulative_epsilon > planned.epsilon_budget:
        return (
            f"epsilon on dataset {planned.dataset} after {what} would be "
            f"{after.cumulative_epsilon:.4g} > the site policy's budget {planned.epsilon_budget:g} (across trials)"
        )
    if after.trial_epsilon > planned.trial_epsilon_budget:
        return (
            f"epsilon of trial {planned.trial_id} after {what} would be "
            f"{after.trial_epsilon:.4g} > the trial's budget {planned.trial_epsilon_budget:g} per site"
        )
    return None


def summarise(charges: Sequence[Charge]) -> dict[str, Any]:
    """Per-trial spend and what is left, as ``sandbox privacy ledger`` shows it."""
    trials: dict[str, dict[str, Any]] = {}
    for charge in charges:
        row = trials.setdefault(
            charge.trial_id,
            {"trial_id": charge.trial_id, "rounds": 0, "steps": 0, "releases": dict.fromkeys(RELEASE_KINDS, 0)},
        )
        row["releases"][charge.release] += 1
        training = charge.release == DP_SGD
        row.update(
            rounds=row["rounds"] + training,
            steps=row["steps"] + charge.steps * training,
            trial_epsilon=charge.trial_epsilon,
            trial_epsilon_budget=charge.trial_epsilon_budget,
            delta=charge.delta,
            accountant=charge.accountant.value,
            last_round=charge.round,
            cumulative_epsilon_after=charge.cumulative_epsilon,
        )
    last = charges[-1] if charges else None
    return {
        "site_id": last.site_id if last else None,
        "dataset": last.dataset if last else None,
        "charges": len(charges),
        "trials": list(trials.values()),
        "epsilon_spent": last.cumulative_epsilon if last else 0.0,
        "epsilon_budget": last.epsilon_budget if last else None,
        "epsilon_remaining": max(last.epsilon_budget - last.cumulative_epsilon, 0.0) if last else None,
    }
