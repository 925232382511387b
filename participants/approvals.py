"""Signed approvals: a site's approver signs one exact trial spec under the site's exact policy.

A research ethics committee approves one protocol, and no amendment may be made without its
approval (Declaration of Helsinki, 2013, para. 23); a sandbox or real-world test runs only under
the plan the authority approved (AI Act Art. 58(2), Art. 60(4)(b)). Here the approval is a
signature, so the site (and the coordinator) can check it mechanically, offline.

An approval is a JSON document (schema ``sandbox-approval/1``), written atomically as
``<approvals_dir>/<trial-id>/<site-id>.json``, where ``approvals_dir`` comes from the site's own
node config::

    {"schema": "sandbox-approval/1", "trial_id": "...", "site_id": "...",
     "spec_hash": "<hex sha-256 of the trial spec>", "policy_hash": "<hex, see below>",
     "approved_at": "2026-11-25T10:15:00+00:00", "approver_key_fingerprint": "<hex>",
     "signature": "<base64 Ed25519 signature (RFC 8032)>"}

``signature`` covers the canonical JSON (sorted keys, no whitespace, UTF-8) of every other
field. ``spec_hash`` is :func:`trialcore.spec_loading.spec_hash` (the hash every message carries).

**Policy hash.** Not a hash of the *composed* policy: relative dates (``today+365d``) resolve
against the day of loading, so that would change every day and approvals would expire daily.
It is the SHA-256 over the canonical JSON of the SHA-256 of each file of the site's policy
chain, root (the preset) first, as :func:`policies.load_layers` follows ``extends``, plus the
shipped vocabulary (which adds the redlines to every policy). It names exactly the policy text
the site approved under and does not depend on where the files lie; any edit to any layer,
comments included, asks for a new approval.

No Flower here: the ``sandbox`` CLI and the site's guard both build on this module.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from participants.approval_keys import fingerprint, load_trusted_keys
from participants.site_config import LoadedSiteConfig
from policies.loader import load_layers
from policies.presets import preset_file, preset_names, preset_source
from trialcore.atomic_file import write_json_atomic
from trialcore.canonical_json import canonical_json

__all__ = [
    "APPROVAL_SCHEMA",
    "Approval",
    "ApprovalState",
    "ApprovalStatus",
    "approval_path",
    "check_site_approval",
    "policy_hash",
    "read_approval",
    "sign_approval",
    "site_policy_hash",
    "write_approval",
]

APPROVAL_SCHEMA = "sandbox-approval/1"
POLICY_HASH_SCHEMA = "sandbox-policy-hash/1"
_HEX64 = r"^[0-9a-f]{64}$"


class Approval(BaseModel):
    """One signed approval, as read from or written to its JSON file (unknown keys are refused)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, populate_by_name=True)

    schema_id: str = Field(alias="schema", pattern=f"^{APPROVAL_SCHEMA}$")
    trial_id: str = Field(min_length=1)
    site_id: str = Field(min_length=1)
    spec_hash: str = Field(pattern=_HEX64)
    policy_hash: str = Field(pattern=_HEX64)
    approved_at: str = Field(min_length=1, description="ISO 8601 UTC time of signing (kept as signed).")
    approver_key_fingerprint: str = Field(pattern=_HEX64)
    signature: str = Field(min_length=1, description="Base64 Ed25519 signature over signed_bytes().")

    def signed_bytes(self) -> bytes:
        """The canonical JSON of every field but the signature: what the approver signs."""
        return canonical_json(self.model_dump(by_alias=True, exclude={"signature"}))

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)


def approval_path(approvals_dir: Path, trial_id: str, site_id: str) -> Path:
    """Where a site's approval of a trial lives: ``<approvals_dir>/<trial-id>/<site-id>.json``."""
    return approvals_dir / trial_id / f"{site_id}.json"


def sign_approval(
    *, trial_id: str, site_id: str, spec_hash: str, policy_hash: str, key: Ed25519PrivateKey, approved_at: datetime
) -> Approval:
    """Sign an approval of the spec with hash ``spec_hash`` at ``site_id`` under the policy with ``policy_hash``."""
    unsigned = Approval(
        schema=APPROVAL_SCHEMA,
        trial_id=trial_id,
        site_id=site_id,
        spec_hash=spec_hash,
        policy_hash=policy_hash,
        approved_at=approved_at.isoformat(timespec="seconds"),
        approver_key_fingerprint=fingerprint(key.public_key()),
        signature="-",
    )
    signature = base64.b64encode(key.sign(unsigned.signed_bytes())).decode("ascii")
    return unsigned.model_copy(update={"signature": signature})


