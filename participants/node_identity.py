"""Which site this node is: read from the node's own config, never from the trial or the message.

Deployment: the SuperNode is started with ``--node-config "site-config=/path/site.yaml"``.
Simulation: Flower gives each simulated node a ``partition-id``; node *i* plays the *i*-th site
of the run config's ``federation-sites`` (comma-separated site ids, the trial's participants in
order), whose node config is ``<federation-dir>/<site-id>.yaml``; without ``federation-sites``,
the *i*-th config of the folder sorted by file name.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from participants.errors import SiteConfigError
from participants.site_config import LoadedSiteConfig, load_site_config
from trialcore import wire
from trialcore.errors import Problem


def federation_site_files(federation_dir: Path) -> list[Path]:
    """The site config files of a simulated federation folder, sorted by name."""
    return sorted(p for p in federation_dir.glob("*.yaml") if p.is_file())


def resolve_site(node_config: Mapping[str, object], run_config: Mapping[str, object]) -> LoadedSiteConfig:
    """Load this node's site config from its node config (deployment) or its simulated slot."""
    explicit = node_config.get(wire.SITE_CONFIG)
    if isinstance(explicit, str) and explicit:
        return load_site_config(explicit)
    federation = run_config.get(wire.FEDERATION_DIR)
    partition = node_config.get(wire.PARTITION_ID)
    if not isinstance(federation, str) or not isinstance(partition, int):
        raise SiteConfigError(
            "This node does not know which site it is",
            [
                Problem(
                    "--node-config",
                    wire.SITE_CONFIG,
                    "nothing",
                    'start the SuperNode with --node-config "site-config=/path/to/site.yaml"',
                )
            ],
        )
    listed = run_config.get(wire.FEDERATION_SITES)
    if isinstance(listed, str) and listed:
        names = listed.split(",")  # only this node's entry becomes a path: 1,000 sites cost one per message
    else:
        names = [path.stem for path in federation_site_files(Path(federation))]
    if partition >= len(names):
        raise SiteConfigError(
            "More simulated nodes than site configs",
            [
                Problem(
                    federation,
                    "",
                    f"{len(names)} site configs for node {partition}",
                    "one site config per simulated node",
                )
            ],
        )
    return load_site_config(Path(federation) / f"{names[partition]}.yaml")
