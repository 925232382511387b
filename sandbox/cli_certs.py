"""``sandbox certs ca|server|node-key``: TLS and SuperNode authentication material for a pilot.

``ca`` and ``server`` make the SuperLink's TLS (:mod:`sandbox.tls_certs`); ``node-key`` makes a
site's SuperNode authentication key pair (:mod:`participants.node_keys`), which the site makes on
its own machine and of which it publishes only the public half. ``sandbox certs new-key`` (Ed25519
approval keys) is in :mod:`sandbox.cli_approvals`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import typer

from participants.node_keys import NodeKeyFiles, new_node_key
from sandbox.tls_certs import CaFiles, new_ca, new_server_certificate
from trialcore.cli_output import OutputFormat, emit_json, guarded
from trialcore.errors import BadInputError, Problem, show_value

FormatOption = typer.Option(OutputFormat.text, "--format", help="text or json.")
OutOption = typer.Option(..., "--out", help="Folder for the files (created if missing).")


class KeyFiles(Protocol):
    """A new key pair's files and fingerprint (node keys and approval keys alike)."""

    @property
    def private_key(self) -> Path: ...

    @property
    def public_key(self) -> Path: ...

    @property
    def fingerprint(self) -> str: ...


def emit_key_pairs_json(pairs: Sequence[KeyFiles]) -> None:
    """Print the new key pairs as the JSON result of a ``certs`` command."""
    emit_json(
        {
            "ok": True,
            "keys": [
                {"private_key": str(p.private_key), "public_key": str(p.public_key), "fingerprint": p.fingerprint}
                for p in pairs
            ],
        }
    )


def ca(
    out: Path = OutOption,
    common_name: str = typer.Option("sandbox pilot CA", "--common-name", help="The CA's name."),
    valid_days: int = typer.Option(365, "--valid-days", min=1, max=3650),
    output: OutputFormat = FormatOption,
) -> None:
    """Create a certificate authority (ca.key, 0600, and ca.pem) for the SuperLink's TLS; never overwrites (exit 2)."""
    files = guarded(output, lambda: new_ca(out, common_name=common_name, valid_days=valid_days))
    if output is OutputFormat.json:
        emit_json({"ok": True, "key": str(files.key), "certificate": str(files.certificate)})
    else:
        print(f"{files.key} (private, 0600) and {files.certificate}: give ca.pem to every site (--root-certificates)")


def server(
    ca_dir: Path = typer.Option(..., "--ca", help="Folder holding ca.key and ca.pem (sandbox certs ca)."),
    out: Path = OutOption,
    hosts: list[str] = typer.Option(
        ..., "--host", help="A DNS name or IP address the SuperLink is reached at. Repeatable."
    ),
    name: str = typer.Option("server", "--name", help="Writes NAME.key and NAME.pem."),
    valid_days: int = typer.Option(365, "--valid-days", min=1, max=3650),
    output: OutputFormat = FormatOption,
) -> None:
    """Create the SuperLink's TLS certificate for the given hosts, signed by the CA; never overwrites (exit 2)."""
    files = guarded(
        output,
        lambda: new_server_certificate(
            CaFiles(ca_dir / "ca.key", ca_dir / "ca.pem"), out, hosts, name=name, valid_days=valid_days
        ),
    )
    if output is OutputFormat.json:
        emit_json(
            {"ok": True, "key": str(files.key), "certificate": str(files.certificate), "hosts": list(files.names)}
        )
    else:
        print(f"{files.key} (private, 0600) and {files.certificate} for {', '.join(files.names)}")


def node_key(
    out: Path = OutOption,
    names: list[str] = typer.Option(
        ..., "--name", help="Writes NAME.node.key (private, 0600) and NAME.node.pub. Repeatable (use the site id)."
    ),
    output: OutputFormat = FormatOption,
) -> None:
    """Create SuperNode authentication key pairs (ECDSA P-384, OpenSSH format, as Flower reads them)."""

    def create() -> list[NodeKeyFiles]:
        bad = [n for n in names if not n or "/" in n or n.startswith(".")]
        if bad:
            raise BadInputError(
                "Bad key name", [Problem("--name", "", show_value(n), "a plain file name (the site id)") for n in bad]
            )
        return [new_node_key(out, name) for name in names]

    pairs = guarded(output, create)
    if output is OutputFormat.json:
        emit_key_pairs_json(pairs)
        return
    for pair in pairs:
        print(
            f"{pair.private_key} (private, 0600, stays at the site) and {pair.public_key}: node key {pair.fingerprint[:16]}"
        )
