"""``sandbox approve`` (a site signs one exact trial spec) and ``sandbox certs new-key`` (its key pair).

An approval is written, by default, into the site's own ``approvals_dir`` (from its node config in
the trial's federation), where the site's guard and ``sandbox check`` look for it. See
:mod:`participants.approvals` for what is signed and how it is checked.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from participants.approval_keys import KeyPairFiles, fingerprint, load_private_key, load_trusted_keys, new_key_pair
from participants.approvals import Approval, approval_path, sign_approval, site_policy_hash, write_approval
from participants.site_config import LoadedSiteConfig
from sandbox.cli_certs import emit_key_pairs_json
from sandbox.federation import load_federation
from trialcore.cli_output import OutputFormat, emit_json, guarded
from trialcore.errors import BadInputError, Problem, SandboxError, show_path, show_value
from trialcore.spec_loading import LoadedSpec, load_spec

CONTEXT = {"help_option_names": ["-h", "--help"]}
certs_app = typer.Typer(
    help="Keys and certificates: approval keys (Ed25519), the SuperLink's TLS, SuperNode authentication keys.",
    context_settings=CONTEXT,
    no_args_is_help=True,
)
FormatOption = typer.Option(
    OutputFormat.text, "--format", help="text for people, json for machines (one document on stdout)."
)


@certs_app.command("new-key")
def new_key(
    out: Path = typer.Option(..., "--out", help="Folder for the key files (created if missing)."),
    names: list[str] = typer.Option(
        ..., "--name", help="Key name: writes NAME.key.pem (private, 0600) and NAME.pub.pem. Repeatable."
    ),
    output: OutputFormat = FormatOption,
) -> None:
    """Create Ed25519 approval key pairs; never overwrites an existing key (exit 2)."""

    def create() -> list[KeyPairFiles]:
        clashes = [
            Problem(
                str(out / f"{name}.{kind}.pem"),
                "",
                "an existing file",
                "a new name, or remove the old key first (keys are never overwritten)",
            )
            for name in names
            for kind in ("key", "pub")
            if (out / f"{name}.{kind}.pem").exists()
        ]
        if clashes:
            raise BadInputError("Keys already exist", clashes)
        return [new_key_pair(out, name) for name in names]

    pairs = guarded(output, create)
    if output is OutputFormat.json:
        emit_key_pairs_json(pairs)
        return
    for pair in pairs:
        print(f"{pair.private_key} (private, 0600) and {pair.public_key}: key {pair.fingerprint}")


@dataclass(frozen=True)
class _Signing:
    site: LoadedSiteConfig
    key: Ed25519PrivateKey
    path: Path


def approve(
    spec: str = typer.Argument(..., help="Trial spec (YAML) to approve."),
    sites: list[str] = typer.Option(
        ..., "--site", help="Approving site (a participant of the trial). Repeatable, paired with --key in order."
    ),
    keys: list[Path] = typer.Option(..., "--key", help="The approver's Ed25519 private key (sandbox certs new-key)."),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Where to write the approval (one --site only); default: <approvals_dir>/<trial-id>/<site-id>.json of the site's node config.",
    ),
    output: OutputFormat = FormatOption,
) -> None:
    """Sign a site's approval of this exact spec (its hash) under the site's current policy (its files' hash)."""
    loaded = guarded(output, lambda: load_spec(spec))
    plan = guarded(output, lambda: _plan(loaded, sites, keys, out))
    now = datetime.now(UTC)
    written: list[tuple[Path, Approval]] = []
    for signing in plan:
        policy_hash = guarded(output, functools.partial(site_policy_hash, signing.site))
        assert policy_hash is not None  # _plan refuses sites without a policy
        approval = sign_approval(
            trial_id=loaded.spec.trial_id,
            site_id=signing.site.config.site_id,
            spec_hash=loaded.spec_hash,
            policy_hash=policy_hash,
            key=signing.key,
            approved_at=now,
        )
        guarded(output, functools.partial(write_approval, signing.path, approval))
        written.append((signing.path, approval))
        _warn_if_untrusted(signing)
    if output is OutputFormat.json:
        emit_json({"ok": True, "approvals": [{"path": str(path), **approval.as_json()} for path, approval in written]})
        return
    for path, approval in written:
        print(
            f"{approval.site_id}: approved trial {approval.trial_id!r} (spec {approval.spec_hash[:12]}, policy "
            f"{approval.policy_hash[:12]}) with key {approval.approver_key_fingerprint[:16]}; wrote {show_path(path)}"
        )


def _plan(loaded: LoadedSpec, sites: list[str], keys: list[Path], out: Path | None) -> list[_Signing]:
    """Check every input first (all problems at once): sites of the trial, readable keys, a place to write."""
    problems: list[Problem] = []
    if len(sites) != len(keys):
        problems.append(
            Problem(
                "--key", "", f"{len(keys)} key(s) for {len(sites)} site(s)", "one --key per --site, in the same order"
            )
        )
    if out is not None and len(sites) > 1:
        problems.append(Problem("--out", "", show_value(str(out)), "--out with one --site only"))
    federation = load_federation(loaded)
    plan: list[_Signing] = []
    for site_id, key_path in zip(sites, keys):
        site = federation.get(site_id)
        if site is None:
            allowed = f"a participant of trial {loaded.spec.trial_id!r}: {', '.join(loaded.spec.site_ids)}"
            problems.append(Problem("--site", "", show_value(site_id), allowed))
        elif not site.config.policy:
            problems.append(
                Problem(
                    site.shown_as,
                    "policy",
                    "nothing",
                    "the site's policy file (an approval names the policy it was given under)",
                )
            )
        elif out is None and not site.config.approvals_dir:
            problems.append(
                Problem(site.shown_as, "approvals_dir", "nothing", "the site's approvals folder, or give --out")
            )
        try:
            key = load_private_key(key_path)
        except SandboxError as err:
            problems.extend(err.problems)
            continue
        if site is not None and not problems:
            path = (
                out
                if out is not None
                else approval_path(site.resolve(str(site.config.approvals_dir)), loaded.spec.trial_id, site_id)
            )
            plan.append(_Signing(site, key, path))
    if problems:
        raise BadInputError("Cannot sign the approval", problems)
    return plan


def _warn_if_untrusted(signing: _Signing) -> None:
    """Say so (stderr) when the site's own trusted keys do not include the signing key: the site would refuse."""
    trusted = signing.site.config.trusted_keys
    if not trusted:
        return
    path = signing.site.resolve(trusted)
    try:
        known: dict[str, Any] = dict(load_trusted_keys(path)) if path.is_file() else {}
    except SandboxError:
        known = {}
    if fingerprint(signing.key.public_key()) not in known:
        sys.stderr.write(
            f"warning: {signing.site.config.site_id} does not trust this key yet (not in {show_path(path)}); "
            "its guard refuses the trial until the public key is added there\n"
        )
