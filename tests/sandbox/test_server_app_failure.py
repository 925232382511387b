"""The ServerApp ``flwr run`` loads ends a trial no site can take part in as failed, and lets Flower know.

The sites are the real ClientApp called in this process by a small in-memory grid (no Ray): the
ServerApp, the guard, the handlers and the report are the ones ``flwr run`` uses.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pytest
from flwr.app import Context, Message, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from participants.client_app import make_client_app
from sandbox.server_app import app
from tests.approved_demo import DEMO_SITES, DemoCopy
from tests.participants.test_site_internal_error import misfit_spec
from trialcore import wire


@pytest.fixture(autouse=True)
def task_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flower messages need the task's identity, which the ServerApp process normally sets."""
    for name in ("_run_id", "_node_id", "_task_id"):
        monkeypatch.setattr(TaskIdentity, name, 1)


class InProcessGrid:
    """Delivers each message to the real ClientApp in this process: node 100 + i is demo site i."""

    def __init__(self, settings: dict[str, str]) -> None:
        self.client_app = make_client_app(settings)
        self.contexts = {
            100 + index: Context(
                run_id=7, node_id=100 + index, node_config={"partition-id": index}, state=RecordDict(), run_config={}
            )
            for index in range(len(DEMO_SITES))
        }

    def get_node_ids(self) -> list[int]:
        return list(self.contexts)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> list[Message]:
        return [self.client_app(message, self.contexts[message.metadata.dst_node_id]) for message in messages]


def test_flwr_run_server_app_reports_failed_and_raises(approved_demo: DemoCopy, tmp_path: Path) -> None:
    """report.json says failed with each site's error, and the ServerApp raises so that Flower records a failed run."""
    spec = misfit_spec(approved_demo, tmp_path)
    run_dir = tmp_path / "run"
    settings = {
        wire.FEDERATION_DIR: str(approved_demo.sites_dir),
        wire.FEDERATION_SITES: ",".join(DEMO_SITES),
        wire.RUN_DIR: str(run_dir),
    }
    context = Context(
        run_id=7,
        node_id=0,
        node_config={},
        state=RecordDict(),
        run_config={wire.TRIAL_SPEC: str(spec), wire.METRICS_PORT: 0, **settings},
    )
    with pytest.raises(RuntimeError, match="trial cancer-risk-demo failed: 4 site error"):
        app(InProcessGrid(settings), context)  # type: ignore[arg-type]
    report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    assert report["state"] == "failed"
    assert sorted(e["site_id"] for e in report["failure"]["site_errors"]) == sorted(DEMO_SITES)
