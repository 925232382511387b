"""A Flower Grid whose waits end when the engine behind it stops, or at their bound.

Flower's grids wait for replies until their timeout even when the engine that would deliver them
has died (a simulation whose Ray workers could not start leaves the ServerApp waiting in its first
query). :class:`BoundedGrid` wraps any Grid and delegates everything to it; only
``send_and_receive`` is Flower's own push-then-pull loop with one more exit: when ``stopped`` is
set (the engine ended), it raises :class:`EngineStopped` at the next poll, and a wait never
exceeds its timeout. Transport, node registry and messages stay Flower's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid
from flwr.supercore.run import Run

POLL_SECONDS = 0.1


class EngineStopped(Exception):
    """The engine behind the grid stopped: no reply can come any more."""


class BoundedGrid(Grid):
    """``inner`` with waits that end when ``stopped`` is set (see the module docstring)."""

    def __init__(self, inner: Grid, stopped: threading.Event) -> None:
        self.inner = inner
        self.stopped = stopped

    def set_run(self, run: Run) -> None:
        self.inner.set_run(run)

    @property
    def run(self) -> Run:
        return self.inner.run

    def create_message(
        self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str, ttl: float | None = None
    ) -> Message:
        return self.inner.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        self.check()
        return self.inner.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.inner.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.inner.pull_messages(message_ids)

    def check(self) -> None:
        """Raise :class:`EngineStopped` if the engine has stopped."""
        if self.stopped.is_set():
            raise EngineStopped("the engine stopped while the trial waited for it")

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        """Push ``messages``, then pull replies until all came, ``timeout`` passed, or the engine stopped."""
        self.check()
        waiting = set(self.inner.push_messages(messages))
        deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
        replies: list[Message] = []
        while waiting:
            pulled = list(self.inner.pull_messages(waiting))
            replies.extend(pulled)
            waiting.difference_update(m.metadata.reply_to_message_id for m in pulled)
            if not waiting or time.monotonic() >= deadline:
                break
            if self.stopped.wait(POLL_SECONDS):
                raise EngineStopped("the engine stopped while the trial waited for replies")
        return replies
