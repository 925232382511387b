"""Pre-flight: evaluate a trial against every participant's composed policy, before anything runs.

Each site's policy is found through the federation the trial names: the site's own node config
points at its institution file (``policy:``), which layers on its country and region. The trial
never carries a site's policy.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from participants.privacy_ledger import PrivacyLedger
from participants.privacy_plan import ledger_path, trial_cost
from participants.site_config import LoadedSiteConfig
from participants.site_data import load_site_data
from participants.site_floor import site_floor
from policies import ComposedPolicy, PreflightResult, PrivacyCost, evaluate, load_policies
from sandbox.federation import load_federation
from trialcore.clock import Clock, system_clock
from trialcore.errors import Problem, SpecError
from trialcore.spec_facts import trial_facts
from trialcore.spec_loading import LoadedSpec


def _as_shown(path: Path) -> str:
    """A path relative to the working folder when it lies below it (shorter "why not" lines)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def preflight(loaded: LoadedSpec, *, clock: Clock = system_clock) -> PreflightResult:
    """Evaluate ``loaded`` against each participant's composed policy (bad policy files: exit 2)."""
    sites = load_federation(loaded)
    missing = [
        Problem(site.shown_as, "policy", "nothing", "the path of this institution's policy file")
        for site in sites.values()
        if not site.config.policy
    ]
    if missing:
        raise SpecError("Sites without a policy cannot be checked", missing)
    files = {site_id: _as_shown(site.resolve(str(site.config.policy))) for site_id, site in sites.items()}
    policies = load_policies(files, clock=clock)
    facts = replace(trial_facts(loaded.spec), privacy_costs=privacy_dry_run(loaded, sites, policies))
    return evaluate(facts, policies, clock=clock)


def privacy_dry_run(
    loaded: LoadedSpec, sites: dict[str, LoadedSiteConfig], policies: dict[str, ComposedPolicy]
) -> dict[str, PrivacyCost]:
    """What the whole trial would cost each site in epsilon, from the site's ledger as the coordinator can see it.

    A site with a ``state_dir`` is read at its ledger there; a simulated site without one starts
    each run with a fresh ledger under the run folder, so nothing is spent before. Sites whose
    policy and the spec ask for no DP get no row (the privacy-budget clause denies them).
    """
    costs: dict[str, PrivacyCost] = {}
    for site_id, site in sites.items():
        policy = policies.get(site_id)
        if policy is None:
            continue
        epochs, dp = site_floor(loaded.spec, policy)
        if dp is None:
            continue
        path = ledger_path(site, trial_id=loaded.spec.trial_id, run_id=0, settings={})  # a real site needs a state_dir
        ledger = PrivacyLedger(path) if site.config.state_dir else None
        costs[site_id] = trial_cost(
            site,
            loaded.spec,
            policy,
            spec_hash=loaded.spec_hash,
            num_train=load_site_data(site).num_train,
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
