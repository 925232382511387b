"""A regulator's control request, signed: what is signed, and how the coordinator and the CLI check it.

A request line in ``RUN_DIR/control.jsonl`` carries ``action``, ``reason``, ``requested_at`` and
``run_id`` (the run folder's name, so a request cannot be replayed against another run), and,
when signed, ``key`` (the signer's raw Ed25519 public key, base64) and ``signature`` (base64
Ed25519 over the canonical JSON of the first four fields, RFC 8032). The coordinator honours a
request only if the key is one its sandbox plan names as the regulator's
(:mod:`sandbox.sandbox_plan`) and the signature verifies; any other request is refused and
audited (``control-refused``) with one of :data:`UNSIGNED`, :data:`NOT_REGULATOR`,
:data:`BAD_SIGNATURE`, :data:`WRONG_RUN`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection, Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from participants.approval_keys import fingerprint
from trialcore.canonical_json import canonical_json

__all__ = ["BAD_SIGNATURE", "NOT_REGULATOR", "UNSIGNED", "WRONG_RUN", "check_signature", "sign_request"]

UNSIGNED = "unsigned"
NOT_REGULATOR = "not-the-regulator"
BAD_SIGNATURE = "bad-signature"
WRONG_RUN = "wrong-run"
SIGNED_FIELDS = ("action", "reason", "requested_at", "run_id")


def signed_bytes(item: Mapping[str, Any]) -> bytes:
    """The bytes a request's signature covers: canonical JSON of :data:`SIGNED_FIELDS`."""
    return canonical_json({name: item.get(name) for name in SIGNED_FIELDS})


def sign_request(item: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """``item`` with ``key`` and ``signature`` added."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {
        **item,
        "key": base64.b64encode(raw).decode("ascii"),
        "signature": base64.b64encode(key.sign(signed_bytes(item))).decode("ascii"),
    }


def check_signature(item: Mapping[str, Any], regulator: Collection[str], run_id: str) -> str | None:
    """None if ``item`` is signed for run ``run_id`` by a key whose fingerprint is in ``regulator``; else why not."""
    key_text, signature_text = item.get("key"), item.get("signature")
    if not isinstance(key_text, str) or not isinstance(signature_text, str):
        return UNSIGNED
    if item.get("run_id") != run_id:
        return WRONG_RUN
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(key_text, validate=True))
        signature = base64.b64decode(signature_text, validate=True)
    except (ValueError, binascii.Error):
        return BAD_SIGNATURE
    if fingerprint(key) not in regulator:
        return NOT_REGULATOR
    try:
        key.verify(signature, signed_bytes(item))
    except InvalidSignature:
        return BAD_SIGNATURE
    return None


def signer_fingerprint(item: Mapping[str, Any]) -> str | None:
    """The fingerprint of the key a request names (None if it names none or a malformed one)."""
    try:
        return fingerprint(Ed25519PublicKey.from_public_bytes(base64.b64decode(str(item["key"]), validate=True)))
    except (KeyError, ValueError, binascii.Error):
        return None
