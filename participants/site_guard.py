"""The site's own guard: a Flower ClientApp mod that checks every incoming message first.

The site trusts nothing the coordinator says about the trial without checking it:

1. the message carries the trial spec as canonical JSON; its SHA-256 must equal the spec hash
   the message names (so the site judges the very spec it is asked to serve);
2. the site's **own** policy (from its own node config, never from the trial or the message)
   must permit that spec: purpose and redlines, risk tier, validity (expiry), rounds, local
   epochs, DP noise floor and clipping ceiling, transfers to the aggregator's jurisdiction,
   approvals;
3. the round asked for must lie within the trial's rounds;
4. if the site's node config sets ``trusted_keys``, a signed approval must exist in its
   ``approvals_dir`` for this trial, signed by one of those keys, covering the message's verified
   spec hash and the site's current policy hash (:mod:`participants.approvals`). A site that sets
   no ``trusted_keys`` skips this check: it requires no signed approval.

A failing message gets a Flower error reply (``ErrorCode.MOD_FAILED_PRECONDITION``) with the
reason, never an exception, and the refusal is written to the site's own audit chain first. A
site that cannot read its own node config replies with a site-internal error instead
(:mod:`participants.site_replies`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from functools import lru_cache

from flwr.app import ConfigRecord, Context, Message, MessageType
from flwr.clientapp.typing import ClientAppCallable, Mod
from pydantic import ValidationError

from participants.approvals import check_site_approval
from participants.node_identity import resolve_site
from participants.record_values import RecordValueError, as_int, as_str
from participants.site_audit import append_site_entry
from participants.site_config import LoadedSiteConfig
from participants.site_replies import internal_error, refusal
from policies import ComposedPolicy, evaluate, load_policy
from trialcore import wire
from trialcore.clock import Clock, system_clock
from trialcore.errors import SandboxError
from trialcore.spec import TrialSpec
from trialcore.spec_facts import trial_facts

logger = logging.getLogger(__name__)

GUARDED_TYPES = (MessageType.TRAIN, MessageType.EVALUATE, MessageType.QUERY)


class Refused(Exception):
    """Why the guard refuses a message (turned into an error reply, never raised to Flower)."""


@lru_cache(maxsize=32)
def _cached_policy(path: str, mtime_ns: int, day: str) -> ComposedPolicy:
    return load_policy(path)


def site_policy(site: LoadedSiteConfig, clock: Clock = system_clock) -> ComposedPolicy:
    """The site's own composed policy, from the ``policy:`` of its node config (cached per file version and day)."""
    if not site.config.policy:
        raise Refused(f"site {site.config.site_id} has no policy in its node config; it takes part in no trial")
    path = site.resolve(site.config.policy)
    if clock is system_clock:
        return _cached_policy(str(path), path.stat().st_mtime_ns, clock().date().isoformat())
    return load_policy(path, clock=clock)


def verified_spec(config: ConfigRecord) -> TrialSpec:
    """The trial spec the message carries, after checking it against the spec hash it names."""
    try:
        spec_json = as_str(config, wire.SPEC_JSON)
        named_hash = as_str(config, wire.SPEC_HASH)
    except RecordValueError as err:
        raise Refused(f"message lacks the trial spec or its hash ({err})") from err
    if hashlib.sha256(spec_json.encode("utf-8")).hexdigest() != named_hash:
        raise Refused("the trial spec in the message does not match the spec hash it names")
    try:
        return TrialSpec.model_validate_json(spec_json)
    except ValidationError as err:
        raise Refused(f"the trial spec in the message is invalid ({err.error_count()} problems)") from err


def check_message(msg: Message, site: LoadedSiteConfig, *, clock: Clock = system_clock) -> TrialSpec:
    """Return the verified spec if the site's policy permits serving ``msg``; raise :class:`Refused` otherwise."""
    config = msg.content.config_records.get("config")
    if config is None:
        raise Refused("message carries no config record")
    spec = verified_spec(config)
    policy = site_policy(site, clock)
    verdict = evaluate(trial_facts(spec), {site.config.site_id: policy}, clock=clock)
    denials = [d for d in verdict.denials if d.site_id == site.config.site_id]
    if denials:
        raise Refused(
            "; ".join(
                f"{d.clause}: {d.reason} (found {d.value_found}; allowed {d.allowed}; {d.source_file})" for d in denials
            )
        )
    if msg.metadata.message_type != MessageType.QUERY:
        server_round = as_int(config, wire.SERVER_ROUND)
        if not 1 <= server_round <= spec.rounds:
            raise Refused(f"max-rounds: round {server_round} is outside the trial's {spec.rounds} rounds")
    approval = check_site_approval(site, trial_id=spec.trial_id, spec_hash=as_str(config, wire.SPEC_HASH))
    if not approval.ok:
        raise Refused(f"approval: {approval.reason} ({approval.path})")
    return spec


def make_site_guard(overrides: Mapping[str, object], clock: Clock = system_clock) -> Mod:
    """The guard mod for a ClientApp whose run settings include ``overrides``."""

    def site_guard(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
        if msg.metadata.message_type not in GUARDED_TYPES:
            return call_next(msg, context)
        settings: dict[str, object] = {**context.run_config, **overrides}
        try:
            site = resolve_site(context.node_config, settings)
        except SandboxError as err:
            logger.error("site cannot read its node config: %s", "; ".join(err.lines()))
            return internal_error(msg, None, "; ".join(err.lines()))
        try:
            check_message(msg, site, clock=clock)
        except (Refused, SandboxError, RecordValueError) as err:
            reason = "; ".join(err.lines()) if isinstance(err, SandboxError) else str(err)
            _audit_refusal(msg, site, context, settings, reason)
            logger.warning("site %s refused a %s message: %s", site.config.site_id, msg.metadata.message_type, reason)
            return refusal(msg, f"refused by site {site.config.site_id}: {reason}")
        return call_next(msg, context)

    return site_guard


def _audit_refusal(
    msg: Message, site: LoadedSiteConfig, context: Context, settings: Mapping[str, object], reason: str
) -> None:
    """Write the refusal to the site's own chain when the message names a usable trial id and spec hash."""
    config = msg.content.config_records.get("config")
    if config is None:
        return
    try:
        append_site_entry(
            site,
            config,
            run_id=context.run_id,
            settings=settings,
            event="refusal",
            payload={"message_type": str(msg.metadata.message_type), "reason": reason},
        )
    except (KeyError, TypeError, SandboxError) as err:
        logger.warning("refusal not audited (message names no usable trial id / spec hash): %s", err)
