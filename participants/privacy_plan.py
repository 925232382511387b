"""What one round of DP-SGD at a site costs, where its ledger lives, and what a whole trial would cost.

Shared by the site (which charges before each round) and the coordinator's pre-flight (a dry
run of the privacy cost from the same numbers), so both compute the same epsilon.

A round at a site is ``epochs x`` (expected batches per epoch) DP-SGD steps at Poisson sample
rate ``q = 1 / ceil(num_train / batch_size)``: Opacus's ``DPDataLoader`` draws each record into
each batch with probability ``q``, and an epoch is ``int(1 / q)`` batches, the number of batches
of the non-private loader.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from pathlib import Path

from participants.errors import SiteConfigError
from participants.privacy_ledger import PlannedCharge, PrivacyLedger, Spend, over_budget, spend_of
from participants.site_config import CsvSource, LoadedSiteConfig, PackagedSource, ParquetSource
from participants.site_floor import DpSettings
from participants.site_paths import simulated_site_dir
from policies import ComposedPolicy, PrivacyCost
from trialcore import layout
from trialcore.errors import Problem
from trialcore.privacy_accountant import Accountant, Mechanism, epsilon
from trialcore.spec import TrialSpec


def dataset_key(site: LoadedSiteConfig) -> str:
    """A stable name for the site's dataset: its ledger is per dataset, across trials."""
    source = site.config.data
    if isinstance(source, (CsvSource, ParquetSource)):
        resolved = str(site.resolve(source.path))
        digest = hashlib.sha256(resolved.encode("utf-8")).hexdigest()[:12]
        return f"{source.kind}-{Path(source.path).stem[:40]}-{digest}"
    if isinstance(source, PackagedSource):
        rows = f"{source.rows.column}={','.join(source.rows.equals)}" if source.rows is not None else "all"
        digest = hashlib.sha256(f"{source.dataset}|{rows}".encode()).hexdigest()[:12]
        return f"packaged-{re.sub(r'[^A-Za-z0-9]+', '-', source.dataset)[:40]}-{digest}"
    return f"{source.kind}-{source.partition}"


def ledger_path(site: LoadedSiteConfig, *, trial_id: str, run_id: int, settings: Mapping[str, object]) -> Path:
    """Where the site's ledger for its dataset lives.

    A site with a ``state_dir`` keeps it there (``<state_dir>/privacy/<dataset>.ledger.jsonl``), for every
    trial. A simulated site without one keeps it under the run folder
    (``<run-dir>/sites/<site-id>/privacy/``): fresh for every demo run. A real site without one
    gets a :class:`SiteConfigError` (exit 2): it must not train with a ledger that forgets.
    """
    if site.config.state_dir:
        return layout.ledger_file(site.resolve(site.config.state_dir), dataset_key(site))
    if not site.config.simulated:
        raise SiteConfigError(
            f"Site {site.config.site_id} has nowhere to keep its privacy ledger",
            [
                Problem(
                    site.shown_as,
                    "state_dir",
                    "nothing",
                    "a folder for the site's audit chains and privacy ledgers: without one, every run would start a fresh "
                    "ledger and the dataset's budget across trials could not be kept",
                )
            ],
        )
    return layout.ledger_file(
        simulated_site_dir(site, trial_id=trial_id, run_id=run_id, settings=settings), dataset_key(site)
    )


def round_mechanism(num_train: int, *, epochs: int, batch_size: int, dp: DpSettings) -> Mechanism:
    """The DP-SGD mechanism of one local round: ``epochs`` passes of ``ceil(n / B)`` expected batches."""
    batches = max(math.ceil(num_train / batch_size), 1)
    sample_rate = 1.0 / batches
    # Opacus's Poisson sampler draws int(1 / sample_rate) batches per epoch (one fewer than
    # ``batches`` for a few sizes, through floating-point rounding): charge what it runs.
    return Mechanism(noise_multiplier=dp.noise_multiplier, sample_rate=sample_rate, steps=epochs * int(1 / sample_rate))


def planned_charge(
    site: LoadedSiteConfig,
    spec: TrialSpec,
    policy: ComposedPolicy,
    *,
    spec_hash: str,
    server_round: int,
    mechanism: Mechanism,
) -> PlannedCharge:
    """The charge a site makes for ``server_round`` of ``spec``, with the limits of its policy and the spec."""
    return PlannedCharge(
        site_id=site.config.site_id,
        dataset=dataset_key(site),
        trial_id=spec.trial_id,
        spec_hash=spec_hash,
        round=server_round,
        accountant=Accountant(spec.privacy.accountant),
        mechanism=mechanism,
        delta=spec.privacy.delta,
        epsilon_budget=policy.epsilon_budget,
        trial_epsilon_budget=spec.privacy.epsilon_budget,
    )


def trial_cost(
    site: LoadedSiteConfig,
    spec: TrialSpec,
    policy: ComposedPolicy,
    *,
    spec_hash: str,
    num_train: int,
    epochs: int,
    dp: DpSettings,
    ledger: PrivacyLedger | None,
) -> PrivacyCost:
    """The privacy cost of every release of ``spec`` at ``site``, against its ledger as it is now (None: nothing spent yet).

    A trial releases, per site: the feature statistics once before round 1 (under federated
    normalisation), then per round a DP-SGD round and an evaluation; :func:`trial_releases`.
    """
    accountant = Accountant(spec.privacy.accountant)
    delta = spec.privacy.delta
    charges = ledger.charges() if ledger is not None else []
    mechanism = round_mechanism(num_train, epochs=epochs, batch_size=spec.local_training.batch_size, dp=dp)

    def after(rounds: int) -> Spend:
        extra = trial_releases(spec, mechanism, rounds=rounds)
        return spend_of(charges, trial_id=spec.trial_id, delta=delta, accountant=accountant, extra=extra)

    def fits(rounds: int) -> bool:
        planned = planned_charge(site, spec, policy, spec_hash=spec_hash, server_round=rounds, mechanism=mechanism)
        return over_budget(planned, after(rounds)) is None

    # Epsilon grows with every round, so the rounds that fit are 1..k: find k by bisection.
    low, high = 0, spec.rounds
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle) else (low, middle - 1)
    return PrivacyCost(
        accountant=accountant.value,
        spent_before=spend_of(charges, trial_id=spec.trial_id, delta=delta, accountant=accountant).cumulative_epsilon,
        trial_epsilon=epsilon(trial_releases(spec, mechanism, rounds=spec.rounds), delta=delta, accountant=accountant),
        cumulative_after=after(spec.rounds).cumulative_epsilon,
        epsilon_budget=policy.epsilon_budget,
        trial_epsilon_budget=spec.privacy.epsilon_budget,
        rounds_affordable=low,
        rounds=spec.rounds,
    )


def trial_releases(spec: TrialSpec, round_sgd: Mechanism, *, rounds: int) -> list[Mechanism]:
    """What a site releases in the first ``rounds`` rounds of ``spec`` (0: before round 1), as mechanisms.

    The feature statistics once (only under federated normalisation), then per round the DP-SGD
    round and one evaluation (Gaussian releases: one step at sample rate 1 each).
    """
    privacy = spec.privacy
    before = (
        []
        if spec.data is None or spec.data.normalisation != "federated"
        else [Mechanism(privacy.feature_statistics_noise_multiplier, 1.0, 1)]
    )
    evaluation = Mechanism(privacy.evaluation_noise_multiplier, 1.0, 1)
    return before + [round_sgd, evaluation] * rounds
