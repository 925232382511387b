"""Where each site keeps its audit chain for a trial, and the head the report records for it.

A simulated site keeps its chain under the run folder (``sites/<site-id>/audit.jsonl``); a site
with a state folder keeps it there (``<state_dir>/<trial-id>/audit.jsonl``), out of the run
folder. The report records each chain where the site really keeps it: a path relative to the run
folder, or ``kept_by_site`` (relative to the site's state folder) for a chain outside it, which
``sandbox audit verify RUN_DIR --site-chains SITE=FOLDER`` is told where to find.

The head recorded is the newest one the coordinator can vouch for:

* ``read-at-end``: the chain is visible to the coordinator (under the run folder, or the site's
  state folder on the same machine); it is verified at the end of the run and its head recorded,
  after checking that it extends the last head the site named in a reply. So entries a site
  wrote for an error reply (a refusal, a budget stop) are anchored too.
* ``site-reply``: the chain is out of sight; the head is the last one the site named in a reply.
  Entries a site wrote after it (for an error reply, which carries no audit head) are not
  anchored by the report, and ``audit verify`` says how many there are.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from participants.site_config import LoadedSiteConfig
from trialcore import layout
from trialcore.audit_entry import ChainHead
from trialcore.audit_verify import verify_chain
from trialcore.errors import SandboxError

READ_AT_END = "read-at-end"
SITE_REPLY = "site-reply"


def site_chain_path(run_dir: Path, site: LoadedSiteConfig | None, site_id: str, trial_id: str) -> Path:
    """The file a site keeps its chain of ``trial_id`` in (simulated sites: under ``run_dir``)."""
    if site is not None and site.config.state_dir:
        return layout.site_trial_dir(site.resolve(site.config.state_dir), trial_id) / layout.AUDIT_FILE
    return layout.simulated_site_dir(run_dir, site_id) / layout.AUDIT_FILE


def kept_by_site(trial_id: str) -> str:
    """Where a site with a state folder keeps a trial's chain, relative to that folder."""
    return (Path(trial_id) / layout.AUDIT_FILE).as_posix()


def extends(chain: Path, head: ChainHead) -> bool:
    """True when entry ``head.length`` of ``chain`` (1-based) has hash ``head.hash``."""
    if head.length == 0:
        return True
    report = verify_chain(chain, expected_head=head)
    return report.ok or report.intact_through_line == head.length


def site_heads(
    run_dir: Path,
    sites: Mapping[str, LoadedSiteConfig | None],
    *,
    trial_id: str,
    reply_heads: Mapping[str, tuple[str, int]],
) -> dict[str, dict[str, Any]]:
    """Each site's chain record for the report: where it is, its head, and where the head comes from.

    A visible chain that does not verify, or does not extend the head its site named, keeps the
    reply's head (``head_problem`` says why): the report never vouches for a chain it found broken.
    """
    heads: dict[str, dict[str, Any]] = {}
    for site_id, site in sites.items():
        path = site_chain_path(run_dir, site, site_id, trial_id)
        inside = site is None or not site.config.state_dir
        record: dict[str, Any] = (
            {"path": path.relative_to(run_dir).as_posix()} if inside else {"kept_by_site": kept_by_site(trial_id)}
        )
        reply = reply_heads.get(site_id)
        problem: str | None = None
        found: ChainHead | None = None
        try:
            if path.is_file():
                checked = verify_chain(path)
                if not checked.ok:
                    problem = checked.message()
                elif reply is not None and not extends(path, ChainHead(*reply)):
                    problem = "the chain does not extend the head the site named in its last reply"
                else:
                    found = checked.head
        except (SandboxError, OSError) as err:
            problem = str(err)
        if found is not None:
            record.update(hash=found.hash, length=found.length, head_source=READ_AT_END)
        elif reply is not None:
            record.update(hash=reply[0], length=reply[1], head_source=SITE_REPLY)
        else:
            continue
        if problem is not None:
            record["head_problem"] = problem
        heads[site_id] = record
    return heads
