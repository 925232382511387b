"""Pre-flight: evaluate a trial against every participant's composed policy, before anything runs.

Each site's policy is found through the federation the trial names: the site's own node config
points at its institution file (``policy:``), which layers on its country and region. The trial
never carries a site's policy.
"""

from __future__ import annotations

from pathlib import Path

from policies import PreflightResult, evaluate, load_policies
from policies.clock import Clock, system_clock
from policies.errors import Problem
from sandbox.errors import SpecError
from sandbox.federation import load_federation
from sandbox.spec_facts import trial_facts
from sandbox.spec_loading import LoadedSpec


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
    return evaluate(trial_facts(loaded.spec), load_policies(files, clock=clock), clock=clock)
