"""A site serves a trial only under a signed approval of that exact spec, by a key it trusts, under its current policy."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from participants.approval_keys import load_private_key, load_trusted_keys, new_key_pair
from participants.approvals import check_site_approval, policy_hash, read_approval, sign_approval, write_approval
from participants.errors import KeyFileError
from tests.approved_demo import REPO, DemoCopy
from tests.participants.guard_harness import assert_refused, guard_reply, message, site_chain, spec_document
from trialcore.spec import TrialSpec
from trialcore.spec_loading import load_spec, spec_hash

SITE = "gb-leeds"


def edited_document(demo: DemoCopy) -> dict[str, object]:
    """The demo spec with one round fewer: still within every policy, but not what the sites approved."""
    return spec_document(demo.spec) | {"rounds": 9}


def test_site_refuses_until_its_approver_signs_then_serves(unapproved_demo: DemoCopy, tmp_path: Path) -> None:
    """Without an approval the site refuses the demo (naming where the approval should be); once signed, it serves it."""
    msg = message(spec_document(unapproved_demo.spec))
    reply, reached = guard_reply(msg, unapproved_demo.site_config(SITE), tmp_path / "run")
    assert_refused(
        reply, reached, tmp_path / "run", SITE, "approval: no signed approval", str(unapproved_demo.approval(SITE))
    )
    unapproved_demo.approve(sites=(SITE,))
    reply, reached = guard_reply(msg, unapproved_demo.site_config(SITE), tmp_path / "run")
    assert not reply.has_error() and reached == [SITE]


def test_spec_hash_not_approved_is_refused_with_reason_in_the_sites_chain(
    approved_demo: DemoCopy, tmp_path: Path
) -> None:
    """A permitted but different spec (edited after approval) is refused; the site's own chain says why."""
    reply, reached = guard_reply(
        message(edited_document(approved_demo)), approved_demo.site_config(SITE), tmp_path / "run"
    )
    assert_refused(
        reply, reached, tmp_path / "run", SITE, "approval: the approval covers spec hash", "edited after approval"
    )
    assert "edited after approval" in site_chain(tmp_path / "run", SITE)[-1]["payload"]["reason"]


def test_approval_signed_by_an_untrusted_key_is_refused(approved_demo: DemoCopy, tmp_path: Path) -> None:
    """An approval signed by a key not in the site's trusted keys is refused, even though its signature is valid."""
    stranger = new_key_pair(tmp_path / "stranger", "stranger")
    loaded = load_spec(approved_demo.spec)
    genuine = read_approval(approved_demo.approval(SITE))
    forged = sign_approval(
        trial_id=loaded.spec.trial_id,
        site_id=SITE,
        spec_hash=loaded.spec_hash,
        policy_hash=genuine.policy_hash,
        key=load_private_key(stranger.private_key),
        approved_at=datetime.now(UTC),
    )
    write_approval(approved_demo.approval(SITE), forged)
    reply, reached = guard_reply(
        message(spec_document(approved_demo.spec)), approved_demo.site_config(SITE), tmp_path / "run"
    )
    assert_refused(
        reply, reached, tmp_path / "run", SITE, f"signed by key {stranger.fingerprint[:16]}", "does not trust"
    )


def test_tampered_approval_json_is_refused(approved_demo: DemoCopy, tmp_path: Path) -> None:
    """Editing a signed approval (here: its spec hash, to cover an edited spec) breaks its signature; the site refuses."""
    edited = edited_document(approved_demo)
    path = approved_demo.approval(SITE)
    document = json.loads(path.read_text())
    document["spec_hash"] = spec_hash(TrialSpec.model_validate(edited))
    path.write_text(json.dumps(document))
    reply, reached = guard_reply(message(edited), approved_demo.site_config(SITE), tmp_path / "run")
    assert_refused(reply, reached, tmp_path / "run", SITE, "signature does not verify")


def test_policy_edited_after_approval_is_refused(approved_demo: DemoCopy, tmp_path: Path) -> None:
    """When any file of the site's policy chain changes (here its country file), its earlier approval no longer holds."""
    country = approved_demo.examples / "policies" / "countries" / "gb.yaml"
    country.write_text(country.read_text() + "\n# amended\n")
    reply, reached = guard_reply(
        message(spec_document(approved_demo.spec)), approved_demo.site_config(SITE), tmp_path / "run"
    )
    assert_refused(reply, reached, tmp_path / "run", SITE, "policy files changed since this approval")


