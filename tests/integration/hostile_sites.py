"""ClientApps in which one site never answers, or dies after charging its ledger, for issue 18's tests.

Not a test module. The apps are the real one (:mod:`participants.client_app`, guard included)
with one handler of the chosen site replaced. They travel to Flower's simulated sites (Ray
workers), which import this module by name: the repo root must be on their ``PYTHONPATH``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import partial

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from participants.client_app import make_client_app, query_handler, train_handler
from participants.record_values import as_int
from trialcore import wire

SILENCE_SECONDS = 3600.0
"""How long the silent site sleeps in its handler: far beyond any bound a test sets."""


def _site_of(reply: Message) -> str | None:
    if reply.has_error():
        return None
    return str(reply.content.config_records[wire.SITE_RECORD][wire.SITE_ID])


def silent_query(msg: Message, context: Context, overrides: Mapping[str, object], *, site_id: str) -> Message:
    """The real feature query handler, except that ``site_id`` never answers (it sleeps in the handler)."""
    reply = query_handler(msg, context, overrides)
    if _site_of(reply) == site_id:
        time.sleep(SILENCE_SECONDS)
    return reply


def make_silent_client_app(overrides: Mapping[str, object], *, site_id: str) -> ClientApp:
    """The real ClientApp, except that ``site_id`` never answers the feature query before round 1."""
    return make_client_app(overrides, query=partial(silent_query, site_id=site_id))


class CrashedAfterCharge(RuntimeError):
    """The site died after charging its ledger for the round, before its reply left."""


def crash_after_charge(
    msg: Message, context: Context, overrides: Mapping[str, object], *, site_id: str, server_round: int
) -> Message:
    """The real train handler (which charges the ledger), then ``site_id`` crashes in ``server_round``: no reply."""
    reply = train_handler(msg, context, overrides)
    config = msg.content.config_records[wire.CONFIG_RECORD]
    if _site_of(reply) == site_id and as_int(config, wire.SERVER_ROUND) == server_round:
        raise CrashedAfterCharge(f"test: {site_id} crashed after charging round {server_round}")
    return reply


def make_crashing_client_app(overrides: Mapping[str, object], *, site_id: str, server_round: int) -> ClientApp:
    """The real ClientApp, except that ``site_id`` crashes after its charge for ``server_round``."""
    return make_client_app(overrides, train=partial(crash_after_charge, site_id=site_id, server_round=server_round))
