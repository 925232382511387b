"""A trial resolved once per command: the spec, its hash, each site's node config and composed policy.

``sandbox check``, ``sandbox run`` and the ServerApp under ``flwr run`` load the spec, then call
:func:`resolve_trial` once; pre-flight, the privacy dry run, the consent check and the run all take
the :class:`ResolvedTrial` it returns.

Invariant: every site's node config and every policy layer is read once, here, per command; no
later step re-reads a site file or re-validates the federation. (The sites themselves read their
own node config and policy in their ClientApp: a site's policy comes from the site.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from participants.site_config import LoadedSiteConfig
from policies import ComposedPolicy, load_policies
from sandbox.federation import load_federation
from trialcore.clock import Clock, system_clock
from trialcore.errors import Problem, SpecError, show_path
from trialcore.spec import TrialSpec
from trialcore.spec_loading import LoadedSpec


@dataclass(frozen=True)
class ResolvedTrial:
    """A validated spec with its federation: one node config and one composed policy per participant.

    Attributes
    ----------
    loaded:
        The validated spec, its file and its hash.
    sites:
        Site id → the site's node config, in the spec's participant order.
    policies:
        Site id → the site's composed policy (region → country → institution), read with ``clock``.
    clock:
        The clock policies were judged with (expiry dates); pre-flight uses the same one.
    """

    loaded: LoadedSpec
    sites: Mapping[str, LoadedSiteConfig]
    policies: Mapping[str, ComposedPolicy]
    clock: Clock = system_clock

    @property
    def spec(self) -> TrialSpec:
        """The validated trial spec."""
        return self.loaded.spec

    @property
    def spec_hash(self) -> str:
        """Hex SHA-256 of the spec's canonical JSON."""
        return self.loaded.spec_hash


def resolve_trial(loaded: LoadedSpec, *, clock: Clock = system_clock) -> ResolvedTrial:
    """Read every participant's node config and policy chain once.

    Raises
    ------
    SpecError
        When the federation and the spec disagree, or a site names no policy (exit 2).
    PolicyFileError
        With every problem of every site's policy files (exit 2).
    """
    sites = load_federation(loaded)
    missing = [
        Problem(site.shown_as, "policy", "nothing", "the path of this institution's policy file")
        for site in sites.values()
        if not site.config.policy
    ]
    if missing:
        raise SpecError("Sites without a policy cannot be checked", missing)
    files = {site_id: show_path(site.resolve(str(site.config.policy))) for site_id, site in sites.items()}
    return ResolvedTrial(loaded=loaded, sites=sites, policies=load_policies(files, clock=clock), clock=clock)
