"""Verify a whole run folder, as a regulator who was sent it: ``sandbox audit verify RUN_DIR``.

The checks, in order (each one line; the first failure is the one named on exit 5):

1. ``report``: report.json is a JSON object.
2. ``signature``: report.json.sig is the coordinator's Ed25519 signature over the report's
   canonical bytes (:mod:`sandbox.report_signature`), by the key given with ``--coordinator-key``
   or else by the key stored in the run folder (the line then says the signer was not pinned).
   The report holds every chain's head and length, so this anchors the chains outside themselves.
3. ``spec``: spec.yaml has the SHA-256 the report names; validated again it gives the canonical
   JSON in spec.canonical.json, whose SHA-256 is the report's spec hash.
4. ``chain coordinator`` and ``chain site <id>``: every chain is intact and ends at the head the
   report records; every entry carries the run's trial id and spec hash. A site's chain is found
   where the report says the site keeps it: in the run folder, or (``kept_by_site``) in the
   site's state folder, given by ``--site-chains SITE=FOLDER``.
5. ``model``: model.pt has the SHA-256 the report names.
6. ``cross-references <id>``: :func:`sandbox.run_evidence_checks.cross_reference_problem`.
7. ``ledger <id>``: :func:`sandbox.run_evidence_checks.ledger_problem`.
8. ``metrics``: :func:`sandbox.run_evidence_checks.metrics_problem`.

Every path is read relative to the run folder, so a copy of the folder moved elsewhere verifies
the same. Nothing is written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from participants.approval_keys import fingerprint
from sandbox.report_record import canonical_spec_bytes, sha256_file
from sandbox.report_signature import signature_problem, stored_public_key
from sandbox.run_evidence_checks import Entry, cross_reference_problem, ledger_problem, metrics_problem, read_entries
from sandbox.site_chains import SITE_REPLY
from trialcore import layout
from trialcore.audit_entry import ChainHead
from trialcore.audit_verify import verify_chain
from trialcore.errors import SandboxError
from trialcore.spec import TrialSpec
from trialcore.yaml_file import read_yaml_mapping


@dataclass(frozen=True)
class Check:
    """One check of a run folder: its name, whether it held, and one line saying what was found."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.name}: {self.detail}"

    def as_json(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail}


