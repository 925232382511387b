"""A site's SuperNode authentication key: an ECDSA P-384 key pair in the OpenSSH formats Flower reads.

Flower 1.42 authenticates a SuperNode by a NIST-curve EC key: ``flower-supernode
--auth-supernode-private-key`` reads an OpenSSH private key (``load_ssh_private_key``) and
``flwr supernode register`` reads the matching OpenSSH public key (``load_ssh_public_key``),
the same files ``ssh-keygen -t ecdsa -b 384`` writes. The private key never leaves the site; the
site publishes ``<site-id>.node.pub`` beside its node config in the trial's federation, and the
coordinator registers that key with its SuperLink (so only registered nodes connect) and binds
the node it gets to the site.

A key is named by its *node fingerprint*: hex SHA-256 of its SubjectPublicKeyInfo PEM, the bytes
Flower itself stores for a registered node (``flwr.supercore.primitives.asymmetric.public_key_to_bytes``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from participants.errors import KeyFileError
from trialcore.atomic_file import write_bytes_atomic
from trialcore.errors import Problem, show_value

__all__ = [
    "NodeKeyFiles",
    "load_node_private_key",
    "load_node_public_key",
    "new_node_key",
    "node_fingerprint",
    "node_key_bytes",
]


@dataclass(frozen=True)
class NodeKeyFiles:
    """Where :func:`new_node_key` wrote a key pair, and the key's node fingerprint."""

    private_key: Path
    public_key: Path
    fingerprint: str


def node_key_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    """The key as Flower stores a registered node's key (SubjectPublicKeyInfo PEM)."""
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def node_fingerprint(key: ec.EllipticCurvePublicKey) -> str:
    """Hex SHA-256 of :func:`node_key_bytes`."""
    return hashlib.sha256(node_key_bytes(key)).hexdigest()


def new_node_key(out_dir: Path, name: str) -> NodeKeyFiles:
    """Write ``<name>.node.key`` (OpenSSH private, 0600) and ``<name>.node.pub`` (OpenSSH public).

    Raises
    ------
    KeyFileError
        When either file exists already (keys are never overwritten).
    """
    private_path, public_path = out_dir / f"{name}.node.key", out_dir / f"{name}.node.pub"
    existing = [p for p in (private_path, public_path) if p.exists()]
    if existing:
        raise KeyFileError(
            f"Node key {name!r} already exists",
            [
                Problem(str(p), "", "an existing file", "a new name, or remove the old key first (never overwritten)")
                for p in existing
            ],
        )
    key = ec.generate_private_key(ec.SECP384R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    write_bytes_atomic(private_path, private, mode=0o600)
    write_bytes_atomic(public_path, public + f" {name}\n".encode())
    return NodeKeyFiles(private_path, public_path, node_fingerprint(key.public_key()))


def _nist(key: object) -> bool:
    return isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) and isinstance(
        key.curve, ec.SECP256R1 | ec.SECP384R1 | ec.SECP521R1
    )


def load_node_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    """A node's OpenSSH public key (a NIST EC curve, as Flower requires).

    Raises
    ------
    KeyFileError
        Missing, unreadable, or not an EC key on a NIST curve.
    """
    try:
        key = serialization.load_ssh_public_key(path.read_bytes())
    except (OSError, ValueError, UnsupportedAlgorithm) as err:
        raise KeyFileError(
            f"Cannot read node public key {str(path)!r}",
            [
                Problem(
                    str(path), "", show_value(str(err)[:120]), "an OpenSSH ECDSA public key (sandbox certs node-key)"
                )
            ],
        ) from err
    if not isinstance(key, ec.EllipticCurvePublicKey) or not _nist(key):
        raise KeyFileError(
            f"Not a node key: {str(path)!r}",
            [Problem(str(path), "", type(key).__name__, "an ECDSA key on a NIST curve (P-256, P-384, P-521)")],
        )
    return key


def load_node_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """A node's OpenSSH private key (a NIST EC curve).

    Raises
    ------
    KeyFileError
        Missing, unreadable, or not an EC key on a NIST curve.
    """
    try:
        key = serialization.load_ssh_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, UnsupportedAlgorithm, TypeError) as err:
        raise KeyFileError(
            f"Cannot read node private key {str(path)!r}",
            [Problem(str(path), "", show_value(str(err)[:120]), "an OpenSSH ECDSA private key, unencrypted")],
        ) from err
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not _nist(key):
        raise KeyFileError(
            f"Not a node key: {str(path)!r}",
            [Problem(str(path), "", type(key).__name__, "an ECDSA key on a NIST curve (P-256, P-384, P-521)")],
        )
    return key
