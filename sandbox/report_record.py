"""The parts of report.json that make it a complete record for an exit report or a DPIA reviewer.

An exit report to the authority (AI Act Art. 57(7)) and a DPIA reviewer (GDPR Art. 35) ask what
was run, by whom, where, under which legal bases and transfer mechanisms, with which privacy
settings and approvals. :func:`trial_record` gathers those from the resolved trial (spec, each
site's node config and composed policy), the pre-flight and the signed approvals, once, before
round 1; :func:`copy_spec` leaves the spec in the run folder; :func:`model_file_record` names the
final model by its SHA-256.

Invariants
----------
- Every path in the record is relative to the run folder (or names only a file, for files that
  live elsewhere), so a copy of the folder moved elsewhere reads the same.
- A spec field that does not apply is omitted, never shown with its default: no
  ``hidden_units`` for a logistic regression, no DP-SGD settings without DP-SGD.
- ``spec.yaml`` is the spec file byte for byte (its SHA-256 is ``spec.file_sha256``);
  ``spec.canonical.json`` is the canonical JSON of the validated spec, whose SHA-256 is the spec
  hash every audit entry and approval carries.
"""

from __future__ import annotations

import hashlib
import platform
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from participants.approvals import ApprovalStatus, site_policy_hash
from policies import PreflightResult
from sandbox.resolved_trial import ResolvedTrial
from trialcore import layout
from trialcore.atomic_file import write_bytes_atomic
from trialcore.canonical_json import canonical_json
from trialcore.errors import SandboxError
from trialcore.spec import TrialSpec
from trialcore.spec_loading import LoadedSpec

SOFTWARE = ("flwr", "torch", "opacus", "numpy", "pydantic", "cryptography", "prometheus-client", "matplotlib")
"""Distributions whose versions the report records, beside Python's and the sandbox's own."""

SECURE_AGGREGATION = {
    "used": False,
    "why_not": "Flower's secure aggregation (SecAgg+) exists only on its legacy workflow, not with the Message-API "
    "strategies this sandbox governs; each site's update is protected by record-level DP-SGD at the site instead.",
}

SPEC_HASH_RECIPE = (
    "spec.canonical.json is the validated spec as canonical JSON (keys sorted, separators ',' and ':', no "
    "whitespace, UTF-8, defaults filled in); its SHA-256 is spec.hash: `sha256sum spec.canonical.json`. "
    "`sandbox audit verify RUN_DIR` also validates spec.yaml again and checks that it gives the same canonical JSON."
)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def copy_spec(loaded: LoadedSpec, run_dir: Path) -> dict[str, Any]:
    """Write ``spec.yaml`` (the file as given) and ``spec.canonical.json`` into ``run_dir``; return ``spec``.

    The returned record names both files (relative), the spec file's own SHA-256, the spec hash
    and how to recompute it.
    """
    given = loaded.path.read_bytes()
    write_bytes_atomic(run_dir / layout.SPEC_COPY_FILE, given)
    write_bytes_atomic(run_dir / layout.CANONICAL_SPEC_FILE, canonical_spec_bytes(loaded.spec))
    return {
        "file": layout.SPEC_COPY_FILE,
        "file_sha256": hashlib.sha256(given).hexdigest(),
        "given_as": loaded.path.name,
        "canonical_file": layout.CANONICAL_SPEC_FILE,
        "hash": loaded.spec_hash,
        "how_to_recompute_hash": SPEC_HASH_RECIPE,
    }


def canonical_spec_bytes(spec: TrialSpec) -> bytes:
    """The canonical JSON of a validated spec: the bytes the spec hash is the SHA-256 of."""
    return canonical_json(spec.model_dump(mode="json"))


def model_record(spec: TrialSpec) -> dict[str, Any]:
    """The model section: only the fields that apply to the chosen architecture."""
    model = spec.model.model_dump(mode="json")
    if spec.model.name != "mlp":
        model.pop("hidden_units", None)
    return model


def privacy_settings(spec: TrialSpec) -> dict[str, Any]:
    """The privacy settings of the spec; DP-SGD's noise and clipping only when DP-SGD is asked for."""
    return {key: value for key, value in spec.privacy.model_dump(mode="json").items() if value is not None}


