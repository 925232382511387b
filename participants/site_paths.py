"""Where a site keeps its state (audit chain, privacy ledger) when it runs as a simulated site.

A real site names a ``state_dir`` in its node config. A simulated site of the demo has none, so
its state lives under the trial's run folder, which ``sandbox run`` passes in the run settings
(``run-dir``); under ``flwr run`` it is ``<runs-root>/<trial-id>/flwr-<run id>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from participants.site_config import LoadedSiteConfig
from trialcore import wire


def simulated_site_dir(site: LoadedSiteConfig, *, trial_id: str, run_id: int, settings: Mapping[str, object]) -> Path:
    """The folder under the run folder that stands in for a state folder of a site that sets none."""
    run_dir = settings.get(wire.RUN_DIR)
    if not isinstance(run_dir, str) or not run_dir:
        run_dir = str(Path(str(settings.get(wire.RUNS_ROOT) or "runs")) / trial_id / f"flwr-{run_id}")
    return Path(run_dir) / "sites" / site.config.site_id
