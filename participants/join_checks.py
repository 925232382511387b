"""What a site checks on its own machine before its SuperNode joins a federation (``participants join``).

Every check reads only the site's own files; every problem is collected, then reported at once:

- the node config is valid;
- the site's policy loads (every layer) and is in force today (``validity.valid_from`` /
  ``valid_until``);
- the data are readable through the site's connector, and its train and test parts each hold at
  least the policy's minimum cohort;
- approvals: a site that sets ``trusted_keys`` has a readable trusted-keys file naming at least
  one key and an approvals folder; with ``--spec``, the site is listed in that trial under its own
  jurisdiction and holds a valid signed approval of that exact spec;
- the state folder (audit chains, privacy ledger) is set and writable;
- the node's authentication key is an ECDSA private key Flower accepts.

Nothing is sent anywhere; the result says what was checked, in counts only.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from participants.approval_keys import load_trusted_keys
from participants.approvals import check_site_approval
from participants.contract_data import load_site_records, mapped_source
from participants.data_checks import check_contract_data
from participants.node_keys import load_node_private_key, node_fingerprint
from participants.site_config import LoadedSiteConfig
from participants.site_guard import Refused, site_policy
from trialcore import layout
from trialcore.errors import Problem, SandboxError, show_value
from trialcore.spec_loading import load_spec

__all__ = ["JoinCheck", "check_site"]


@dataclass
class JoinCheck:
    """The outcome of the site's own checks: problems (none = ready to join) and what was seen."""

    problems: list[Problem] = field(default_factory=list)
    seen: dict[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def _policy_in_force(site: LoadedSiteConfig, check: JoinCheck, today: date) -> int | None:
    """Check the policy; the minimum cohort it sets (None if it cannot be read)."""
    try:
        policy = site_policy(site)
    except Refused as err:
        check.problems.append(Problem(site.shown_as, "policy", "nothing", str(err)))
        return None
    except SandboxError as err:
        check.problems.extend(err.problems)
        return None
    if policy.valid_from is not None and today < policy.valid_from:
        check.problems.append(
            Problem(site.shown_as, "policy", f"in force from {policy.valid_from}", "a policy in force today")
        )
    if policy.valid_until is not None and today > policy.valid_until:
        check.problems.append(
            Problem(site.shown_as, "policy", f"expired on {policy.valid_until}", "a policy in force today")
        )
    check.seen["min_cohort_size"] = policy.min_cohort_size
    return policy.min_cohort_size


def _data(site: LoadedSiteConfig, check: JoinCheck, min_cohort: int | None, spec: Path | None) -> None:
    """The site's data, under the trial's data contract when the trial is given (every problem at once)."""
    try:
        contract = load_spec(spec).spec.data if spec is not None else None
    except SandboxError:
        contract = None  # the trial's own problems are listed by _approvals
    source = mapped_source(site.config.data)
    if contract is not None and source is not None:
        contract_check = check_contract_data(site, source, contract, min_cohort_size=min_cohort or 0)
        if not contract_check.ok:
            check.problems.extend([*contract_check.problems, *contract_check.findings])
            return
    try:
        data = load_site_records(site, contract)
    except SandboxError as err:
        check.problems.extend(err.problems)
        return
    check.seen.update({"num_features": data.num_features, "num_train": data.num_train, "num_test": data.num_test})
    if min_cohort is not None:
        for part, count in (("train", data.num_train), ("test", data.num_test)):
            if count < min_cohort:
                check.problems.append(
                    Problem(
                        site.shown_as,
                        "data",
                        f"{count} records in the {part} part",
                        f"at least the policy's minimum cohort of {min_cohort}",
                    )
                )


def _approvals(site: LoadedSiteConfig, check: JoinCheck, spec_path: Path | None) -> None:
    config = site.config
    if config.trusted_keys and config.approvals_dir:
        try:
            keys = load_trusted_keys(site.resolve(config.trusted_keys))
        except SandboxError as err:
            check.problems.extend(err.problems)
            keys = {}
        else:
            if not keys:
                check.problems.append(
                    Problem(site.shown_as, "trusted_keys", "no key", "at least one approver's public key")
                )
        if not site.resolve(config.approvals_dir).is_dir():
            check.problems.append(
                Problem(site.shown_as, "approvals_dir", "no such folder", "the folder of the site's signed approvals")
            )
        check.seen["trusted_approver_keys"] = len(keys)
    check.seen["approvals_required"] = bool(config.trusted_keys)
    if spec_path is None:
        return
    try:
        loaded = load_spec(spec_path)
    except SandboxError as err:
        check.problems.extend(err.problems)
        return
    listed = {p.site_id: p.jurisdiction for p in loaded.spec.participants}
    if listed.get(config.site_id) != config.jurisdiction:
        check.problems.append(
            Problem(
                str(spec_path),
                "participants",
                show_value(sorted(listed)),
                f"the trial lists {config.site_id} in {config.jurisdiction}",
            )
        )
    try:
        status = check_site_approval(site, trial_id=loaded.spec.trial_id, spec_hash=loaded.spec_hash)
    except SandboxError as err:
        check.problems.extend(err.problems)
        return
    check.seen["approval"] = status.state.value
    if not status.ok:
        check.problems.append(Problem(str(status.path), "", status.state.value, status.reason))


def _state_folder(site: LoadedSiteConfig, check: JoinCheck) -> None:
    if not site.config.state_dir:
        check.problems.append(
            Problem(site.shown_as, "state_dir", "nothing", "the site's own folder for its audit chains and ledger")
        )
        return
    folder = site.resolve(site.config.state_dir)
    ledger_folder = folder / layout.PRIVACY_DIR
    try:
        ledger_folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=ledger_folder, prefix=".join-check-"):
            pass
    except OSError as err:
        check.problems.append(
            Problem(site.shown_as, "state_dir", f"{ledger_folder} ({err.strerror})", "a folder the site can write in")
        )
        return
    check.seen["state_dir"] = str(folder)


def _node_key(key_path: Path, check: JoinCheck) -> None:
    try:
        key = load_node_private_key(key_path)
    except SandboxError as err:
        check.problems.extend(err.problems)
        return
    if os.stat(key_path).st_mode & 0o077:
        check.problems.append(
            Problem(str(key_path), "", "readable by others", "a private key only its owner can read (chmod 600)")
        )
    check.seen["node_key"] = node_fingerprint(key.public_key())[:16]


def check_site(
    site: LoadedSiteConfig, *, auth_key: Path, spec: Path | None = None, today: date | None = None
) -> JoinCheck:
    """Run every check of the module docstring; never raises for the site's own mistakes."""
    check = JoinCheck(seen={"site_id": site.config.site_id, "jurisdiction": site.config.jurisdiction})
    min_cohort = _policy_in_force(site, check, today or date.today())
    _data(site, check, min_cohort, spec)
    _approvals(site, check, spec)
    _state_folder(site, check)
    _node_key(auth_key, check)
    return check
