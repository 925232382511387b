"""The two kinds of error reply a site sends instead of raising: a refusal, and a site-internal error.

A **refusal** (``ErrorCode.MOD_FAILED_PRECONDITION``) says the site will not serve the message: its
policy, its privacy budget or a small cell forbid it. A **site-internal error**
(``ErrorCode.CLIENT_APP_RAISED_EXCEPTION``, reason starting with
:data:`trialcore.wire.SITE_INTERNAL_ERROR_PREFIX`) says it cannot: its node config or data cannot be
read, its data does not fit the trial's model, or its code failed. The coordinator counts a refusal
and goes on; a site-internal error fails the trial.
"""

from __future__ import annotations

from flwr.app import Error, Message
from flwr.common.constant import ErrorCode

from trialcore import wire


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
