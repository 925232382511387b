"""A site whose node went away mid-round: Flower answers in its place, and the round goes on without it.

On the deployment engine a SuperNode that stops (killed, its machine or network gone) misses its
heartbeats; the SuperLink then answers each message sent to it with an error reply of its own
(``ErrorCode.NODE_UNAVAILABLE``, or ``REPLY_MESSAGE_UNAVAILABLE`` when the reply was lost), sent
from the SuperLink's node id, not the site's. Such a reply is no failure of the site's code and no
refusal: the governed strategy attributes it to the node the original message went to, records
the site as ``site-unavailable`` (audit entry ``update-rejected`` and the
``sandbox_updates_rejected_total{reason="site-unavailable"}`` counter; never an enforcement
violation), and aggregates the round from the others when ``min_participants`` allows; otherwise
the round is skipped and the previous global model kept.

Before each round's messages, :func:`require_sites_online` waits (bounded) for at least
``min_participants`` nodes: with fewer, Flower's sampling would wait for ever, so the trial halts
instead (``failed``, naming the round and how many sites were online).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from flwr.app import Message
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid

from sandbox.site_failures import SiteFailure, TrialFailed

__all__ = ["SITE_UNAVAILABLE", "SentMessages", "is_node_unavailable", "require_sites_online"]

SITE_UNAVAILABLE = "site-unavailable"
"""Rejection reason: the site's node stopped answering (Flower answered in its place)."""
_UNAVAILABLE_CODES = frozenset({ErrorCode.NODE_UNAVAILABLE, ErrorCode.REPLY_MESSAGE_UNAVAILABLE})


def is_node_unavailable(reply: Message) -> bool:
    """True for the SuperLink's reply in place of a node that went away."""
    return reply.has_error() and reply.error.code in _UNAVAILABLE_CODES


class SentMessages:
    """The messages of the current phase, to find which node a reply in its place was for."""

    def __init__(self) -> None:
        self._messages: list[Message] = []

    def remember(self, messages: Iterable[Message]) -> list[Message]:
        """Keep ``messages`` (Flower gives them their ids when it sends them) and return them."""
        self._messages = list(messages)
        return self._messages

    def node_of(self, reply: Message) -> int | None:
        """The node the message ``reply`` answers was sent to (None if it was not sent this phase)."""
        for message in self._messages:
            try:
                message_id = message.metadata.message_id
            except (KeyError, AttributeError):
                continue
            if message_id and message_id == reply.metadata.reply_to_message_id:
                return message.metadata.dst_node_id
        return None


def require_sites_online(
    grid: Grid, needed: int, *, server_round: int, phase: str, wait_seconds: float = 120.0, poll_seconds: float = 1.0
) -> None:
    """Return once ``needed`` nodes are connected; raise :class:`TrialFailed` after ``wait_seconds`` otherwise."""
    deadline = time.monotonic() + wait_seconds
    while (online := len(list(grid.get_node_ids()))) < needed:
        if time.monotonic() >= deadline:
            cause = (
                f"only {online} site(s) connected for {wait_seconds:.0f} s; the trial needs min_participants={needed}"
            )
            raise TrialFailed([SiteFailure("federation", phase, server_round, cause)])
        time.sleep(poll_seconds)
