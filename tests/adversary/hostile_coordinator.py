"""A hostile coordinator that talks to the real ClientApp of a demo site with crafted Flower messages.

No simulation: each message goes straight through ``participants.client_app`` (the site's guard
mod, then its handler), as a SuperNode would deliver it. Helpers read back what the site kept:
its audit chains, privacy ledger and question book.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.common.constant import ErrorCode

from participants.client_app import make_client_app
from participants.model import build_model
from participants.site_audit import UNVERIFIED_TRIAL
from tests.approved_demo import DemoCopy
from tests.coordinator_messages import coordinator_message
from trialcore import wire
from trialcore.canonical_json import canonical_json
from trialcore.spec_loading import load_spec

ATTACKS: list[tuple[str, str]] = []
"""(attack, outcome) rows, printed as the attack table at the end of the session."""

NUM_FEATURES = 30


def record_attack(attack: str, outcome: str) -> None:
    """Add a row to the attack table (call it after the test's assertions passed)."""
    ATTACKS.append((attack, outcome))


def global_arrays(scale: float = 0.0, seed: int = 42) -> ArrayRecord:
    """A logistic-regression model for the demo's 30 features, its weights multiplied by ``scale`` (+1)."""
    model = build_model("logistic_regression", num_features=NUM_FEATURES, hidden_units=16, seed=seed)
    state = {k: v * (1.0 + scale) for k, v in model.state_dict().items()}
    return ArrayRecord(state)


@dataclass
class HostileCoordinator:
    """Sends crafted messages to the demo sites of ``demo``; their state lives under ``run_dir``."""

    demo: DemoCopy
    run_dir: Path
    sent: int = field(default=0)

    def document(self, **changes: Any) -> dict[str, Any]:
        """The demo spec as the JSON document the coordinator sends, with top-level ``changes``."""
        return load_spec(self.demo.spec).spec.model_dump(mode="json") | changes

    def message(
        self,
        document: dict[str, Any] | None = None,
        *,
        message_type: str = "train",
        server_round: int = 1,
        arrays: ArrayRecord | None = None,
        spec_hash: str | None = None,
        config: dict[str, Any] | None = None,
    ) -> Message:
        """A message carrying ``document`` (default: the approved demo spec) and its hash, scaling, a model."""
        document = document or self.document()
        spec_json = canonical_json(document).decode()
        values: dict[str, Any] = {
            wire.TRIAL_ID: document["trial_id"],
            wire.SPEC_HASH: spec_hash or hashlib.sha256(spec_json.encode()).hexdigest(),
            wire.SPEC_JSON: spec_json,
            wire.SERVER_ROUND: server_round,
            wire.MIN_COHORT_SIZE: 11,
            wire.FEATURE_MEAN: [0.0] * NUM_FEATURES,
            wire.FEATURE_STD: [1.0] * NUM_FEATURES,
        }
        values |= config or {}
        records: dict[str, Any] = {wire.CONFIG_RECORD: ConfigRecord(values)}
        if not message_type.startswith("query"):
            records[wire.ARRAYS_RECORD] = arrays if arrays is not None else global_arrays()
        self.sent += 1
        return coordinator_message(message_type, RecordDict(records), message_id=f"m{self.sent}")

    def send(self, site: str, msg: Message) -> Message:
        """Deliver ``msg`` to ``site``'s real ClientApp (guard mod, then handler); return its reply."""
        app = make_client_app({wire.RUN_DIR: str(self.run_dir)})
        context = Context(
            run_id=1,
            node_id=5,
            node_config={wire.SITE_CONFIG: str(self.demo.site_config(site))},
            state=RecordDict(),
            run_config={},
        )
        return app(msg, context)

    # -- what the site kept ----------------------------------------------------------------------

    def chain(self, site: str) -> list[dict[str, Any]]:
        """The site's audit chain of the demo trial."""
        return _jsonl(self.run_dir / "sites" / site / "audit.jsonl")

    def unverified_chain(self, site: str) -> list[dict[str, Any]]:
        """The site's chain of refusals of messages naming no trial it could verify."""
        return _jsonl(self.run_dir / "sites" / site / UNVERIFIED_TRIAL / "audit.jsonl")

    def charges(self, site: str) -> list[dict[str, Any]]:
        """The charges in the site's privacy ledger (empty if it has none)."""
        folder = self.run_dir / "sites" / site / "privacy"
        return [c for path in sorted(folder.glob("*.ledger.jsonl")) for c in _jsonl(path)] if folder.exists() else []

    def events(self, site: str, event: str) -> list[dict[str, Any]]:
        return [e for e in self.chain(site) if e["event"] == event]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def assert_refused(reply: Message, *fragments: str) -> str:
    """The reply is a precondition error naming every fragment; return its reason."""
    assert reply.has_error(), "the site answered instead of refusing"
    assert reply.error.code == ErrorCode.MOD_FAILED_PRECONDITION
    reason = reply.error.reason or ""
    for fragment in fragments:
        assert fragment in reason, reason
    return reason
