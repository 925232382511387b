"""A site withdraws from a trial on its own; before joining, it checks itself on its own machine."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

from participants.join_checks import check_site
from participants.node_keys import new_node_key
from participants.site_config import load_site_config
from tests.approved_demo import DemoCopy
from tests.participants.guard_harness import guard_reply, message, spec_document
from tests.prometheus_server import free_port
from trialcore import wire

PARTICIPANTS = Path(sys.executable).parent / "participants"


def with_state_dir(demo: DemoCopy, site_id: str) -> Path:
    """The demo site's node config with its own state folder (as a real site sets it)."""
    path = demo.site_config(site_id)
    config = yaml.safe_load(path.read_text())
    config["state_dir"] = f"../../state/{site_id}"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_withdrawn_site_refuses_the_trial_from_the_next_message(approved_demo: DemoCopy, tmp_path: Path) -> None:
    """participants withdraw: the next message of that trial is refused ('withdrawn:'), audited in the site's chain."""
    config = with_state_dir(approved_demo, "fr-lyon")
    document = spec_document(approved_demo.spec)
    reply, reached = guard_reply(message(document), config, tmp_path)
    assert not reply.has_error() and reached == ["fr-lyon"]
    done = subprocess.run(
        [str(PARTICIPANTS), "withdraw", "cancer-risk-demo", "--site-config", str(config), "--reason", "board decision"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    reply, reached = guard_reply(message(document, server_round=2), config, tmp_path)
    assert reply.has_error() and reached == []
    assert wire.WITHDRAWN_PREFIX in reply.error.reason and "board decision" in reply.error.reason
    chain = approved_demo.root / "state" / "fr-lyon" / "cancer-risk-demo" / "audit.jsonl"
    events = [json.loads(line)["event"] for line in chain.read_text().splitlines()]
    assert events[-2:] == ["withdrawn", "refusal"]


def test_withdraw_needs_a_reason_and_a_state_folder(approved_demo: DemoCopy) -> None:
    """Withdrawing without a reason, or for a site with no state folder, is bad input (exit 2), nothing written."""
    for args in (
        ["--site-config", str(approved_demo.site_config("de-berlin")), "--reason", "x"],
        ["--site-config", str(with_state_dir(approved_demo, "gb-leeds")), "--reason", " "],
    ):
        done = subprocess.run(
            [str(PARTICIPANTS), "withdraw", "cancer-risk-demo", *args], capture_output=True, text=True
        )
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
    assert not (approved_demo.root / "state" / "gb-leeds" / "withdrawals").exists()


def test_join_checks_pass_for_a_ready_site_and_name_every_problem(approved_demo: DemoCopy, tmp_path: Path) -> None:
    """The site's own checks pass with a valid approval; a missing state folder and a loose key file are both named."""
    config = with_state_dir(approved_demo, "de-berlin")
    key = new_node_key(tmp_path, "de-berlin").private_key
    ready = check_site(load_site_config(config), auth_key=key, spec=approved_demo.spec)
    assert ready.ok, ready.problems
    assert ready.seen["approval"] == "approved" and int(str(ready.seen["num_train"])) >= 11
    key.chmod(0o644)
    not_ready = check_site(approved_demo.site("ch-zurich"), auth_key=key, spec=approved_demo.spec)
    fields = {(p.field, p.allowed.split(" ")[0]) for p in not_ready.problems}
    assert ("state_dir", "the") in fields
    assert any("chmod 600" in p.allowed for p in not_ready.problems)


def test_join_against_an_unreachable_superlink_exits_6_after_a_bounded_wait(
    approved_demo: DemoCopy, tmp_path: Path
) -> None:
    """participants join with no SuperLink listening: a clear error and exit 6 after --wait-seconds, no endless retry."""
    config = with_state_dir(approved_demo, "de-berlin")
    key = new_node_key(tmp_path, "de-berlin").private_key
    (tmp_path / "ca.pem").write_text("not used before the SuperLink answers")
    started = time.monotonic()
    done = subprocess.run(
        [
            str(PARTICIPANTS),
            "join",
            "--superlink",
            f"127.0.0.1:{free_port()}",
            "--site-config",
            str(config),
            "--root-certificates",
            str(tmp_path / "ca.pem"),
            "--auth-key",
            str(key),
            "--wait-seconds",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 6, done.stderr
    assert "unreachable" in done.stderr and "Traceback" not in done.stderr
    assert time.monotonic() - started < 60
