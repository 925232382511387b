"""The site's own guard: a Flower ClientApp mod that checks every incoming message first.

The site trusts nothing the coordinator says about the trial without checking it:

0. the message type must be one the site serves, by its full type
   (:data:`trialcore.wire.SERVED_MESSAGE_TYPES`: ``train``, ``train.default``, ...); Flower
   routes both spellings of a category to the same handler, so anything else is refused;
1. the message carries the trial spec as canonical JSON; its SHA-256 must equal the spec hash
   the message names (so the site judges the very spec it is asked to serve);
2. the site's **own** policy (from its own node config, never from the trial or the message)
   must permit that spec: purpose and redlines, risk tier, validity (expiry), rounds, local
   epochs, DP noise floor and clipping ceiling, transfers to the aggregator's jurisdiction,
   approvals;
3. the spec must list the site under its own id and its own jurisdiction (from its node config);
   the round asked for must lie within the trial's rounds;
4. if the site's node config sets ``trusted_keys``, a signed approval must exist in its
   ``approvals_dir`` for this trial, signed by one of those keys, covering the message's verified
   spec hash and the site's current policy hash (:mod:`participants.approvals`). A site that sets
   no ``trusted_keys`` skips this check: it requires no signed approval.

5. each question (trial, kind, round) is answered once (:mod:`participants.question_book`).

6. a trial the site withdrew from (``participants withdraw``, :mod:`participants.withdrawal`) is
   refused from the next message on, whatever the message says.

A failing message gets a Flower error reply (``ErrorCode.MOD_FAILED_PRECONDITION``) with the
reason, never an exception, and the refusal is written to the site's own audit chain first. A
site that cannot read its own node config replies with a site-internal error instead
(:mod:`participants.site_replies`).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Mapping
from functools import lru_cache

from flwr.app import ConfigRecord, Context, Error, Message
from flwr.clientapp.typing import ClientAppCallable, Mod
from flwr.common.constant import ErrorCode
from pydantic import ValidationError

from participants import verified_specs
from participants.approvals import check_site_approval, policy_hash
from participants.node_identity import resolve_site
from participants.question_book import Question, QuestionBook, decode_reply, request_digest
from participants.record_values import RecordValueError, as_int, as_str
from participants.site_audit import UNVERIFIED_TRIAL, append_site_entry, append_unverified_entry, site_state_dir
from participants.site_config import LoadedSiteConfig
from participants.site_replies import internal_error, refusal
from participants.withdrawal import withdrawal_of
from policies import ComposedPolicy, evaluate, load_policy
from trialcore import wire
from trialcore.clock import Clock, system_clock
from trialcore.errors import SandboxError
from trialcore.facts import SiteFacts
from trialcore.spec import TrialSpec
from trialcore.spec_facts import trial_facts

logger = logging.getLogger(__name__)


class Refused(Exception):
    """Why the guard refuses a message (turned into an error reply, never raised to Flower)."""


@lru_cache(maxsize=32)
def _cached_policy(path: str, text_hash: str, day: str) -> ComposedPolicy:
    return load_policy(path)


def site_policy(site: LoadedSiteConfig, clock: Clock = system_clock) -> ComposedPolicy:
    """The site's own composed policy, from the ``policy:`` of its node config.

    Cached per day and per :func:`~participants.approvals.policy_hash`, which covers every file
    of the policy's ``extends`` chain (country and preset layers too): an edit to any layer is
    seen at the next message.
    """
    if not site.config.policy:
        raise Refused(f"site {site.config.site_id} has no policy in its node config; it takes part in no trial")
    path = site.resolve(site.config.policy)
    if clock is system_clock:
        return _cached_policy(str(path), policy_hash(path), clock().date().isoformat())
    return load_policy(path, clock=clock)


def verified_spec(config: ConfigRecord) -> TrialSpec:
    """The trial spec the message carries, after checking it against the spec hash it names.

    The text is hashed for every message; a text whose hash this process already validated is not
    parsed again (:mod:`participants.verified_specs`).
    """
    try:
        spec_json = as_str(config, wire.SPEC_JSON)
        named_hash = as_str(config, wire.SPEC_HASH)
    except RecordValueError as err:
        raise Refused(f"message lacks the trial spec or its hash ({err})") from err
    if hashlib.sha256(spec_json.encode("utf-8")).hexdigest() != named_hash:
        raise Refused("the trial spec in the message does not match the spec hash it names")
    known = verified_specs.recall(named_hash)
    if known is not None:  # this very text (same SHA-256) validated before: see participants.verified_specs
        return known
    try:
        spec = TrialSpec.model_validate_json(spec_json)
    except ValidationError as err:
        raise Refused(f"the trial spec in the message is invalid ({err.error_count()} problems)") from err
    verified_specs.remember(named_hash, spec)
    return spec


def served_kind(message_type: str) -> str | None:
    """The kind (``train``, ``evaluate``, ``query``) of a full message type the site serves; None for any other."""
    return wire.SERVED_MESSAGE_TYPES.get(message_type)


def check_message(msg: Message, site: LoadedSiteConfig, *, clock: Clock = system_clock) -> TrialSpec:
    """Return the verified spec if the site's policy permits serving ``msg``; raise :class:`Refused` otherwise.

    Raises
    ------
    Unverified
        When the message names no spec the site can verify (no trial to audit the refusal under).
    Refused
        When the verified spec, the site's own policy, the round or the approval forbid serving it.
    """
    kind = served_kind(msg.metadata.message_type)
    if kind is None:
        raise Unverified(
            f"{wire.MESSAGE_TYPE_CLAUSE}: message type {msg.metadata.message_type[:80]!r} is not one the site serves "
            f"(allowed: {', '.join(sorted(wire.SERVED_MESSAGE_TYPES))})"
        )
    config = msg.content.config_records.get(wire.CONFIG_RECORD)
    if config is None:
        raise Unverified("message carries no config record")
    try:
        spec = verified_spec(config)
    except Refused as err:
        raise Unverified(str(err)) from err
    if spec.trial_id == UNVERIFIED_TRIAL:
        raise Unverified(
            f"trial id {spec.trial_id!r} names the site's chain of unverified messages; it serves no such trial"
        )
    own = site.config
    listed = {p.site_id: p.jurisdiction for p in spec.participants}
    if own.site_id not in listed:
        raise Refused(f"{wire.PARTICIPANTS_CLAUSE}: the trial does not list site {own.site_id}; it serves no message")
    if listed[own.site_id] != own.jurisdiction:
        raise Refused(
            f"{wire.PARTICIPANTS_CLAUSE}: the trial lists site {own.site_id} in {listed[own.site_id]}, "
            f"but the site is in {own.jurisdiction}"
        )
    withdrawn = withdrawal_of(site, spec.trial_id)
    if withdrawn is not None:
        raise Refused(
            f"{wire.WITHDRAWN_PREFIX} site {own.site_id} withdrew from trial {spec.trial_id} at "
            f"{withdrawn.withdrawn_at}: {withdrawn.reason[:200]}"
        )
    policy = site_policy(site, clock)
    own_facts = trial_facts(spec, sites=[SiteFacts(own.site_id, own.jurisdiction)])  # the site judges only itself
    verdict = evaluate(own_facts, {own.site_id: policy}, clock=clock)
    denials = [d for d in verdict.denials if d.site_id == own.site_id]
    if denials:
        raise Refused(
            "; ".join(
                f"{d.clause}: {d.reason} (found {d.value_found}; allowed {d.allowed}; {d.source_file})" for d in denials
            )
        )
    if kind != "query":
        server_round = as_int(config, wire.SERVER_ROUND)
        if not 1 <= server_round <= spec.rounds:
            raise Refused(f"max-rounds: round {server_round} is outside the trial's {spec.rounds} rounds")
    for key in (wire.FEATURE_MEAN, wire.FEATURE_STD, wire.FEATURE_MEDIAN):
        values = config.get(key)
        if isinstance(values, list) and not all(math.isfinite(v) for v in values if isinstance(v, (int, float))):
            raise Refused(f"{wire.FEATURE_SCALING_CLAUSE}: {key} holds a value that is not finite")
    approval = check_site_approval(site, trial_id=spec.trial_id, spec_hash=as_str(config, wire.SPEC_HASH))
    if not approval.ok:
        raise Refused(f"approval: {approval.reason} ({approval.path})")
    return spec


class Unverified(Refused):
    """A refusal of a message that names no trial the site could verify (audited in the unverified chain)."""


def make_site_guard(overrides: Mapping[str, object], clock: Clock = system_clock) -> Mod:
    """The guard mod for a ClientApp whose run settings include ``overrides``.

    Every message goes through it: a type outside :data:`trialcore.wire.SERVED_MESSAGE_TYPES`
    is refused before any handler runs, and so is a second question of a kind in a round
    (:mod:`participants.question_book`).
    """

    def site_guard(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
        settings: dict[str, object] = {**context.run_config, **overrides}
        try:
            site = resolve_site(context.node_config, settings)
        except SandboxError as err:
            logger.error("site cannot read its node config: %s", "; ".join(err.lines()))
            return internal_error(msg, None, "; ".join(err.lines()))
        try:
            spec = check_message(msg, site, clock=clock)
        except (Refused, SandboxError, RecordValueError) as err:
            reason = "; ".join(err.lines()) if isinstance(err, SandboxError) else str(err)
            _audit_refusal(msg, site, context, settings, reason, verified=not isinstance(err, Unverified))
            logger.warning(
                "site %s refused a %s message: %s", site.config.site_id, msg.metadata.message_type[:80], reason
            )
            return refusal(msg, f"{wire.GUARD_REFUSAL_PREFIX} {site.config.site_id}: {reason}")
        return answer_once(msg, context, call_next, site=site, spec=spec, settings=settings)

    return site_guard


def answer_once(
    msg: Message,
    context: Context,
    call_next: ClientAppCallable,
    *,
    site: LoadedSiteConfig,
    spec: TrialSpec,
    settings: Mapping[str, object],
) -> Message:
    """Answer ``msg`` through ``call_next`` if its question (kind, round) is still open; see :mod:`question_book`."""
    kind = served_kind(msg.metadata.message_type) or ""
    config = msg.content.config_records[wire.CONFIG_RECORD]
    server_round = 0 if kind == "query" else as_int(config, wire.SERVER_ROUND)
    question = Question(kind, server_round, request_digest(msg, kind=kind, server_round=server_round))
    spec_hash = as_str(config, wire.SPEC_HASH)
    book = QuestionBook(site_state_dir(site, trial_id=spec.trial_id, run_id=context.run_id, settings=settings))

    def audit(event: str, payload: dict[str, object]) -> None:
        append_site_entry(
            site,
            config,
            trial_id=spec.trial_id,
            spec_hash=spec_hash,
            run_id=context.run_id,
            settings=settings,
            event=event,
            payload={"message_type": kind, "round": server_round, **payload},
        )

    with book.locked():
        entry = book.entry(question)
        if entry is not None and entry["digest"] != question.digest:
            what = "feature query of this trial" if kind == "query" else f"{kind} question of round {server_round}"
            reason = (
                f"{wire.QUESTION_BUDGET_CLAUSE}: the site already answered the {what}; "
                "a site answers each question once"
            )
            audit("refusal", {"reason": reason, "answered_digest": entry["digest"], "digest": question.digest})
            logger.warning("site %s refused a repeated %s question: %s", site.config.site_id, kind, reason)
            return refusal(msg, f"{wire.GUARD_REFUSAL_PREFIX} {site.config.site_id}: {reason}")
        if entry is not None and entry["state"] in ("answered", "refused"):
            audit("question-repeated", {"digest": question.digest, "state": entry["state"]})
            if entry["state"] == "refused":
                code = int(entry.get("code", ErrorCode.MOD_FAILED_PRECONDITION))
                return Message(Error(code=code, reason=entry["reply"]), reply_to=msg)
            return Message(content=decode_reply(entry["reply"]), reply_to=msg)
        book.reserve(question)
        reply = call_next(msg, context)
        book.answer(question, reply)
        return reply


def _audit_refusal(
    msg: Message,
    site: LoadedSiteConfig,
    context: Context,
    settings: Mapping[str, object],
    reason: str,
    *,
    verified: bool,
) -> None:
    """Write the refusal to the site's chain of the verified trial, or to its chain of unverified messages."""
    payload = {"message_type": msg.metadata.message_type[:80], "reason": reason}
    try:
        if verified:
            config = msg.content.config_records[wire.CONFIG_RECORD]
            spec = verified_spec(config)
            append_site_entry(
                site,
                config,
                trial_id=spec.trial_id,
                spec_hash=as_str(config, wire.SPEC_HASH),
                run_id=context.run_id,
                settings=settings,
                event="refusal",
                payload=payload,
            )
        else:
            append_unverified_entry(site, run_id=context.run_id, settings=settings, event="refusal", payload=payload)
    except (KeyError, ValueError, Refused, SandboxError, OSError) as err:
        logger.error("refusal not audited: %s", err)
