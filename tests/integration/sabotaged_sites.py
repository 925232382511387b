"""A ClientApp in which one site misbehaves in training, round by round, for the bad-site tests.

Not a test module (no ``test_`` prefix). The app is the real one (:mod:`participants.client_app`)
except that the chosen site's train reply is tampered with after honest training, as a faulty or
malicious site would: its arrays become NaN, +/-Inf, the wrong shape or scaled by 1e6, or the
site refuses with an error reply. The app travels to Flower's simulated sites (Ray workers), which
import this module by name: the repo root must be on their ``PYTHONPATH``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import ErrorCode

from participants.client_app import make_client_app, train_handler
from participants.record_values import as_int
from trialcore import wire

REFUSE = "refuse"
SABOTAGE_KINDS = ("nan", "inf", "wrong-shape", "scale-1e6")
"""What the bad site can do to its update; plus ``refuse`` (an error reply instead of an update)."""


def tampered(arrays: ArrayRecord, kind: str) -> ArrayRecord:
    """``arrays`` after the sabotage ``kind``."""
    values = {key: array.numpy().copy() for key, array in arrays.items()}
    first = next(iter(values))
    if kind == "nan":
        values[first].flat[0] = np.nan
    elif kind == "inf":
        values[first].flat[0], values[first].flat[1] = np.inf, -np.inf
    elif kind == "wrong-shape":
        values[first] = np.zeros((values[first].size + 1,), dtype=values[first].dtype)
    elif kind == "scale-1e6":
        values = {key: value * value.dtype.type(1e6) for key, value in values.items()}
    else:
        raise ValueError(f"unknown sabotage {kind!r}")
    return ArrayRecord({key: Array(value) for key, value in values.items()})


def sabotaged_train(
    msg: Message, context: Context, overrides: Mapping[str, object], *, site_id: str, plan: Mapping[int, str]
) -> Message:
    """The real train handler, except that ``site_id`` does ``plan[server round]`` to its reply."""
    reply = train_handler(msg, context, overrides)
    if reply.has_error() or str(reply.content.config_records[wire.SITE_RECORD]["site-id"]) != site_id:
        return reply
    kind = plan.get(as_int(msg.content.config_records["config"], "server-round"))
    if kind is None:
        return reply
    if kind == REFUSE:
        return Message(
            Error(code=ErrorCode.MOD_FAILED_PRECONDITION, reason="test: this site refuses to train"), reply_to=msg
        )
    content = RecordDict(
        {
            "arrays": tampered(reply.content.array_records["arrays"], kind),
            "metrics": reply.content.metric_records["metrics"],
            wire.SITE_RECORD: reply.content.config_records[wire.SITE_RECORD],
        }
    )
    return Message(content=content, reply_to=msg)


def make_sabotaged_client_app(overrides: Mapping[str, object], *, site_id: str, plan: Mapping[int, str]) -> ClientApp:
    """The real ClientApp (guard included), except that ``site_id`` does ``plan[server round]`` to its train reply.

    Rounds missing from ``plan`` are honest.
    """
    return make_client_app(overrides, train=partial(sabotaged_train, site_id=site_id, plan=dict(plan)))
