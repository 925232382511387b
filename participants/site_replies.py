"""The two kinds of error reply a site sends instead of raising: a refusal, and a site-internal error.

A **refusal** (``ErrorCode.MOD_FAILED_PRECONDITION``) says the site will not serve the message: its
policy, its privacy budget or a small cell forbid it. A **site-internal error**
(``ErrorCode.CLIENT_APP_RAISED_EXCEPTION``, reason starting with
:data:`trialcore.wire.SITE_INTERNAL_ERROR_PREFIX`) says it cannot: its node config or data cannot be
read, its data does not fit the trial's model, or its code failed. The coordinator counts a refusal
and goes on; a site-internal error fails the trial. :func:`answered` wraps every message handler
so that an exception becomes a site-internal error naming its type, never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from flwr.app import Context, Error, Message
from flwr.common.constant import ErrorCode

from participants.node_identity import resolve_site
from trialcore import wire

logger = logging.getLogger(__name__)

Handler = Callable[[Message, Context, Mapping[str, object]], Message]
"""A message handler given the run settings fixed in the app (``train_handler`` and the others)."""


def refusal(msg: Message, reason: str) -> Message:
    """The error reply of a site that will not serve ``msg``."""
    return Message(Error(code=ErrorCode.MOD_FAILED_PRECONDITION, reason=reason), reply_to=msg)


def internal_error(msg: Message, site_id: str | None, cause: str) -> Message:
    """The error reply of a site that cannot serve ``msg``: ``site-internal-error: site <id>: <cause>``.

    ``site_id`` is None when the site cannot tell who it is (its node config is unreadable).
    """
    who = f"site {site_id}" if site_id else "a site that cannot read its node config"
    return Message(
        Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=f"{wire.SITE_INTERNAL_ERROR_PREFIX} {who}: {cause}"),
        reply_to=msg,
    )


def answered(handler: Handler, msg: Message, context: Context, overrides: Mapping[str, object]) -> Message:
    """``handler``'s reply; if it raises, a site-internal error naming the exception's type (never its text).

    An exception's text may quote a record, so only its type leaves the site; the traceback goes
    to the site's own log.
    """
    try:
        return handler(msg, context, overrides)
    except Exception as err:
        site_id = _site_id_or_none(context, overrides)
        logger.exception("site %s: the %s handler raised", site_id or "(unnamed)", msg.metadata.message_type)
        return internal_error(
            msg, site_id, f"{type(err).__name__} raised while handling a {msg.metadata.message_type} message"
        )


def _site_id_or_none(context: Context, overrides: Mapping[str, object]) -> str | None:
    try:
        return resolve_site(context.node_config, {**context.run_config, **overrides}).config.site_id
    except Exception:  # the site cannot name itself: say so rather than fail again
        return None
