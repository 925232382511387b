"""A site's withdrawal from a trial: from the next message on, the site refuses that trial.

``participants withdraw --site-config FILE TRIAL_ID`` writes ``<state_dir>/withdrawals/<trial-id>.json``
(whole, atomically) and appends ``withdrawn`` to the site's own chain of that trial. The guard
(:mod:`participants.site_guard`) reads the file for every message and refuses a withdrawn trial
with a reason starting :data:`trialcore.wire.WITHDRAWN_PREFIX`; the refusal is audited at the
site and, as every refusal, at the coordinator, which goes on or skips rounds by
``min_participants``. Withdrawal is the site's decision alone and needs no one's approval;
it lasts until the file is removed by the site.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from participants.errors import SiteConfigError
from participants.site_config import LoadedSiteConfig
from trialcore import layout
from trialcore.atomic_file import write_json_atomic
from trialcore.audit_chain import AuditChain
from trialcore.errors import BadInputError, Problem, show_value
from trialcore.spec import KEBAB_ID

__all__ = ["Withdrawal", "withdraw", "withdrawal_of"]

WITHDRAWALS_DIR = "withdrawals"
_ZERO_HASH = "0" * 64


@dataclass(frozen=True)
class Withdrawal:
    """A site's withdrawal from one trial: when and why."""

    site_id: str
    trial_id: str
    withdrawn_at: str
    reason: str


def _state_dir(site: LoadedSiteConfig) -> Path:
    if not site.config.state_dir:
        raise SiteConfigError(
            f"Site {site.config.site_id} has no state folder",
            [Problem(site.shown_as, "state_dir", "nothing", "the site's own state folder (ledger, audit chains)")],
        )
    return site.resolve(site.config.state_dir)


def withdrawal_path(site: LoadedSiteConfig, trial_id: str) -> Path:
    """``<state_dir>/withdrawals/<trial-id>.json``."""
    return _state_dir(site) / WITHDRAWALS_DIR / f"{trial_id}.json"


def withdrawal_of(site: LoadedSiteConfig, trial_id: str) -> Withdrawal | None:
    """The site's withdrawal from ``trial_id``, or None (always None for a site without a state folder)."""
    if not site.config.state_dir:
        return None
    path = withdrawal_path(site, trial_id)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):  # an unreadable withdrawal still withdraws: refusing is the safe side
        return Withdrawal(site.config.site_id, trial_id, "unknown", f"unreadable withdrawal file {path}")
    return Withdrawal(
        site.config.site_id, trial_id, str(document.get("withdrawn_at", "")), str(document.get("reason", ""))
    )


def withdraw(site: LoadedSiteConfig, trial_id: str, reason: str) -> Withdrawal:
    """Withdraw the site from ``trial_id``; audited in the site's chain of that trial.

    Raises
    ------
    BadInputError
        A trial id that is not kebab-case, an empty reason, or a site without a state folder.
    """
    import re

    problems = []
    if not re.fullmatch(KEBAB_ID, trial_id) or len(trial_id) > 63:
        problems.append(Problem("TRIAL_ID", "", show_value(trial_id), "a trial id (kebab-case)"))
    if not reason.strip() or "\n" in reason:
        problems.append(Problem("--reason", "", show_value(reason), "one non-empty line saying why"))
    if problems:
        raise BadInputError("Cannot withdraw", problems)
    withdrawal = Withdrawal(site.config.site_id, trial_id, datetime.now(UTC).isoformat(), reason.strip())
    write_json_atomic(withdrawal_path(site, trial_id), withdrawal.__dict__)
    chain_path = layout.site_trial_dir(_state_dir(site), trial_id) / layout.AUDIT_FILE
    chain = AuditChain.open(
        chain_path, actor=f"site:{site.config.site_id}", trial_id=trial_id, spec_hash=_last_spec_hash(chain_path)
    )
    chain.append("withdrawn", {"reason": withdrawal.reason, "withdrawn_at": withdrawal.withdrawn_at})
    return withdrawal


def _last_spec_hash(chain: Path) -> str:
    """The spec hash of the chain's last entry (the spec the site last served), or zeros for a new chain."""
    try:
        lines = [line for line in chain.read_text(encoding="utf-8").splitlines() if line.strip()]
        value = json.loads(lines[-1]).get("spec_hash") if lines else None
    except (OSError, ValueError, AttributeError):
        value = None
    return value if isinstance(value, str) and len(value) == 64 else _ZERO_HASH
