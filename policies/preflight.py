"""Pre-flight: may this trial run at these sites, under their policies, today?

:func:`evaluate` applies every clause of every site's composed policy to the trial's
facts and reports each as a :class:`~policies.decision.Decision`; a denial names the
clause, the policy file that set the limiting value and the value that failed. It then
composes all sites (strictest wins) and adds cross-site
:class:`~policies.decision.Finding` s: empty intersections, windows that never overlap,
conflicting pinned approvals, and an aggregator jurisdiction some sites cannot reach.

The clauses and their regulatory anchors are in :mod:`policies.clauses`.

Pure: the only input besides the arguments is the injected clock; 1,000 sites evaluate
in well under half a second because nothing is re-validated.
"""

from __future__ import annotations

from collections.abc import Mapping

from policies.clauses import CHECKS, SiteContext
from policies.composed import ComposedPolicy
from policies.composition import compose_sites
from policies.decision import Clause, Decision, Finding, PreflightResult
from policies.rules import render
from trialcore.clock import Clock, system_clock, utc_today
from trialcore.facts import TrialFacts

__all__ = ["evaluate"]


def evaluate(
    trial: TrialFacts, site_policies: Mapping[str, ComposedPolicy], *, clock: Clock = system_clock
) -> PreflightResult:
    """Decide every clause for every site of ``trial``, and find cross-site infeasibility.

    Parameters
    ----------
    trial:
        The trial's facts.
    site_policies:
        Site id → composed policy; a site of the trial without one is denied (clause ``policy``).
    clock:
        Source of "today" (UTC) for validity and sandbox-plan windows.

    Returns
    -------
    PreflightResult
        ``refused`` is true iff any decision denies or any finding exists.
    """
    now = clock()
    today = utc_today(lambda: now)
    decisions: list[Decision] = []
    present: dict[str, ComposedPolicy] = {}
    for site_id, jurisdiction in trial.sites:
        policy = site_policies.get(site_id)
        if policy is None:
            decisions.append(
                Decision(
                    site_id,
                    Clause.POLICY.value,
                    False,
                    "no policy loaded for this site",
                    "",
                    site_id,
                    "a policy file for every site",
                )
            )
            continue
        present[site_id] = policy
        site = SiteContext(site_id, jurisdiction, policy, today)
        decisions.extend(check(trial, site) for check in CHECKS)
    composition = compose_sites(present) if present else None
    findings = list(composition.findings) if composition else []
    findings += _unreachable_aggregator(trial, decisions, present)
    return PreflightResult(
        trial.trial_id,
        now,
        tuple(decisions),
        tuple(findings),
        composition.policy if composition else None,
        dict(trial.privacy_costs),
    )


def _unreachable_aggregator(
    trial: TrialFacts, decisions: list[Decision], present: Mapping[str, ComposedPolicy]
) -> list[Finding]:
    blocked = [d for d in decisions if d.clause == Clause.TRANSFER.value and not d.permit]
    if not blocked:
        return []
    sites = tuple(d.site_id for d in blocked)
    common = frozenset.intersection(*(p.reachable_aggregators() for p in present.values()))
    reason = (
        f"aggregator jurisdiction {trial.aggregator_jurisdiction} is not reachable from site(s) "
        f"{', '.join(sites)}; jurisdictions every site can reach: {render(common) if common else 'none'}"
    )
    sources = tuple(dict.fromkeys(d.source_file for d in blocked))
    return [Finding("aggregator-jurisdiction-forbidden", reason, sites, sources)]