def write_approval(path: Path, approval: Approval) -> None:
    """Write ``approval`` atomically (a reader sees the old approval or the new one, never half)."""
    write_json_atomic(path, approval.as_json())


def read_approval(path: Path) -> Approval:
    """Parse an approval file; raises ``ValueError`` naming what is malformed (the caller decides how to report it)."""
    try:
        document = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"not JSON ({err})") from err
    try:
        return Approval.model_validate(document)
    except ValidationError as err:
        fields = ", ".join(".".join(map(str, e["loc"])) or "(document)" for e in err.errors(include_url=False))
        raise ValueError(f"not a {APPROVAL_SCHEMA} document (bad or missing: {fields})") from err


# -- policy hash --------------------------------------------------------------------------------

_chains: dict[str, tuple[tuple[tuple[str, int, int], ...], tuple[tuple[str, str], ...]]] = {}
"""Policy file → (stamps of its chain's files, chain as (kind, path-or-preset) root first); per process."""


def _stamp(path: str) -> tuple[str, int, int]:
    stat = os.stat(path)
    return path, stat.st_mtime_ns, stat.st_size


def _chain(policy_file: Path) -> tuple[tuple[str, str], ...]:
    """The files of a policy's ``extends`` chain, root first; re-read only when one of them changed."""
    key = os.path.realpath(policy_file)
    cached = _chains.get(key)
    try:
        if cached is not None and all(_stamp(stamp[0]) == stamp for stamp in cached[0]):
            return cached[1]
    except OSError:
        pass  # a file of the cached chain is gone: load the chain afresh (which reports it)
    presets = {preset_source(name): name for name in preset_names()}
    # The chain starts at an absolute path, so file layers are absolute; presets are named as preset_source gives.
    chain = tuple(
        ("preset", presets[layer.source]) if layer.source in presets else ("file", layer.source)
        for layer in load_layers(key)
    )
    _chains[key] = (tuple(_stamp(path) for kind, path in chain if kind == "file"), chain)
    return chain


def policy_hash(policy_file: Path) -> str:
    """Hex hash of a site's policy text: its chain of files root first, and the shipped vocabulary.

    Raises
    ------
    PolicyFileError
        When the chain cannot be read (the same problems :func:`policies.load_policy` reports).
    """
    digests = []
    for kind, name in _chain(policy_file):
        entry = preset_file(name) if kind == "preset" else Path(name)
        if entry is None:
            raise ValueError(f"preset {name!r} vanished while hashing")  # a packaging bug, not user input
        digests.append(hashlib.sha256(entry.read_bytes()).hexdigest())
    vocabulary = hashlib.sha256(resources.files("policies").joinpath("vocabulary.yaml").read_bytes()).hexdigest()
    document = {"schema": POLICY_HASH_SCHEMA, "layers": digests, "vocabulary": vocabulary}
    return hashlib.sha256(canonical_json(document)).hexdigest()


def site_policy_hash(site: LoadedSiteConfig) -> str | None:
    """The policy hash of the site's own policy (``policy:`` of its node config); None without one."""
    return policy_hash(site.resolve(site.config.policy)) if site.config.policy else None


# -- checking -----------------------------------------------------------------------------------


class ApprovalState(enum.StrEnum):
    """What a site's approval of a trial amounts to."""

    APPROVED = "approved"
    NOT_REQUIRED = "not-required"
    """The site sets no ``trusted_keys``: it requires no signed approval."""
    NO_TRUSTED_KEYS = "no-trusted-keys"
    MISSING = "missing"
    POLICY_CHANGED = "policy-changed"
    INVALID = "invalid"
    UNTRUSTED_KEY = "untrusted-key"
    BAD_SIGNATURE = "bad-signature"
    SPEC_MISMATCH = "spec-mismatch"


_INTEGRITY = frozenset(
    {ApprovalState.INVALID, ApprovalState.UNTRUSTED_KEY, ApprovalState.BAD_SIGNATURE, ApprovalState.SPEC_MISMATCH}
)


