"""A small certificate authority for the SuperLink's TLS: a CA and a server certificate for given hosts.

For tests and small pilots only; an institution that runs its own PKI gives the SuperLink a
certificate from it instead (README, "Run a real pilot"). What is made:

- ``ca.key`` / ``ca.pem``: an ECDSA P-384 CA, self-signed, ``BasicConstraints(ca=True, path_length=0)``;
- ``server.key`` / ``server.pem``: an ECDSA P-384 server certificate signed by that CA, with one
  Subject Alternative Name per host (a DNS name) or IP address given, ``ExtendedKeyUsage=serverAuth``.

Every SuperNode is given ``ca.pem`` (``--root-certificates``) and verifies the SuperLink against it
(RFC 5280 path validation by gRPC). Private keys are unencrypted PKCS#8 PEM, 0600; certificates
0644. Existing files are never overwritten.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from trialcore.atomic_file import write_bytes_atomic
from trialcore.errors import BadInputError, Problem, show_value

__all__ = ["CaFiles", "ServerFiles", "load_ca", "new_ca", "new_server_certificate"]

_HOST = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


@dataclass(frozen=True)
class CaFiles:
    """Where a CA's key and certificate are."""

    key: Path
    certificate: Path


@dataclass(frozen=True)
class ServerFiles:
    """Where a server's key and certificate are, and the names it is valid for."""

    key: Path
    certificate: Path
    names: tuple[str, ...]


def _refuse_existing(*paths: Path) -> None:
    existing = [path for path in paths if path.exists()]
    if existing:
        raise BadInputError(
            "Certificate files already exist",
            [
                Problem(str(p), "", "an existing file", "another --out folder, or remove the old files first")
                for p in existing
            ],
        )


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def new_ca(out_dir: Path, *, common_name: str = "sandbox pilot CA", valid_days: int = 365) -> CaFiles:
    """Create ``ca.key`` (0600) and ``ca.pem`` in ``out_dir``.

    Raises
    ------
    BadInputError
        When either file exists already.
    """
    files = CaFiles(out_dir / "ca.key", out_dir / "ca.pem")
    _refuse_existing(files.key, files.certificate)
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384())
    )
    write_bytes_atomic(files.key, _private_pem(key), mode=0o600)
    write_bytes_atomic(files.certificate, certificate.public_bytes(serialization.Encoding.PEM))
    return files


def load_ca(files: CaFiles) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The CA's private key and certificate.

    Raises
    ------
    BadInputError
        A file is missing or unreadable, or is not an EC key / a CA certificate.
    """
    try:
        key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
        certificate = x509.load_pem_x509_certificate(files.certificate.read_bytes())
    except (OSError, ValueError, TypeError) as err:
        raise BadInputError(
            "Cannot read the CA",
            [Problem(str(files.key), "", str(err)[:200], "ca.key and ca.pem made by `sandbox certs ca`")],
        ) from err
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise BadInputError("Cannot read the CA", [Problem(str(files.key), "", "not an EC key", "an ECDSA CA key")])
    return key, certificate


def _subject_names(hosts: list[str]) -> tuple[list[x509.GeneralName], list[Problem]]:
    names: list[x509.GeneralName] = []
    problems: list[Problem] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
            continue
        except ValueError:
            pass
        if _HOST.match(host):
            names.append(x509.DNSName(host))
        else:
            problems.append(Problem("--host", "", show_value(host), "a DNS name or an IP address"))
    if not hosts:
        problems.append(
            Problem("--host", "", "nothing", "at least one DNS name or IP address the SuperLink is reached at")
        )
    return names, problems


def new_server_certificate(
    ca: CaFiles, out_dir: Path, hosts: list[str], *, name: str = "server", valid_days: int = 365
) -> ServerFiles:
    """Create ``<name>.key`` (0600) and ``<name>.pem`` for ``hosts``, signed by ``ca``.

    Raises
    ------
    BadInputError
        A host is neither a DNS name nor an IP address, the CA cannot be read, or a file exists.
    """
    subject_names, problems = _subject_names(hosts)
    if problems:
        raise BadInputError("Cannot make the server certificate", problems)
    files = ServerFiles(out_dir / f"{name}.key", out_dir / f"{name}.pem", tuple(hosts))
    _refuse_existing(files.key, files.certificate)
    ca_key, ca_certificate = load_ca(ca)
    key = ec.generate_private_key(ec.SECP384R1())
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=valid_days))
        .add_extension(x509.SubjectAlternativeName(subject_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA384())
    )
    write_bytes_atomic(files.key, _private_pem(key), mode=0o600)
    write_bytes_atomic(files.certificate, certificate.public_bytes(serialization.Encoding.PEM))
    return files
