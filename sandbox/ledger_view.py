"""What a site's privacy ledger holds for this trial, where the coordinator can see it.

The report's epsilon must be the ledger's epsilon. A site publishes its ledger's figures in its
training reply, so a site that charged its ledger and then failed (non-finite data, a crash, a
lost reply) leaves the coordinator one charge behind. A simulated site keeps its ledger under the
run folder (``<run-dir>/sites/<site-id>/privacy/*.ledger.jsonl``, see
:func:`participants.privacy_plan.ledger_path`); at the end of the trial the coordinator reads it
and reports what it holds. A real site's ledger lives in its own state folder, out of the
coordinator's sight: its figures are those of its last reply, and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from participants.privacy_ledger import PrivacyLedger, epsilon_by_release
from trialcore import layout
from trialcore.errors import SandboxError

SOURCE_REPLY = "site-reply"
"""The figures came with the site's last training reply (its ledger is not visible to the coordinator)."""
SOURCE_LEDGER = "site-ledger"
"""The figures were read from the site's ledger under the run folder."""
SOURCE_NONE = "no-charge"
"""The site charged nothing visible in this trial (the dry run's figures are shown)."""


@dataclass(frozen=True)
class LedgerFigures:
    """The last charge of ``trial_id`` in a site's ledger, in the report's terms."""

    epsilon_spent: float
    epsilon_budget: float
    trial_epsilon: float
    trial_epsilon_budget: float
    delta: float
    last_charged_round: int
    charges: int
    trial_epsilon_by_release: dict[str, float]

    def as_report(self) -> dict[str, Any]:
        """The keys the report's ``sites[].privacy`` holds."""
        return {
            "epsilon_spent": self.epsilon_spent,
            "epsilon_budget": self.epsilon_budget,
            "trial_epsilon": self.trial_epsilon,
            "trial_epsilon_budget": self.trial_epsilon_budget,
            "trial_epsilon_by_release": dict(self.trial_epsilon_by_release),
            "delta": self.delta,
            "last_charged_round": self.last_charged_round,
        }


def visible_ledger(run_dir: Path, site_id: str, *, trial_id: str) -> LedgerFigures | str | None:
    """The site's ledger figures for ``trial_id`` if its ledger is under ``run_dir``.

    Returns ``None`` when no ledger of the site is there (a real site, or no DP) or it holds no
    charge of this trial, and a one-line reason when a ledger is there but cannot be read.
    """
    folder = layout.simulated_site_dir(run_dir, site_id) / layout.PRIVACY_DIR
    try:
        files = sorted(folder.glob(f"*{layout.LEDGER_SUFFIX}")) if folder.is_dir() else []
    except OSError as err:
        return f"{folder}: {err.strerror}"
    for file in files:
        try:
            charges = [c for c in PrivacyLedger(file).charges() if c.trial_id == trial_id]
        except SandboxError as err:
            return "; ".join(err.lines())
        except OSError as err:
            return f"{file}: {err.strerror}"
        if charges:
            last = charges[-1]
            return LedgerFigures(
                epsilon_spent=last.cumulative_epsilon,
                epsilon_budget=last.epsilon_budget,
                trial_epsilon=last.trial_epsilon,
                trial_epsilon_budget=last.trial_epsilon_budget,
                delta=last.delta,
                last_charged_round=last.round,
                charges=len(charges),
                trial_epsilon_by_release={
                    str(kind): value
                    for kind, value in epsilon_by_release(
                        charges, trial_id=trial_id, delta=last.delta, accountant=last.accountant
                    ).items()
                },
            )
    return None
