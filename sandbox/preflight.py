"""Pre-flight: evaluate a trial against every participant's composed policy, before anything runs.

Each site's policy is found through the federation the trial names: the site's own node config
points at its institution file (``policy:``), which layers on its country and region; the
:class:`~sandbox.resolved_trial.ResolvedTrial` holds them, read once. The trial never carries a
site's policy.
"""

from __future__ import annotations

from dataclasses import replace

from participants.contract_data import load_site_records
from participants.privacy_ledger import PrivacyLedger
from participants.privacy_plan import ledger_path, trial_cost
from participants.site_floor import site_floor
from policies import PreflightResult, PrivacyCost, evaluate
from sandbox.resolved_trial import ResolvedTrial
from trialcore.spec_facts import trial_facts


def preflight(trial: ResolvedTrial) -> PreflightResult:
    """Evaluate the trial against each participant's composed policy, with the privacy dry run."""
    facts = replace(trial_facts(trial.spec), privacy_costs=privacy_dry_run(trial))
    return evaluate(facts, dict(trial.policies), clock=trial.clock)


def privacy_dry_run(trial: ResolvedTrial) -> dict[str, PrivacyCost]:
    """What the whole trial would cost each site in epsilon, from the site's ledger as the coordinator can see it.

    A site with a ``state_dir`` is read at its ledger there; a simulated site without one starts
    each run with a fresh ledger under the run folder, so nothing is spent before. Sites whose
    policy and the spec ask for no DP get no row (the privacy-budget clause denies them).
    """
    costs: dict[str, PrivacyCost] = {}
    for site_id, site in trial.sites.items():
        policy = trial.policies[site_id]
        epochs, dp = site_floor(trial.spec, policy)
        if dp is None:
            continue
        path = ledger_path(site, trial_id=trial.spec.trial_id, run_id=0, settings={})  # a real site needs a state_dir
        ledger = PrivacyLedger(path) if site.config.state_dir else None
        costs[site_id] = trial_cost(
            site,
            trial.spec,
            policy,
            spec_hash=trial.spec_hash,
            num_train=load_site_records(site, trial.spec.data).num_train,
            epochs=epochs,
            dp=dp,
            ledger=ledger,
        )
    return costs


def expected_privacy_stop(result: PreflightResult, *, min_participants: int) -> int | None:
    """The round before which too few sites could still pay to reach ``min_participants`` (None: all rounds fit).

    From the dry run: a site pays for rounds ``1..rounds_affordable``. The trial would then stop
    with ``budget-exhausted`` (``sandbox run`` exits 4), unless the ledgers change first.
    """
    costs = list(result.privacy_costs.values())
    if not costs:
        return None
    for server_round in range(1, max(c.rounds for c in costs) + 1):
        if sum(c.rounds_affordable >= server_round for c in costs) < min_participants:
            return server_round
    return None
