"""Suspend, resume or terminate a running trial from outside, as a regulator would.

``sandbox suspend RUN_DIR --reason ... --key regulator.key.pem`` (and ``resume``, ``terminate``)
append one request to ``RUN_DIR/control.jsonl`` (append + fsync, one JSON object per line),
signed with the regulator's Ed25519 key (:mod:`sandbox.signed_control`). The coordinator honours
only requests signed by a key its sandbox plan names as the regulator's
(:mod:`sandbox.sandbox_plan`); every other request is refused and audited (``control-refused``).
The coordinator reads the file before every round: a suspended trial waits before its next round until resumed or
terminated; a terminated trial stops before its next round, writes its report and exits. Each
honoured request is audited in the coordinator's chain and changes ``sandbox_trial_state``.
"""

from __future__ import annotations

import enum
import json
import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sandbox.signed_control import check_signature, sign_request, signer_fingerprint
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


def request_action(
    run_dir: Path,
    action: Action,
    reason: str,
    *,
    shown_as: str | None = None,
    key: Ed25519PrivateKey | None = None,
    regulator: Collection[str] = (),
) -> tuple[ControlRequest, str | None]:
    """Append a request for the trial running in ``run_dir``, signed with ``key`` if given.

    Returns the request and, if the coordinator will refuse it (it is unsigned, or not signed by
    one of the ``regulator`` fingerprints the run recorded), why: the request is appended all the
    same, so that the coordinator audits the attempt.

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
    item: dict[str, object] = {
        "action": request.action.value,
        "reason": request.reason,
        "requested_at": request.requested_at,
        "run_id": run_dir.resolve().name,
    }
    if key is not None:
        item = sign_request(item, key)
    with open(run_dir / CONTROL_FILE, "ab") as handle:
        handle.write((json.dumps(item) + "\n").encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())
    return request, check_signature(item, regulator, run_dir.resolve().name)


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
    regulator:
        Fingerprints of the keys the sandbox plan names as the regulator's; a request signed by
        none of them is refused (none: nothing from outside is honoured).
    on_refused:
        Called with each refused request's fields and why (``control-refused`` audit entry).
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        on_change: Callable[[ControlRequest], None],
        poll_seconds: float = 0.5,
        regulator: Collection[str] = (),
        on_refused: Callable[[dict[str, object], str], object] | None = None,
    ) -> None:
        self.path = run_dir / CONTROL_FILE
        self.run_id = run_dir.resolve().name
        self.regulator = frozenset(regulator)
        self.on_refused = on_refused
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
                request = ControlRequest(Action(item["action"]), str(item["reason"]), str(item["requested_at"]))
            except (ValueError, KeyError, TypeError):
                continue  # a malformed line is ignored; requests come only through `sandbox suspend|resume|terminate`
            refused = check_signature(item, self.regulator, self.run_id)
            if refused is not None:
                if self.on_refused is not None:
                    shown: dict[str, object] = {
                        "action": request.action.value,
                        "reason": request.reason[:200],
                        "requested_at": request.requested_at[:40],
                        "signer": signer_fingerprint(item),
                    }
                    self.on_refused(shown, refused)
                continue
            requests.append(request)
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
