"""The coordinator's view of the sites' signed approvals: pre-flight rows and the consent matrix.

The coordinator finds each site's approval where the site itself reads it: through the federation
(the site's node config → ``approvals_dir``, checked with the site's own ``trusted_keys``); in a
real pilot, what each site publishes. The rules are :func:`participants.approvals.check_site_approval`,
the very check the site's guard applies to every message.

* An approval that exists but is malformed, tampered, signed by a key the site does not trust, or
  covers another spec hash (the spec was edited after approval) is an integrity failure: ``sandbox
  check`` and ``sandbox run`` exit 5 naming the site and the file, before any policy table.
* A missing approval, a site that trusts no key yet, or an approval that predates the site's current
  policy is a denial row with clause ``approval`` (exit 3; ``sandbox run`` runs nothing).
* A site without ``trusted_keys`` requires no approval; its row permits and says so.

The consent matrix (site → approved, spec hash, key fingerprint) goes into the coordinator's
audit chain (``consent-matrix``) and ``report.json`` (``consent``). Since the run is refused
before round 1 unless every site that requires an approval has one for this exact spec hash, and
each site's guard refuses every message otherwise, only consenting sites ever train.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from participants.approvals import ApprovalState, ApprovalStatus, check_site_approval
from policies import PreflightResult
from policies.decision import Decision
from sandbox.preflight import preflight
from sandbox.resolved_trial import ResolvedTrial
from trialcore.errors import IntegrityError, Problem, show_path
from trialcore.spec_loading import LoadedSpec

APPROVAL_CLAUSE = "approval"


def approval_status(trial: ResolvedTrial) -> list[ApprovalStatus]:
    """Every participant's approval of the trial (its exact spec hash), in the trial's order.

    Raises
    ------
    BadInputError
        When a site's trusted-keys file or its policy chain cannot be read.
    """
    return [
        check_site_approval(site, trial_id=trial.spec.trial_id, spec_hash=trial.spec_hash)
        for site in trial.sites.values()
    ]


def integrity_error(loaded: LoadedSpec, statuses: list[ApprovalStatus]) -> IntegrityError | None:
    """An exit-5 error naming each site and file whose approval fails its integrity check, if any."""
    failed = [status for status in statuses if status.integrity_failure]
    if not failed:
        return None
    problems = [Problem(show_path(s.path), f"{s.site_id}.approval", s.state.value, s.reason) for s in failed]
    return IntegrityError(f"Approvals of trial {loaded.spec.trial_id!r} fail their integrity check", problems)


def approval_decisions(loaded: LoadedSpec, statuses: list[ApprovalStatus]) -> list[Decision]:
    """One ``approval`` row per site for the pre-flight table (integrity failures included, as denials)."""
    rows = []
    for status in statuses:
        required = status.state is not ApprovalState.NOT_REQUIRED
        found = (
            f"spec {status.approval.spec_hash[:12]}" if status.approval is not None else ("none" if required else "")
        )
        allowed = f"approval of spec {loaded.spec_hash[:12]} by a trusted key" if required else "no approval required"
        rows.append(
            Decision(status.site_id, APPROVAL_CLAUSE, status.ok, status.reason, show_path(status.path), found, allowed)
        )
    return rows


@dataclass(frozen=True)
class Clearance:
    """What lets a trial start: its pre-flight (one approval row per site included) and its consent matrix."""

    verdict: PreflightResult
    consent: dict[str, Any]
    statuses: tuple[ApprovalStatus, ...] = ()
    """Each site's approval as checked (with its signature), for the report."""


def clear_trial(trial: ResolvedTrial) -> Clearance:
    """The policy pre-flight of the trial plus one ``approval`` row per site, and the consent matrix.

    Raises
    ------
    BadInputError
        Bad trusted-keys files or policy chains (exit 2), first.
    IntegrityError
        When any site's approval exists but is malformed, tampered, untrusted or for another spec (exit 5).
    """
    verdict = preflight(trial)
    statuses = approval_status(trial)
    error = integrity_error(trial.loaded, statuses)
    if error is not None:
        raise error
    verdict = dataclasses.replace(
        verdict, decisions=verdict.decisions + tuple(approval_decisions(trial.loaded, statuses))
    )
    return Clearance(verdict=verdict, consent=consent_matrix(trial.loaded, statuses), statuses=tuple(statuses))


def consent_matrix(loaded: LoadedSpec, statuses: list[ApprovalStatus]) -> dict[str, Any]:
    """Site → whether its approval covers this exact spec hash, with the approval's spec hash and key fingerprint."""
    sites = {}
    for status in statuses:
        approval = status.approval
        sites[status.site_id] = {
            "approved": status.state is ApprovalState.APPROVED,
            "required": status.state is not ApprovalState.NOT_REQUIRED,
            "state": status.state.value,
            "spec_hash": approval.spec_hash if approval is not None else None,
            "approver_key_fingerprint": approval.approver_key_fingerprint if approval is not None else None,
            "approved_at": approval.approved_at if approval is not None else None,
            "policy_hash": approval.policy_hash if approval is not None else None,
            "signature": approval.signature if approval is not None else None,
        }
    return {
        "spec_hash": loaded.spec_hash,
        "all_consent": all(status.ok for status in statuses),
        "sites": sites,
    }
