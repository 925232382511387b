"""The federation a trial names: one node config per site, in a folder beside the spec.

In the demo the folder holds the simulated sites' own node configs. In a real pilot it holds the
configs each site publishes (site id, jurisdiction, policy); the coordinator reads them only to
check that the trial and the federation agree, never to take a site's settings into the trial.
"""

from __future__ import annotations

from pathlib import Path

from participants.site_config import LoadedSiteConfig, load_site_config
from trialcore.errors import BadInputError, Problem, SpecError, show_value
from trialcore.spec_loading import LoadedSpec


def site_config_path(loaded: LoadedSpec, site_id: str) -> Path:
    """Where the federation keeps a site's node config."""
    return loaded.federation_dir / f"{site_id}.yaml"


def load_federation(loaded: LoadedSpec) -> dict[str, LoadedSiteConfig]:
    """Load every participant's node config; every mismatch with the spec is a problem.

    Raises
    ------
    SpecError
        Naming the spec field (``federation``, ``participants.N.jurisdiction``) and the site file.
    """
    source = loaded.shown_as
    spec = loaded.spec
    if not loaded.federation_dir.is_dir():
        raise SpecError(
            f"Invalid trial spec '{source}'",
            [
                Problem(
                    source,
                    "federation",
                    show_value(spec.federation),
                    f"a folder of site configs relative to the spec (no folder at {loaded.federation_dir})",
                )
            ],
        )
    problems: list[Problem] = []
    sites: dict[str, LoadedSiteConfig] = {}
    for index, participant in enumerate(spec.participants):
        path = site_config_path(loaded, participant.site_id)
        if not path.is_file():
            problems.append(
                Problem(
                    source,
                    f"participants.{index}.site_id",
                    show_value(participant.site_id),
                    f"a site of the federation (no file {path})",
                )
            )
            continue
        try:
            site = load_site_config(path)
        except BadInputError as err:
            problems.extend(err.problems)
            continue
        if site.config.site_id != participant.site_id:
            problems.append(
                Problem(
                    str(path),
                    "site_id",
                    show_value(site.config.site_id),
                    f"{participant.site_id!r}, as the file name and the trial say",
                )
            )
        if site.config.jurisdiction != participant.jurisdiction:
            problems.append(
                Problem(
                    source,
                    f"participants.{index}.jurisdiction",
                    show_value(participant.jurisdiction),
                    f"{site.config.jurisdiction!r}, the jurisdiction the site declares in {path.name}",
                )
            )
        sites[participant.site_id] = site
    if problems:
        raise SpecError(f"Trial spec '{source}' and its federation disagree", problems)
    return sites
