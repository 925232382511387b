"""The site's own audit chain: what this site received, sent and refused, kept at the site.

The chain lives in the site's state folder (``state_dir`` of its node config), one file per
trial: ``<state_dir>/<trial-id>/audit.jsonl``. In the demo's simulation, where simulated sites
have no state folder of their own, it lives under the run folder:
``runs/<trial-id>/<run-id>/sites/<site-id>/audit.jsonl``. Each entry for a round names the
coordinator's entry for that round, and the coordinator records this entry's hash in return.

Invariants
----------
- The trial id and spec hash of a chain come from the spec the site verified, never from loose
  message keys; a trial id that is not kebab-case (so could name a path) is refused here too.
- A message the site could not verify (no spec, a spec that does not match its hash) names no
  trial the site can trust: its refusal goes to the site's chain of unverified messages,
  ``<state_dir>/unverified-messages/audit.jsonl`` (``.../sites/<site-id>/unverified-messages/``
  in simulation), whose entries carry trial id :data:`UNVERIFIED_TRIAL` and a zero spec hash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flwr.app import ConfigRecord

from participants.site_config import LoadedSiteConfig
from participants.site_paths import simulated_site_dir
from trialcore import layout, wire
from trialcore.audit_chain import AuditChain
from trialcore.spec import KEBAB_ID

__all__ = [
    "UNVERIFIED_TRIAL",
    "append_site_entry",
    "append_unverified_entry",
    "site_state_dir",
    "unverified_chain_path",
]

UNVERIFIED_TRIAL = layout.UNVERIFIED_DIR
"""The pseudo trial id of the chain that records refusals of messages the site could not verify."""
_ZERO_HASH = "0" * 64


def _checked_trial_id(trial_id: str) -> str:
    if not re.fullmatch(KEBAB_ID, trial_id) or len(trial_id) > 63:
        raise ValueError(f"trial id {trial_id[:80]!r} is not a kebab-case id; it may not name a folder")
    if trial_id == UNVERIFIED_TRIAL:
        raise ValueError(f"trial id {trial_id!r} is the name of the site's chain of unverified messages")
    return trial_id


def site_state_dir(site: LoadedSiteConfig, *, trial_id: str, run_id: int, settings: Mapping[str, object]) -> Path:
    """Where this site keeps its evidence for ``trial_id`` (a kebab-case id, else ``ValueError``)."""
    trial_id = _checked_trial_id(trial_id)
    if site.config.state_dir:
        return layout.site_trial_dir(site.resolve(site.config.state_dir), trial_id)
    return simulated_site_dir(site, trial_id=trial_id, run_id=run_id, settings=settings)


def append_site_entry(
    site: LoadedSiteConfig,
    config: ConfigRecord,
    *,
    trial_id: str,
    spec_hash: str,
    run_id: int,
    settings: Mapping[str, object],
    event: str,
    payload: dict[str, Any],
) -> ConfigRecord:
    """Append ``event`` to the site's chain of the verified ``trial_id``; return the reply's site record.

    ``trial_id`` and ``spec_hash`` are those of the spec the site verified; ``config`` only
    supplies the coordinator's entry hash that the site's entry names.
    """
    chain = AuditChain.open(
        site_state_dir(site, trial_id=trial_id, run_id=run_id, settings=settings) / layout.AUDIT_FILE,
        actor=f"site:{site.config.site_id}",
        trial_id=trial_id,
        spec_hash=spec_hash,
    )
    coordinator_entry = config.get(wire.COORDINATOR_ENTRY)
    if isinstance(coordinator_entry, str):
        payload = {**payload, "coordinator_entry": coordinator_entry[:64]}
    entry = chain.append(event, payload)
    return ConfigRecord(
        {
            wire.SITE_ID: site.config.site_id,
            wire.JURISDICTION: site.config.jurisdiction,
            wire.AUDIT_HASH: entry.hash,
            wire.AUDIT_LENGTH: chain.head.length,
        }
    )


def unverified_chain_path(site: LoadedSiteConfig, *, run_id: int, settings: Mapping[str, object]) -> Path:
    """The chain of refusals of messages that named no trial the site could verify."""
    if site.config.state_dir:
        return layout.unverified_chain(site.resolve(site.config.state_dir))
    return layout.unverified_chain(
        simulated_site_dir(site, trial_id=UNVERIFIED_TRIAL, run_id=run_id, settings=settings)
    )


def append_unverified_entry(
    site: LoadedSiteConfig, *, run_id: int, settings: Mapping[str, object], event: str, payload: dict[str, Any]
) -> None:
    """Append ``event`` to the site's chain of unverified messages (trial id :data:`UNVERIFIED_TRIAL`)."""
    chain = AuditChain.open(
        unverified_chain_path(site, run_id=run_id, settings=settings),
        actor=f"site:{site.config.site_id}",
        trial_id=UNVERIFIED_TRIAL,
        spec_hash=_ZERO_HASH,
    )
    chain.append(event, payload)
