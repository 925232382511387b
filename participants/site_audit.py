"""The site's own audit chain: what this site received, sent and refused, kept at the site.

The chain lives in the site's state folder (``state_dir`` of its node config), one file per
trial: ``<state_dir>/<trial-id>/audit.jsonl``. In the demo's simulation, where simulated sites
have no state folder of their own, it lives under the run folder:
``runs/<trial-id>/<run-id>/sites/<site-id>/audit.jsonl``. Each entry for a round names the
coordinator's entry for that round, and the coordinator records this entry's hash in return.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flwr.app import ConfigRecord

from participants.site_config import LoadedSiteConfig
from participants.site_paths import simulated_site_dir
from trialcore import layout, wire
from trialcore.audit_chain import AuditChain

__all__ = ["append_site_entry", "site_state_dir"]


def site_state_dir(site: LoadedSiteConfig, *, trial_id: str, run_id: int, settings: Mapping[str, object]) -> Path:
    """Where this site keeps its evidence for ``trial_id``."""
    if site.config.state_dir:
        return layout.site_trial_dir(site.resolve(site.config.state_dir), trial_id)
    return simulated_site_dir(site, trial_id=trial_id, run_id=run_id, settings=settings)


def append_site_entry(
    site: LoadedSiteConfig,
    config: ConfigRecord,
    *,
    run_id: int,
    settings: Mapping[str, object],
    event: str,
    payload: dict[str, Any],
) -> ConfigRecord:
    """Append ``event`` to the site's chain; return the reply's site record naming the new head."""
    trial_id = str(config[wire.TRIAL_ID])
    chain = AuditChain.open(
        site_state_dir(site, trial_id=trial_id, run_id=run_id, settings=settings) / layout.AUDIT_FILE,
        actor=f"site:{site.config.site_id}",
        trial_id=trial_id,
        spec_hash=str(config[wire.SPEC_HASH]),
    )
    coordinator_entry = config.get(wire.COORDINATOR_ENTRY)
    if isinstance(coordinator_entry, str):
        payload = {**payload, "coordinator_entry": coordinator_entry}
    entry = chain.append(event, payload)
    return ConfigRecord(
        {
            wire.SITE_ID: site.config.site_id,
            "jurisdiction": site.config.jurisdiction,
            wire.AUDIT_HASH: entry.hash,
            wire.AUDIT_LENGTH: chain.head.length,
        }
    )