@dataclass(frozen=True)
class ApprovalStatus:
    """One site's approval of one trial spec, checked against the site's trusted keys and current policy.

    ``path`` is the file the verdict is about: the approval (or where it should be), or the
    trusted-keys file when that is missing; ``None`` for a site that requires no approval.
    """

    site_id: str
    state: ApprovalState
    reason: str
    path: Path | None = None
    approval: Approval | None = None

    @property
    def ok(self) -> bool:
        """The site may serve the trial as far as approvals go."""
        return self.state in (ApprovalState.APPROVED, ApprovalState.NOT_REQUIRED)

    @property
    def integrity_failure(self) -> bool:
        """The approval exists but is malformed, tampered, untrusted or for another spec (exit 5)."""
        return self.state in _INTEGRITY


def check_site_approval(site: LoadedSiteConfig, *, trial_id: str, spec_hash: str) -> ApprovalStatus:
    """Check the site's approval of the trial ``trial_id`` whose spec hashes to ``spec_hash``.

    The approval must sit at :func:`approval_path` in the site's ``approvals_dir``, be signed by a
    key in the site's ``trusted_keys``, name this trial and site, cover ``spec_hash`` and the
    site's current policy hash. A site without ``trusted_keys`` gets ``NOT_REQUIRED``.

    Raises
    ------
    KeyFileError
        When the trusted-keys file holds something other than Ed25519 public keys.
    PolicyFileError
        When the site's policy chain cannot be read.
    """
    config = site.config
    status = _Status(config.site_id)
    if not config.trusted_keys or not config.approvals_dir:
        return status(
            ApprovalState.NOT_REQUIRED,
            "the site sets no trusted_keys in its node config, so it requires no signed approval",
        )
    keys_path = site.resolve(config.trusted_keys)
    if not _is_file(keys_path):
        return status(
            ApprovalState.NO_TRUSTED_KEYS, "the site trusts no approval key yet (no trusted-keys file)", keys_path
        )
    trusted = load_trusted_keys(keys_path)
    if not trusted:
        return status(ApprovalState.NO_TRUSTED_KEYS, "the site's trusted-keys file holds no key", keys_path)
    path = approval_path(site.resolve(config.approvals_dir), trial_id, config.site_id)
    if not _is_file(path):
        return status(
            ApprovalState.MISSING,
            f"no signed approval of trial {trial_id!r} by site {config.site_id} (sandbox approve)",
            path,
        )
    try:
        approval = read_approval(path)
    except (OSError, ValueError) as err:
        return status(ApprovalState.INVALID, f"the approval file is malformed: {err}", path)
    key = trusted.get(approval.approver_key_fingerprint)
    if key is None:
        reason = (
            f"the approval is signed by key {approval.approver_key_fingerprint[:16]}..., which the site does not trust"
        )
        return status(ApprovalState.UNTRUSTED_KEY, reason, path, approval)
    try:
        key.verify(base64.b64decode(approval.signature, validate=True), approval.signed_bytes())
    except (InvalidSignature, binascii.Error, ValueError):
        return status(
            ApprovalState.BAD_SIGNATURE,
            "the approval's signature does not verify: the file was altered after signing",
            path,
            approval,
        )
    if (approval.trial_id, approval.site_id) != (trial_id, config.site_id):
        reason = f"the approval is for trial {approval.trial_id!r} at site {approval.site_id}, not {trial_id!r} at {config.site_id}"
        return status(ApprovalState.INVALID, reason, path, approval)
    if approval.spec_hash != spec_hash:
        reason = (
            f"the approval covers spec hash {approval.spec_hash[:12]}..., not this spec's {spec_hash[:12]}...: "
            "the spec was edited after approval; the site must approve it again"
        )
        return status(ApprovalState.SPEC_MISMATCH, reason, path, approval)
    if approval.policy_hash != site_policy_hash(site):
        reason = (
            "the site's policy files changed since this approval; the site must approve again under its current policy"
        )
        return status(ApprovalState.POLICY_CHANGED, reason, path, approval)
    return status(
        ApprovalState.APPROVED,
        f"signed approval of this spec under the site's current policy, key {approval.approver_key_fingerprint[:16]}...",
        path,
        approval,
    )


@dataclass(frozen=True)
class _Status:
    site_id: str

    def __call__(
        self, state: ApprovalState, reason: str, path: Path | None = None, approval: Approval | None = None
    ) -> ApprovalStatus:
        return ApprovalStatus(self.site_id, state, reason, path, approval)


def _is_file(path: Path) -> bool:
    """``path.is_file()``, but a path the system cannot even look up (too long, ...) is no file."""
    try:
        return path.is_file()
    except OSError:
        return False
