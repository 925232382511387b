"""A message as a coordinator sends it to one site, for tests that call the real ClientApp directly."""

from __future__ import annotations

import time

from flwr.app import Message, RecordDict
from flwr.app.message.message import make_message
from flwr.app.metadata import Metadata


def coordinator_message(message_type: str, content: RecordDict, *, message_id: str = "m1") -> Message:
    """A Flower message of ``message_type`` from the coordinator (node 0) to site node 5, run 1."""
    metadata = Metadata(
        run_id=1,
        message_id=message_id,
        src_node_id=0,
        dst_node_id=5,
        reply_to_message_id="",
        group_id="1",
        created_at=time.time(),
        ttl=3600,
        message_type=message_type,
    )
    return make_message(metadata=metadata, content=content)