def software_versions() -> dict[str, str]:
    """Python's, the sandbox's and each recorded library's version (``not installed`` when absent)."""
    versions = {"python": platform.python_version(), "platform": sys.platform}
    for name in ("regulatory-sandbox", *SOFTWARE):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def model_file_record(run_dir: Path) -> dict[str, Any] | None:
    """``{"path": "model.pt", "sha256": ...}`` of the final model; None when no model was saved."""
    path = run_dir / layout.MODEL_FILE
    if not path.is_file():
        return None
    return {"path": layout.MODEL_FILE, "sha256": sha256_file(path)}


def trial_record(
    trial: ResolvedTrial, verdict: PreflightResult | None, statuses: Sequence[ApprovalStatus] | None
) -> dict[str, Any]:
    """Everything an exit report names about the trial before it runs.

    Returns the report's ``plan`` (risk tier, data categories, purpose, aggregator jurisdiction,
    ethics reference, sandbox plan id), ``training`` (rounds, minimum participants, local
    training, privacy, secure aggregation), ``software`` and ``sites_extra`` (site id → its
    institution, legal bases, transfer mechanism, policy hash, pre-flight decisions and approval).
    """
    spec = trial.spec
    plan: dict[str, Any] = {
        "purpose": spec.purpose,
        "ai_risk_tier": spec.ai_risk_tier,
        "data_categories": list(spec.data_categories),
        "aggregator_jurisdiction": spec.aggregator.jurisdiction,
        "ethics_board_ref": spec.approvals.ethics_board_ref,
        "sandbox_plan_id": spec.approvals.sandbox_plan_id,
    }
    training = {
        "rounds": spec.rounds,
        "min_participants": spec.min_participants,
        "local_training": spec.local_training.model_dump(mode="json"),
        "privacy": privacy_settings(spec),
        "strategy": spec.strategy.model_dump(mode="json"),
        "secure_aggregation": SECURE_AGGREGATION,
        "seed": spec.seed,
    }
    approvals = {status.site_id: status for status in statuses or ()}
    sites = {site_id: _site_record(trial, site_id, verdict, approvals.get(site_id)) for site_id in trial.spec.site_ids}
    return {
        "plan": {key: value for key, value in plan.items() if value is not None},
        "training": training,
        "software": software_versions(),
        "sites_extra": sites,
    }


def _site_record(
    trial: ResolvedTrial, site_id: str, verdict: PreflightResult | None, status: ApprovalStatus | None
) -> dict[str, Any]:
    site = trial.sites[site_id]
    policy = trial.policies.get(site_id)
    aggregator = trial.spec.aggregator.jurisdiction
    record: dict[str, Any] = {"institution": site.config.institution, "simulated": site.config.simulated}
    if policy is not None:
        record["legal_bases"] = {
            category: policy.special_category_legal_basis[category]
            for category in trial.spec.data_categories
            if category in policy.special_category_legal_basis
        }
        record["transfer_mechanism"] = (
            "none needed (same jurisdiction)"
            if aggregator == site.config.jurisdiction
            else policy.transfer_mechanisms.get(aggregator, "none")
        )
        record["policy"] = policy.name
    try:
        record["policy_hash"] = site_policy_hash(site)
    except (SandboxError, OSError, ValueError):
        record["policy_hash"] = None
    if verdict is not None:
        record["preflight"] = [_decision(d) for d in verdict.as_json()["decisions"] if d["site_id"] == site_id]
    if status is not None:
        approval = status.approval
        record["approval"] = {
            "state": status.state.value,
            **({} if approval is None else approval.as_json()),
        }
    return record


def _decision(decision: Mapping[str, Any]) -> dict[str, Any]:
    """A pre-flight decision for the report: its policy file named by file name only (no local folders)."""
    source = str(decision.get("source_file") or "")
    return {
        "clause": decision["clause"],
        "permit": decision["permit"],
        "reason": decision["reason"],
        "source_file": Path(source).name if source else "",
        "value_found": decision["value_found"],
        "allowed": decision["allowed"],
    }