def test_site_without_trusted_keys_requires_no_approval(unapproved_demo: DemoCopy, tmp_path: Path) -> None:
    """A site whose node config sets no trusted_keys serves a permitted trial without any signed approval."""
    config = unapproved_demo.site_config(SITE)
    config.write_text(
        "".join(
            line
            for line in config.read_text().splitlines(keepends=True)
            if not line.startswith(("approvals_dir:", "trusted_keys:"))
        )
    )
    reply, reached = guard_reply(message(spec_document(unapproved_demo.spec)), config, tmp_path / "run")
    assert not reply.has_error() and reached == [SITE]


def test_policy_hash_covers_file_contents_not_their_place_or_the_day(tmp_path: Path) -> None:
    """The policy hash is the same for a copy of the policy files elsewhere, and changes when a layer's text changes."""
    shutil.copytree(REPO / "examples" / "policies", tmp_path / "policies")
    original = policy_hash(REPO / "examples" / "policies" / "institutions" / "de-berlin.yaml")
    copied = tmp_path / "policies" / "institutions" / "de-berlin.yaml"
    assert policy_hash(copied) == original
    country = tmp_path / "policies" / "countries" / "de.yaml"
    country.write_text(country.read_text() + "\n# amended\n")
    assert policy_hash(copied) != original, "the hash follows the extends chain"


def test_private_key_is_written_0600_and_never_overwritten(tmp_path: Path) -> None:
    """A new private key file is readable by its owner only; a second key of the same name is refused."""
    pair = new_key_pair(tmp_path / "keys", "de-berlin")
    assert stat.S_IMODE(pair.private_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(pair.public_key.stat().st_mode) == 0o644
    assert set(load_trusted_keys(pair.public_key)) == {pair.fingerprint}
    before = pair.private_key.read_bytes()
    with pytest.raises(KeyFileError, match="already exists"):
        new_key_pair(tmp_path / "keys", "de-berlin")
    assert pair.private_key.read_bytes() == before


def test_approval_is_written_atomically(approved_demo: DemoCopy, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write interrupted before the rename leaves the previous approval whole and no stray file behind."""
    path = approved_demo.approval(SITE)
    before = path.read_bytes()
    loaded = load_spec(approved_demo.spec)
    newer = sign_approval(
        trial_id=loaded.spec.trial_id,
        site_id=SITE,
        spec_hash="0" * 64,
        policy_hash="0" * 64,
        key=load_private_key(approved_demo.key(SITE)),
        approved_at=datetime.now(UTC),
    )

    def interrupted(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(OSError, match="disk full"):
        write_approval(path, newer)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == sorted(
        ["de-berlin.json", "fr-lyon.json", "gb-leeds.json", "ch-zurich.json"]
    )
    assert check_site_approval(approved_demo.site(SITE), trial_id=loaded.spec.trial_id, spec_hash=loaded.spec_hash).ok


def test_private_key_pasted_into_trusted_keys_is_bad_input_without_echoing_it(tmp_path: Path) -> None:
    """A trusted-keys file holding a private key is refused, naming the block, never printing the key."""
    pair = new_key_pair(tmp_path, "approver")
    trusted = tmp_path / "trusted.pem"
    trusted.write_bytes(pair.public_key.read_bytes() + pair.private_key.read_bytes())
    with pytest.raises(KeyFileError) as raised:
        load_trusted_keys(trusted)
    assert "'PRIVATE KEY' block" in str(raised.value)
    secret = pair.private_key.read_text().splitlines()[1]
    assert secret not in str(raised.value)


def test_approval_logic_loads_no_flwr_or_torch() -> None:
    """Signing and checking approvals (shared by the CLI and the site's guard) import neither flwr nor torch."""
    script = (
        "import sys, participants.approvals, participants.approval_keys, sandbox.consent, sandbox.cli_approvals; "
        "leaked = sorted(m for m in ('flwr', 'torch') if m in sys.modules); assert not leaked, leaked"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
