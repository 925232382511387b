"""Suspend, resume or terminate a running trial from outside, as a regulator would.

``sandbox suspend RUN_DIR --reason ...`` (and ``resume``, ``terminate``) append one request
to ``RUN_DIR/control.jsonl`` (append + fsync, one JSON object per line). The coordinator reads
the file before every round: a suspended trial waits before its next round until resumed or
terminated; a terminated trial stops before its next round, writes its report and exits. Each
honoured request is audited in the coordinator's chain and changes ``sandbox_trial_state``.
"""

from __future__ import annotations

import enum
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from trialcore.errors import BadInputError, Problem, show_value
from trialcore.layout import AUDIT_FILE, CONTROL_FILE, REPORT_FILE


class Action(str, enum.Enum):
    """What a regulator can ask of a running trial."""

    suspend = "suspend"
    resume = "resume"
    terminate = "terminate"


@dataclass(frozen=True)
class ControlRequest:
    """One request: its action, the reason given and when it was made (UTC)."""

    action: Action
    reason: str
    requested_at: str


class TrialTerminated(Exception):
    """Raised inside the coordinator to stop the federation loop before the next round."""

    def __init__(self, request: ControlRequest) -> None:
        super().__init__(request.reason)
        self.request = request


def request_action(run_dir: Path, action: Action, reason: str, *, shown_as: str | None = None) -> ControlRequest:
    """Append a request for the trial running in ``run_dir``.

    Raises
    ------
    BadInputError
        ``run_dir`` is not a run folder, the trial already ended, or the reason is empty.
    """
    name = shown_as or str(run_dir)
    if not (run_dir / AUDIT_FILE).is_file():
        raise BadInputError(
            f"Not a run folder: {name!r}",
            [Problem(name, "", "no audit.jsonl", "a folder runs/<trial-id>/<run-id>/ of a running trial")],
        )
    if (run_dir / REPORT_FILE).is_file():
        raise BadInputError(
            f"The trial in {name!r} has already ended",
            [Problem(name, "", "a report.json (the trial ended)", "the folder of a trial that is still running")],
        )
    if not reason.strip() or "\n" in reason:
        raise BadInputError(
            "A reason is required", [Problem("--reason", "", show_value(reason), "one non-empty line saying why")]
        )
    request = ControlRequest(action=action, reason=reason.strip(), requested_at=datetime.now(UTC).isoformat())
    line = (
        json.dumps({"action": request.action.value, "reason": request.reason, "requested_at": request.requested_at})
        + "\n"
    )
    with open(run_dir / CONTROL_FILE, "ab") as handle:
        handle.write(line.encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())
    return request


class TrialControl:
    """The coordinator's side: reads new requests from ``control.jsonl`` and honours them before each round.

    Parameters
    ----------
    run_dir:
        The run folder.
    on_change:
        Called with each honoured request (audit entry, metric), in order.
    poll_seconds:
        How often a suspended trial looks for a resume or terminate request.
    """

    def __init__(
        self, run_dir: Path, *, on_change: Callable[[ControlRequest], None], poll_seconds: float = 0.5
    ) -> None:
        self.path = run_dir / CONTROL_FILE
        self.on_change = on_change
        self.poll_seconds = poll_seconds
        self._offset = 0
        self._escalations: list[ControlRequest] = []
        self.suspended = False

    def escalate(self, action: Action, reason: str) -> None:
        """Graduated enforcement's own suspend or terminate, honoured before the next round like a regulator's."""
        self._escalations.append(ControlRequest(action, reason, datetime.now(UTC).isoformat()))

    def _new_requests(self) -> list[ControlRequest]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written is read next time
        self._offset += len(complete)
        requests = []
        for raw in complete.splitlines():
            try:
                item = json.loads(raw)
                requests.append(ControlRequest(Action(item["action"]), str(item["reason"]), str(item["requested_at"])))
            except (ValueError, KeyError, TypeError):
                continue  # a malformed line is ignored; requests come only through `sandbox suspend|resume|terminate`
        return requests

    def before_round(self) -> None:
        """Honour pending requests; block while suspended; raise :class:`TrialTerminated` on terminate."""
        while True:
            pending, self._escalations = self._escalations, []
            for request in pending + self._new_requests():
                if request.action is Action.terminate:
                    self.on_change(request)
                    raise TrialTerminated(request)
                if (request.action is Action.suspend) != self.suspended:
                    self.suspended = request.action is Action.suspend
                    self.on_change(request)
            if not self.suspended:
                return
            time.sleep(self.poll_seconds)
