"""Ed25519 keys for signed approvals: make a key pair, read a private key, read a site's trusted keys.

An approver at a site (its ethics board or data-protection officer) holds a private key; the site
lists the public keys whose approvals it accepts in one PEM file, named by ``trusted_keys:`` in
its node config (one or more ``PUBLIC KEY`` blocks). Ed25519 is RFC 8032.

A key is named by its *fingerprint*: the hex SHA-256 of its 32 raw public-key bytes.

Private keys are written as unencrypted PKCS#8 PEM with permission bits 0600 (the temp file is
0600 from creation, then renamed into place), public keys as SubjectPublicKeyInfo PEM, 0644.
Existing key files are never overwritten.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from participants.errors import KeyFileError
from trialcore.atomic_file import write_bytes_atomic
from trialcore.errors import Problem, show_value

__all__ = ["KeyPairFiles", "fingerprint", "load_private_key", "load_trusted_keys", "new_key_pair"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_PUBLIC_BLOCK = re.compile(rb"-----BEGIN PUBLIC KEY-----.*?-----END PUBLIC KEY-----", re.DOTALL)
_ANY_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")


@dataclass(frozen=True)
class KeyPairFiles:
    """Where :func:`new_key_pair` wrote a key pair, and the key's fingerprint."""

    private_key: Path
    public_key: Path
    fingerprint: str


def fingerprint(key: Ed25519PublicKey) -> str:
    """Hex SHA-256 of the key's 32 raw bytes: how approvals and messages name a key."""
    raw = key.public_bytes(encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def new_key_pair(out_dir: Path, name: str) -> KeyPairFiles:
    """Create ``<out_dir>/<name>.key.pem`` (private, 0600) and ``<name>.pub.pem`` (public, 0644).

    Raises
    ------
    KeyFileError
        For a name that is not a plain file name, or when either file already exists.
    """
    if not _NAME.match(name):
        raise KeyFileError(
            f"Bad key name {name!r}",
            [Problem("--name", "", show_value(name), "letters, digits, '.', '_' or '-' (a plain file name)")],
        )
    private_path, public_path = out_dir / f"{name}.key.pem", out_dir / f"{name}.pub.pem"
    existing = [path for path in (private_path, public_path) if path.exists()]
    if existing:
        raise KeyFileError(
            f"Key {name!r} already exists",
            [
                Problem(
                    str(path),
                    "",
                    "an existing file",
                    "a new name, or remove the old key first (keys are never overwritten)",
                )
                for path in existing
            ],
        )
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        encoding=serialization.Encoding.PEM, format=serialization.PublicFormat.SubjectPublicKeyInfo
    )
    write_bytes_atomic(private_path, private_pem, mode=0o600)
    write_bytes_atomic(public_path, public_pem, mode=0o644)
    return KeyPairFiles(private_path, public_path, fingerprint(key.public_key()))


def _read(path: Path, shown_as: str, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as err:
        raise KeyFileError(
            f"Cannot read {what} '{shown_as}'",
            [Problem(shown_as, "", "no such file", f"the path of an existing {what}")],
        ) from err
    except IsADirectoryError as err:
        raise KeyFileError(
            f"Cannot read {what} '{shown_as}'",
            [Problem(shown_as, "", "a directory", f"the path of a {what} (a PEM file)")],
        ) from err
    except OSError as err:
        raise KeyFileError(
            f"Cannot read {what} '{shown_as}'",
            [Problem(shown_as, "", f"unreadable ({err.strerror})", f"a readable {what}")],
        ) from err


def load_private_key(path: Path, *, shown_as: str | None = None) -> Ed25519PrivateKey:
    """Read an unencrypted Ed25519 private key (PKCS#8 PEM, as ``sandbox certs new-key`` writes it).

    Raises
    ------
    KeyFileError
        Missing or unreadable file, encrypted key, or a key that is not Ed25519.
    """
    shown = shown_as if shown_as is not None else str(path)
    data = _read(path, shown, "private key file")

    def fail(found: str) -> KeyFileError:
        return KeyFileError(
            f"Cannot use private key '{shown}'",
            [Problem(shown, "", found, "an unencrypted Ed25519 private key in PKCS#8 PEM (sandbox certs new-key)")],
        )

    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as err:  # the key is encrypted
        raise fail("an encrypted private key") from err
    except (ValueError, UnsupportedAlgorithm) as err:
        raise fail("no PEM private key") from err
    if not isinstance(key, Ed25519PrivateKey):
        raise fail(f"a {type(key).__name__.removeprefix('_')} key")
    return key


def load_trusted_keys(path: Path, *, shown_as: str | None = None) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 public keys of a trusted-keys PEM file, by fingerprint (empty for an empty file).

    Raises
    ------
    KeyFileError
        Missing or unreadable file, a block that is not a public key (a private key pasted by
        mistake is named, never printed), or a public key that is not Ed25519.
    """
    shown = shown_as if shown_as is not None else str(path)
    data = _read(path, shown, "trusted-keys file")
    problems: list[Problem] = []
    kinds = [match.group(1).decode("ascii") for match in _ANY_BLOCK.finditer(data)]
    for index, kind in enumerate(kinds):
        if kind != "PUBLIC KEY":
            problems.append(
                Problem(
                    shown, f"block {index + 1}", f"a {kind!r} block", "only 'PUBLIC KEY' blocks (Ed25519 public keys)"
                )
            )
    keys: dict[str, Ed25519PublicKey] = {}
    for index, block in enumerate(_PUBLIC_BLOCK.findall(data)):
        try:
            key = serialization.load_pem_public_key(block)
        except (ValueError, UnsupportedAlgorithm):
            problems.append(
                Problem(
                    shown,
                    f"public key {index + 1}",
                    "an unreadable PEM block",
                    "an Ed25519 public key in PEM (sandbox certs new-key)",
                )
            )
            continue
        if not isinstance(key, Ed25519PublicKey):
            problems.append(
                Problem(
                    shown,
                    f"public key {index + 1}",
                    f"a {type(key).__name__.removeprefix('_')} key",
                    "an Ed25519 public key",
                )
            )
            continue
        keys[fingerprint(key)] = key
    if problems:
        raise KeyFileError(f"Invalid trusted-keys file '{shown}'", problems)
    return keys