def verify_run(
    run_dir: Path, *, coordinator_key: Ed25519PublicKey | None = None, site_chains: Mapping[str, Path] | None = None
) -> list[Check]:
    """Every check of :mod:`sandbox.run_verify` on ``run_dir``, in order; the run verifies if all are ok."""
    checks: list[Check] = []
    if not (run_dir / layout.REPORT_FILE).exists() and (run_dir / layout.AUDIT_FILE).is_file():
        detail = (
            f"no {layout.REPORT_FILE}: the run was interrupted or is still running (sandbox status shows which); "
            f"check its chain alone with: sandbox audit verify {run_dir / layout.AUDIT_FILE}"
        )
        return [Check("report", False, detail)]
    try:
        report = json.loads((run_dir / layout.REPORT_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        return [Check("report", False, f"{layout.REPORT_FILE} cannot be read as JSON ({err})")]
    if not isinstance(report, dict) or not isinstance(report.get("audit"), dict):
        return [Check("report", False, f"{layout.REPORT_FILE} is not a report written by sandbox run")]
    checks.append(
        Check(
            "report", True, f"trial {report.get('trial_id')}, run {report.get('run_id')}, state {report.get('state')}"
        )
    )
    checks.append(_signature(run_dir, report, coordinator_key))
    checks.append(_spec(run_dir, report))
    coordinator = _chain(run_dir / layout.AUDIT_FILE, "chain coordinator", report["audit"].get("coordinator"), report)
    checks.append(coordinator[0])
    sites: dict[str, tuple[list[Entry], Path]] = {}
    for site_id, record in sorted((report["audit"].get("sites") or {}).items()):
        located = _site_chain(run_dir, site_id, record, site_chains or {})
        if isinstance(located, Check):
            checks.append(located)
            continue
        check, entries = _chain(located, f"chain site {site_id}", record, report)
        checks.append(check)
        if check.ok:
            sites[site_id] = (entries, located)
    checks.append(_model(run_dir, report))
    if coordinator[0].ok:
        for site_id, (entries, _) in sites.items():
            problem = cross_reference_problem(coordinator[1], site_id, entries)
            checks.append(
                Check(
                    f"cross-references {site_id}",
                    problem is None,
                    problem or "every round names the other side's entries",
                )
            )
    for site_id, (entries, chain) in sites.items():
        state_folder = chain.parent if chain.parent.name != report.get("trial_id") else chain.parent.parent
        problem, count = ledger_problem(state_folder, entries)
        checks.append(
            Check(
                f"ledger {site_id}",
                problem is None,
                problem or f"{count} charge(s) named by the chain are in the intact ledger",
            )
        )
    problem = metrics_problem(run_dir / layout.METRICS_FILE, report)
    checks.append(Check("metrics", problem is None, problem or f"{layout.METRICS_FILE} agrees with the report"))
    return checks


def _signature(run_dir: Path, report: dict[str, Any], pinned: Ed25519PublicKey | None) -> Check:
    key = pinned if pinned is not None else stored_public_key(run_dir)
    if isinstance(key, str):
        return Check("signature", False, f"no public key to check it with: {key}")
    problem = signature_problem(run_dir, report, key)
    if problem is not None:
        return Check("signature", False, problem)
    who = (
        f"by the given coordinator key {fingerprint(key)[:16]}..."
        if pinned is not None
        else f"by the key stored in the run folder {fingerprint(key)[:16]}... (signer not pinned: give --coordinator-key)"
    )
    return Check("signature", True, f"report.json signed {who}")


def _spec(run_dir: Path, report: dict[str, Any]) -> Check:
    record = report.get("spec")
    if not isinstance(record, dict):
        return Check("spec", False, "the report names no spec copy")
    path = run_dir / str(record.get("file"))
    if not path.is_file():
        return Check("spec", False, f"{record.get('file')} is missing")
    if sha256_file(path) != record.get("file_sha256"):
        return Check("spec", False, f"{record.get('file')} does not have the SHA-256 the report names")
    try:
        spec = TrialSpec.model_validate(read_yaml_mapping(path, what="trial spec"))
    except (SandboxError, ValidationError) as err:
        return Check("spec", False, f"{record.get('file')} is no valid trial spec ({str(err).splitlines()[0]})")
    canonical = canonical_spec_bytes(spec)
    digest = hashlib.sha256(canonical).hexdigest()
    if digest != report.get("spec_hash") or digest != record.get("hash"):
        return Check("spec", False, f"{record.get('file')} hashes to {digest[:16]}..., not the report's spec hash")
    stored = run_dir / str(record.get("canonical_file"))
    if not stored.is_file() or stored.read_bytes() != canonical:
        return Check("spec", False, f"{record.get('canonical_file')} is not the canonical JSON of {record.get('file')}")
    return Check("spec", True, f"{record.get('file')} gives spec hash {digest}")


def _site_chain(run_dir: Path, site_id: str, record: Any, given: Mapping[str, Path]) -> Path | Check:
    name = f"chain site {site_id}"
    if not isinstance(record, dict):
        return Check(name, False, "the report's record of this chain is malformed")
    if site_id in given:
        place = given[site_id]
        return place / str(record.get("kept_by_site", layout.AUDIT_FILE)) if place.is_dir() else place
    if "path" in record:
        return run_dir / str(record["path"])
    return Check(
        name,
        False,
        f"kept by the site in its state folder ({record.get('kept_by_site')}); give --site-chains {site_id}=FOLDER",
    )


def _chain(path: Path, name: str, record: Any, report: dict[str, Any]) -> tuple[Check, list[Entry]]:
    if (
        not isinstance(record, dict)
        or not isinstance(record.get("hash"), str)
        or not isinstance(record.get("length"), int)
    ):
        return Check(name, False, "the report records no head for this chain"), []
    head = ChainHead(record["hash"], record["length"])
    try:
        result = verify_chain(path, expected_head=head)
    except SandboxError as err:
        return Check(name, False, "; ".join(err.lines())), []
    note = ""
    if not result.ok:
        unanchored = record.get("head_source") == SITE_REPLY and result.intact_through_line == head.length
        if not (unanchored and str(result.reason).startswith("appended")):
            return Check(name, False, result.message()), []
        note = f"; {result.length - head.length} later entries (after the site's last reply) are not anchored by the report"
    entries = read_entries(path)
    strays = [
        e["seq"]
        for e in entries
        if e["trial_id"] != report.get("trial_id") or e["spec_hash"] != report.get("spec_hash")
    ]
    if strays:
        return Check(name, False, f"entry {strays[0]} belongs to another trial or spec"), []
    return Check(name, True, f"intact, {len(entries)} entries, head {head.hash[:16]}... as recorded{note}"), entries


def _model(run_dir: Path, report: dict[str, Any]) -> Check:
    record = report.get("model_file")
    if record is None:
        return Check("model", True, "no model was saved (no round aggregated)")
    path = run_dir / str(record.get("path"))
    if not path.is_file():
        return Check("model", False, f"{record.get('path')} is missing")
    digest = sha256_file(path)
    if digest != record.get("sha256"):
        return Check(
            "model",
            False,
            f"{record.get('path')} hashes to {digest[:16]}..., not the report's {str(record.get('sha256'))[:16]}...",
        )
    return Check("model", True, f"{record.get('path')} has SHA-256 {digest}")
