"""The coordinator's signature over report.json: who vouches for the run's record.

At every stop of a run (finished, failed, budget-exhausted, terminated) the coordinator writes
``report.json`` and, beside it, ``report.json.sig``: a detached Ed25519 signature (RFC 8032)
over the report's *canonical bytes* (:func:`trialcore.canonical_json.canonical_json` of the
parsed report: keys sorted, no whitespace, UTF-8). Those bytes include every audit chain's head
and length, the spec hash and the consent matrix, so a chain cut short, a rewritten chain whose
head was updated in the report, or any edit of the report itself breaks the signature.

The key is the coordinator's own (``sandbox certs new-key --name coordinator``), named by
``sandbox run --coordinator-key KEY`` or the run config key ``coordinator-key`` under ``flwr
run``. Without one, the run signs with a key made for it alone and thrown away: the signature
then proves only that report and signature belong together, not who made them, and the report
says so (``signer.pinned`` false). Its public key is always left in the run folder
(``coordinator.pub.pem``); a regulator pins the signer by giving the key they hold
(``sandbox audit verify RUN_DIR --coordinator-key PUB``).

``report.json.sig`` is a small JSON document (schema ``sandbox-report-signature/1``): the
algorithm, the signing key's fingerprint (hex SHA-256 of its 32 raw bytes) and the base64
signature.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from participants.approval_keys import fingerprint, load_private_key, load_trusted_keys
from trialcore import layout
from trialcore.atomic_file import write_bytes_atomic, write_json_atomic
from trialcore.canonical_json import canonical_json
from trialcore.errors import BadInputError, Problem, SandboxError

SIGNATURE_SCHEMA = "sandbox-report-signature/1"
ALGORITHM = "Ed25519"


@dataclass(frozen=True)
class CoordinatorKey:
    """The key a run signs its report with.

    Attributes
    ----------
    key:
        The Ed25519 private key.
    pinned:
        True for the operator's own key (``--coordinator-key``); False for a key made for this run only.
    """

    key: Ed25519PrivateKey
    pinned: bool

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key.public_key())

    def signer(self) -> dict[str, Any]:
        """The report's ``signer`` section (part of what is signed)."""
        return {
            "algorithm": ALGORITHM,
            "key_fingerprint": self.fingerprint,
            "public_key_file": layout.COORDINATOR_PUBLIC_KEY_FILE,
            "signature_file": layout.SIGNATURE_FILE,
            "pinned": self.pinned,
            "key": "the coordinator's own key (sandbox run --coordinator-key)"
            if self.pinned
            else "a key made for this run only and discarded: the signature binds report and signature, not a signer",
        }


def coordinator_key(path: Path | None) -> CoordinatorKey:
    """The operator's key at ``path``, or a fresh key for this run only when ``path`` is None.

    Raises
    ------
    KeyFileError
        When ``path`` is not an unencrypted Ed25519 private key (exit 2).
    """
    if path is None:
        return CoordinatorKey(Ed25519PrivateKey.generate(), pinned=False)
    return CoordinatorKey(load_private_key(path, shown_as=str(path)), pinned=True)


def report_bytes(report: Any) -> bytes:
    """What is signed: the canonical JSON of the report."""
    return canonical_json(report)


def write_signed_report(run_dir: Path, report: dict[str, Any], signer: CoordinatorKey) -> None:
    """Write ``coordinator.pub.pem``, then ``report.json``, then ``report.json.sig`` (each atomically)."""
    public = signer.key.public_key().public_bytes(
        encoding=serialization.Encoding.PEM, format=serialization.PublicFormat.SubjectPublicKeyInfo
    )
    write_bytes_atomic(run_dir / layout.COORDINATOR_PUBLIC_KEY_FILE, public)
    write_json_atomic(run_dir / layout.REPORT_FILE, report)
    signature = signer.key.sign(report_bytes(report))
    write_json_atomic(
        run_dir / layout.SIGNATURE_FILE,
        {
            "schema": SIGNATURE_SCHEMA,
            "algorithm": ALGORITHM,
            "signed": "canonical JSON of report.json (keys sorted, no whitespace, UTF-8)",
            "key_fingerprint": signer.fingerprint,
            "signature": base64.b64encode(signature).decode("ascii"),
        },
    )


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The one Ed25519 public key of a PEM file (a trusted-keys file with one key).

    Raises
    ------
    BadInputError
        When the file holds no key or more than one (exit 2).
    """
    keys = load_trusted_keys(path, shown_as=str(path))
    if len(keys) != 1:
        raise BadInputError(
            f"Cannot use public key '{path}'",
            [Problem(str(path), "", f"{len(keys)} public keys", "exactly one Ed25519 public key (PEM)")],
        )
    return next(iter(keys.values()))


def signature_problem(run_dir: Path, report: Any, key: Ed25519PublicKey) -> str | None:
    """Why ``report.json.sig`` does not prove ``report`` was signed by ``key``; None when it does."""
    path = run_dir / layout.SIGNATURE_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"{layout.SIGNATURE_FILE} is missing"
    except (OSError, UnicodeDecodeError, ValueError):
        return f"{layout.SIGNATURE_FILE} is not a readable JSON document"
    if not isinstance(document, dict) or document.get("schema") != SIGNATURE_SCHEMA:
        return f"{layout.SIGNATURE_FILE} is not a {SIGNATURE_SCHEMA} document"
    if document.get("key_fingerprint") != fingerprint(key):
        return f"signed by key {str(document.get('key_fingerprint'))[:16]}..., not by the expected key {fingerprint(key)[:16]}..."
    try:
        signature = base64.b64decode(str(document.get("signature", "")), validate=True)
        key.verify(signature, report_bytes(report))
    except (binascii.Error, InvalidSignature, ValueError):
        return "the signature does not match report.json's canonical bytes (the report was edited after signing)"
    return None


def stored_public_key(run_dir: Path) -> Ed25519PublicKey | str:
    """The public key left in the run folder, or why it cannot be read."""
    try:
        return load_public_key(run_dir / layout.COORDINATOR_PUBLIC_KEY_FILE)
    except SandboxError as err:
        return "; ".join(err.lines())
