"""The checks of a whole run that look across its files: cross-references, ledgers, metrics snapshot.

Each function takes chains already verified on their own (:mod:`sandbox.run_verify`) as lists of
entries, and returns ``None`` when the check holds or one line saying what does not:

* :func:`cross_reference_problem`: for every round, the coordinator's ``round-aggregated`` entry
  names each site's newest entry of the round (``site_audit_entries``), and that site entry names
  the coordinator's ``round-configured`` entry of the same round (``coordinator_entry``); every
  site entry that names a coordinator entry names one that exists; every site the coordinator
  says trained in a round sent an update that round by its own chain.
* :func:`ledger_problem`: every ledger charge a site's ``update-sent`` entry names (``ledger_seq``,
  ``ledger_hash``) is in the site's privacy ledger, which is itself intact.
* :func:`metrics_problem`: the final metrics snapshot (``metrics.prom``) shows the report's end
  state, coordinator chain head and per-site epsilon.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from participants.privacy_ledger import PrivacyLedger
from trialcore import layout
from trialcore.errors import SandboxError

Entry = Mapping[str, Any]


def read_entries(chain: Path) -> list[Entry]:
    """The entries of a chain that already verified (one JSON object per line)."""
    return [json.loads(line) for line in chain.read_bytes().splitlines() if line.strip()]


def _round_of(entry: Entry) -> int | None:
    value = entry["payload"].get("round")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def cross_reference_problem(coordinator: Sequence[Entry], site_id: str, site: Sequence[Entry]) -> str | None:
    """Why ``site_id``'s chain and the coordinator's do not name each other round by round; None if they do."""
    configured = {_round_of(e): e["hash"] for e in coordinator if e["event"] == "round-configured"}
    coordinator_hashes = {e["hash"] for e in coordinator}
    site_by_hash = {e["hash"]: e for e in site}
    sent_rounds = {_round_of(e) for e in site if e["event"] == "update-sent"}
    for entry in coordinator:
        if entry["event"] != "round-aggregated":
            continue
        server_round = _round_of(entry)
        named = (entry["payload"].get("site_audit_entries") or {}).get(site_id)
        if named is not None:
            site_entry = site_by_hash.get(named)
            if site_entry is None:
                return f"round {server_round}: the coordinator names site entry {named[:16]}..., which the site's chain lacks"
            if site_entry["payload"].get("coordinator_entry") != configured.get(server_round):
                return f"round {server_round}: the site's entry {named[:16]}... does not name the coordinator's round entry"
        if site_id in (entry["payload"].get("trained_sites") or []) and server_round not in sent_rounds:
            return (
                f"round {server_round}: the coordinator says the site trained, but its chain has no update-sent entry"
            )
    for site_entry in site:
        named_back = site_entry["payload"].get("coordinator_entry")
        if named_back is not None and named_back not in coordinator_hashes:
            return f"site entry {site_entry['seq']} names coordinator entry {str(named_back)[:16]}..., which the coordinator's chain lacks"
        server_round = _round_of(site_entry)
        if named_back is not None and server_round is not None and configured.get(server_round) != named_back:
            return f"site entry {site_entry['seq']} (round {server_round}) names another round's coordinator entry"
    return None


def ledger_files(state_folder: Path) -> list[Path]:
    """A site's privacy ledgers in its state folder (or a simulated site's stand-in)."""
    folder = state_folder / layout.PRIVACY_DIR
    return sorted(folder.glob(f"*{layout.LEDGER_SUFFIX}")) if folder.is_dir() else []


def named_charges(site: Sequence[Entry]) -> list[tuple[int, str]]:
    """(ledger seq, ledger hash) of every charge the site's entries name, once each, in chain order.

    Training charges are named by ``update-sent`` entries (``dp_sgd``); every other release
    (feature statistics, evaluation) by the ``release`` of the entry that sent it.
    """
    found: list[tuple[int, str]] = []
    for entry in site:
        payload = entry["payload"]
        named = [payload.get("dp_sgd") if entry["event"] == "update-sent" else None, payload.get("release")]
        for charge in named:
            if isinstance(charge, dict) and "ledger_seq" in charge:
                pair = (int(charge["ledger_seq"]), str(charge["ledger_hash"]))
                if pair not in found:
                    found.append(pair)
    return found


def ledger_problem(state_folder: Path, site: Sequence[Entry]) -> tuple[str | None, int]:
    """Why the ledger charges the site's chain names are not in its intact ledger (None if they are); and how many."""
    named = named_charges(site)
    if not named:
        return None, 0
    files = ledger_files(state_folder)
    if not files:
        return (
            f"its chain names {len(named)} ledger charge(s) but no ledger is in {state_folder / layout.PRIVACY_DIR}",
            0,
        )
    held: dict[int, str] = {}
    for file in files:
        try:
            held.update({charge.seq: charge.hash for charge in PrivacyLedger(file).charges()})
        except SandboxError as err:
            return "; ".join(err.lines()), 0
    for seq, digest in named:
        if held.get(seq) != digest:
            return f"ledger charge {seq} named by the site's chain ({digest[:16]}...) is not in its ledger", 0
    return None, len(named)


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def metrics_problem(metrics_file: Path, report: Mapping[str, Any]) -> str | None:
    """Why ``metrics.prom`` disagrees with the report (state, chain head, epsilon); None if it agrees."""
    try:
        samples = _samples(metrics_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        return f"{metrics_file.name} cannot be read as Prometheus text ({err})"

    def values(name: str, **labels: str) -> list[float]:
        return [v for n, found, v in samples if n == name and all(found.get(k) == x for k, x in labels.items())]

    state = str(report.get("state"))
    if values("sandbox_trial_state", sandbox_trial_state=state) != [1.0]:
        return f"the snapshot's trial state is not the report's {state!r}"
    head = report["audit"]["coordinator"]
    if values("sandbox_audit_entries_total") != [float(head["length"])]:
        return f"the snapshot's audit chain length is not the report's {head['length']}"
    if values("sandbox_audit_head_info", hash=str(head["hash"])) != [1.0]:
        return "the snapshot's audit chain head is not the report's"
    for site in report.get("sites", []):
        privacy = site.get("privacy") or {}
        for name, key in (
            ("sandbox_privacy_epsilon_spent", "epsilon_spent"),
            ("sandbox_privacy_trial_epsilon_spent", "trial_epsilon"),
        ):
            found = values(name, site=str(site["site_id"]))
            expected = privacy.get(key)
            if expected is not None and (len(found) != 1 or not math.isclose(found[0], float(expected), rel_tol=1e-9)):
                return f"site {site['site_id']}: the snapshot's {name} {found} is not the report's {key} {expected}"
    return None
