"""sandbox certs ca|server|node-key make TLS and node-authentication material that Flower and X.509 accept."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from participants.node_keys import load_node_private_key, load_node_public_key, node_fingerprint, node_key_bytes

SANDBOX = Path(sys.executable).parent / "sandbox"


def sandbox(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SANDBOX), *args], capture_output=True, text=True, timeout=60)


def test_server_certificate_chains_to_the_ca_for_each_host(tmp_path: Path) -> None:
    """The server certificate verifies against ca.pem for the DNS name and the IP it was made for, and for nothing else."""
    assert sandbox("certs", "ca", "--out", str(tmp_path)).returncode == 0
    made = sandbox(
        "certs", "server", "--ca", str(tmp_path), "--out", str(tmp_path), "--host", "superlink.example.org",
        "--host", "127.0.0.1", "--format", "json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["hosts"] == ["superlink.example.org", "127.0.0.1"]
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    leaf = x509.load_pem_x509_certificate((tmp_path / "server.pem").read_bytes())
    store = Store([ca])
    for name in (
        x509.DNSName("superlink.example.org"),
        x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1")),
    ):
        verifier = PolicyBuilder().store(store).build_server_verifier(name)
        assert verifier.verify(leaf, [])[-1] == ca
    other = PolicyBuilder().store(store).build_server_verifier(x509.DNSName("evil.example.org"))
    with pytest.raises(VerificationError):
        other.verify(leaf, [])
    for key in ("ca.key", "server.key"):
        assert (tmp_path / key).stat().st_mode & 0o777 == 0o600


def test_certs_never_overwrite_and_reject_bad_hosts(tmp_path: Path) -> None:
    """A second CA in the same folder, or a host that is no DNS name or IP, is bad input (exit 2); files stay."""
    assert sandbox("certs", "ca", "--out", str(tmp_path)).returncode == 0
    before = (tmp_path / "ca.pem").read_bytes()
    again = sandbox("certs", "ca", "--out", str(tmp_path))
    assert again.returncode == 2 and "already exist" in again.stderr
    assert (tmp_path / "ca.pem").read_bytes() == before
    bad = sandbox("certs", "server", "--ca", str(tmp_path), "--out", str(tmp_path), "--host", "no such/host")
    assert bad.returncode == 2 and "DNS name or an IP address" in bad.stderr
    assert not (tmp_path / "server.pem").exists()


def test_node_key_is_the_openssh_p384_pair_flower_reads(tmp_path: Path) -> None:
    """node-key writes an OpenSSH ECDSA P-384 pair (private 0600): what flower-supernode and flwr supernode register read."""
    made = sandbox("certs", "node-key", "--out", str(tmp_path), "--name", "de-berlin", "--format", "json")
    assert made.returncode == 0, made.stderr
    private = load_node_private_key(tmp_path / "de-berlin.node.key")
    public = load_node_public_key(tmp_path / "de-berlin.node.pub")
    assert isinstance(private.curve, ec.SECP384R1)
    assert node_key_bytes(private.public_key()) == node_key_bytes(public)
    assert json.loads(made.stdout)["keys"][0]["fingerprint"] == node_fingerprint(public)
    assert (tmp_path / "de-berlin.node.key").stat().st_mode & 0o777 == 0o600
    # the same loaders Flower 1.42 uses
    from flwr.cli.supernode.register import try_load_public_key

    assert try_load_public_key(tmp_path / "de-berlin.node.pub") == public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert sandbox("certs", "node-key", "--out", str(tmp_path), "--name", "de-berlin").returncode == 2


def test_new_key_still_makes_ed25519_approval_keys(tmp_path: Path) -> None:
    """sandbox certs new-key is unchanged: NAME.key.pem and NAME.pub.pem, Ed25519."""
    done = sandbox("certs", "new-key", "--out", str(tmp_path), "--name", "approver")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "approver.key.pem").is_file() and (tmp_path / "approver.pub.pem").is_file()
