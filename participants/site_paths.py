"""Where a site keeps its state (audit chain, privacy ledger) when it runs as a simulated site.

A real site names a ``state_dir`` in its node config. A simulated site of the demo has none, so
its state lives under the trial's run folder, which ``sandbox run`` passes in the run settings
(``run-dir``); under ``flwr run`` it is ``<runs-root>/<trial-id>/flwr-<run id>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from participants.site_config import LoadedSiteConfig
from trialcore import layout, wire


def simulated_site_dir(site: LoadedSiteConfig, *, trial_id: str, run_id: int, settings: Mapping[str, object]) -> Path:
    """The folder under the run folder that stands in for a state folder of a site that sets none."""
    folder = settings.get(wire.RUN_DIR)
    if isinstance(folder, str) and folder:
        run_folder = Path(folder)
    else:
        runs_root = settings.get(wire.RUNS_ROOT)
        root = Path(runs_root) if isinstance(runs_root, str) and runs_root else layout.DEFAULT_RUNS_ROOT
        run_folder = layout.run_dir(root, trial_id, layout.flwr_run_name(run_id))
    return layout.simulated_site_dir(run_folder, site.config.site_id)
