"""A site killed between its privacy-ledger write and its reply: on resume every charge is still in the ledger.

The issue's crash test, with real processes: a child Python process runs the site's train handler
for one demo site and is killed (SIGKILL, no clean-up of any kind) right after the ledger's charge
returned, i.e. after the charge is fsynced but before training and before any reply. The trial is
then resumed: the same round runs again, then the next. The ledger must hold every charge: a
crash never forgets a charge, and the repeated round is not charged a second time (its first
result never left the site).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

from opacus.accountants import RDPAccountant

from participants.privacy_ledger import Charge
from tests.approved_demo import DemoCopy
from tests.participants.guard_harness import site_chain

REPO = Path(__file__).resolve().parents[2]
SITE = "de-berlin"
LEDGER_NAME = "embedded-breast-cancer-0.ledger.jsonl"

CHILD = """
import json, os, signal, sys
from pathlib import Path

from flwr.app import ArrayRecord, Context, RecordDict

from participants import client_app
from participants.model import build_model
from participants.privacy_ledger import PrivacyLedger
from participants.site_config import load_site_config
from participants.site_data import load_site_data
from tests.participants.guard_harness import message, spec_document
from trialcore import wire

spec_path, site_config, run_dir, server_round, mode = sys.argv[1:6]
document = spec_document(Path(spec_path))
msg = message(document, server_round=int(server_round))
config = msg.content.config_records["config"]
data = load_site_data(load_site_config(site_config))
mean, std = data.own_scaling()
config["min-cohort-size"] = 11
config["feature-mean"] = mean
config["feature-std"] = std
model = build_model(document["model"]["name"], num_features=data.num_features)
msg.content["arrays"] = ArrayRecord(model.state_dict())
context = Context(run_id=1, node_id=5, node_config={"site-config": site_config}, state=RecordDict(), run_config={})

if mode == "crash":
    charge = PrivacyLedger.charge

    def charge_then_die(self, planned):
        made = charge(self, planned)  # returns once the charge is fsynced
        os.kill(os.getpid(), signal.SIGKILL)
        return made

    PrivacyLedger.charge = charge_then_die

reply = client_app.train_handler(msg, context, {wire.RUN_DIR: run_dir})
print(json.dumps({
    "error": reply.error.reason if reply.has_error() else None,
    "metrics": None if reply.has_error() else dict(reply.content.metric_records["metrics"]),
}), flush=True)
"""


def run_round(
    script: Path, demo: DemoCopy, run_dir: Path, server_round: int, mode: str
) -> subprocess.CompletedProcess[str]:
    """The site's train handler in a fresh process, as a restarted participant would run it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [
            sys.executable,
            str(script),
            str(demo.spec),
            str(demo.site_config(SITE)),
            str(run_dir),
            str(server_round),
            mode,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=180,
        check=False,
    )


def ledger_lines(run_dir: Path) -> list[str]:
    path = run_dir / "sites" / SITE / "privacy" / LEDGER_NAME
    raw = path.read_bytes()
    assert raw.endswith(b"\n"), "the ledger ends with a whole line"
    return raw.decode("utf-8").splitlines()


def opacus_epsilon(charges: list[Charge]) -> float:
    """Epsilon of ``charges`` by Opacus's own RDPAccountant, fed every charge separately."""
    engine = RDPAccountant()
    engine.history = [(c.noise_multiplier, c.sample_rate, c.steps) for c in charges]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the")
        return float(engine.get_epsilon(delta=charges[-1].delta))


def reply_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    reply: dict[str, Any] = json.loads(done.stdout)
    assert reply["error"] is None, reply["error"]
    return reply


def updates_sent(run_dir: Path) -> list[int]:
    """The rounds for which the site's own chain records an update leaving the site."""
    return [e["payload"]["round"] for e in site_chain(run_dir, SITE) if e["event"] == "update-sent"]


def test_killed_after_the_charge_then_resumed_forgets_no_charge(approved_demo: DemoCopy, tmp_path: Path) -> None:
    """Killed between ledger write and reply, then resumed for the same round and the next: each round charged once."""
    script = tmp_path / "site_round.py"
    script.write_text(CHILD, encoding="utf-8")
    run_dir = tmp_path / "run"

    crashed = run_round(script, approved_demo, run_dir, 1, "crash")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert crashed.stdout == "", "a site killed before replying sent no reply"
    assert updates_sent(run_dir) == [], "no update left the site"
    (line,) = ledger_lines(run_dir)
    assert Charge.model_validate_json(line).round == 1, "the round was charged before the site died"

    resumed = reply_of(run_round(script, approved_demo, run_dir, 1, "normal"))
    following = reply_of(run_round(script, approved_demo, run_dir, 2, "normal"))

    charges = [Charge.model_validate_json(line) for line in ledger_lines(run_dir)]
    assert [c.round for c in charges] == [1, 2], "the repeated round is charged once, nothing is forgotten"
    assert {(c.site_id, c.trial_id, c.spec_hash) for c in charges} == {(SITE, "cancer-risk-demo", charges[0].spec_hash)}
    assert len({c.mechanism for c in charges}) == 1 and charges[0].steps > 0
    for count, charge in enumerate(charges, start=1):
        assert charge.cumulative_epsilon == charge.trial_epsilon
        assert abs(charge.cumulative_epsilon - opacus_epsilon(charges[:count])) <= 1e-9 * charge.cumulative_epsilon
    assert charges[0].cumulative_epsilon < charges[1].cumulative_epsilon
    assert resumed["metrics"]["epsilon-spent"] == charges[0].cumulative_epsilon
    assert following["metrics"]["epsilon-spent"] == charges[1].cumulative_epsilon
    assert updates_sent(run_dir) == [1, 2]
    privacy_dir = run_dir / "sites" / SITE / "privacy"
    assert sorted(p.name for p in privacy_dir.iterdir()) == [LEDGER_NAME, LEDGER_NAME + ".lock"], "no stray temp file"
