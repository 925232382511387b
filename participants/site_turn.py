"""One message at a site: who the site is, its data, the verified spec, its policy, and the checks every handler shares.

A handler opens a :class:`SiteTurn` with :func:`open_turn` (or :func:`open_train_part_turn`), which
refuses with an error reply a site that cannot take part or a message it must not answer. Every
value a handler uses comes from here: the verified spec, the site's own state and policy.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flwr.app import ConfigRecord, Context, Message
from torch import nn

from participants.contract_data import ContractSiteData, load_site_records
from participants.model import build_model
from participants.node_identity import resolve_site
from participants.record_values import RecordValueError, as_floats, as_str
from participants.released_values import ScalingRefused, pinned_min_cohort, pinned_scaling
from participants.site_audit import append_site_entry, site_state_dir
from participants.site_config import LoadedSiteConfig
from participants.site_data import SiteData
from participants.site_guard import Refused, site_policy, verified_spec
from participants.site_replies import internal_error, refusal
from policies import ComposedPolicy
from trialcore import layout, wire
from trialcore.errors import SandboxError
from trialcore.feature_statistics import FeatureStatistics, federated_scaling, statistics_problem
from trialcore.spec import TrialSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SiteTurn:
    """One message handled at this site: who the site is, its data, the verified trial spec, its own policy."""

    site: LoadedSiteConfig
    data: SiteData | ContractSiteData
    config: ConfigRecord
    spec: TrialSpec
    policy: ComposedPolicy
    run_id: int
    settings: Mapping[str, object]

    @property
    def spec_hash(self) -> str:
        """The hash of the verified spec (the guard checked the spec against it)."""
        return as_str(self.config, wire.SPEC_HASH)

    @property
    def folder(self) -> Path:
        """The site's own folder for this trial (named by the verified spec's trial id)."""
        return site_state_dir(self.site, trial_id=self.spec.trial_id, run_id=self.run_id, settings=self.settings)

    def record(self, event: str, payload: dict[str, Any]) -> ConfigRecord:
        """Append ``event`` to the site's own chain first; return the reply's site record."""
        return append_site_entry(
            self.site,
            self.config,
            trial_id=self.spec.trial_id,
            spec_hash=self.spec_hash,
            run_id=self.run_id,
            settings=self.settings,
            event=event,
            payload=payload,
        )

    @property
    def min_cohort_size(self) -> int:
        """The larger of the site's own minimum cohort and the one the message asks for."""
        asked = self.config.get(wire.MIN_COHORT_SIZE)
        return max(self.policy.min_cohort_size, asked if isinstance(asked, int) else 0)

    @property
    def count_granularity(self) -> int:
        """Released record counts are rounded down to a multiple of this (the site's policy; default 10)."""
        return self.policy.count_granularity

    def below_cohort(self, count: int) -> bool:
        """True if ``count`` records are fewer than the minimum cohort (the asked one is pinned per trial)."""
        return count < self.min_cohort_size

    def small_cell_refusal(self, msg: Message, count: int, what: str) -> Message | None:
        """An error reply (audited) if a statistic would describe fewer records than the minimum cohort."""
        if not self.below_cohort(count):
            return None
        reason = f"{wire.SMALL_CELL_PREFIX} {what} holds fewer records than the minimum cohort of {self.min_cohort_size}; nothing released"
        self.record("statistics-withheld", {"what": what, "min_cohort_size": self.min_cohort_size})
        return refusal(msg, reason)


def open_turn(msg: Message, context: Context, overrides: Mapping[str, object]) -> SiteTurn | Message:
    """Load this node's site, data, the spec the guard verified and the site's policy, or an error reply.

    A site that cannot read its node config, its data or its policy files, or whose data does not
    fit the trial's model, replies with a site-internal error; a spec it cannot verify or a missing
    policy is a refusal.
    """
    settings: dict[str, object] = {**context.run_config, **overrides}
    config = msg.content.config_records[wire.CONFIG_RECORD]
    try:
        site = resolve_site(context.node_config, settings)
    except SandboxError as err:
        return cannot_take_part(msg, None, "; ".join(err.lines()))
    try:
        spec = verified_spec(config)
        data = load_site_records(site, spec.data)
        policy = site_policy(site)
    except SandboxError as err:
        return cannot_take_part(msg, site.config.site_id, "; ".join(err.lines()))
    except Refused as err:
        logger.warning("site %s cannot take part: %s", site.config.site_id, err)
        return refusal(msg, str(err))
    if data.num_features != spec.model.input_features:
        cause = (
            f"its data has {data.num_features} features but the trial's model takes "
            f"{spec.model.input_features} (model.input_features)"
        )
        return cannot_take_part(msg, site.config.site_id, cause)
    turn = SiteTurn(
        site=site, data=data, config=config, spec=spec, policy=policy, run_id=context.run_id, settings=settings
    )
    asked = config.get(wire.MIN_COHORT_SIZE)
    try:
        pinned_min_cohort(turn.folder, asked if isinstance(asked, int) and not isinstance(asked, bool) else 0)
    except ScalingRefused as err:
        reason = f"{wire.GUARD_REFUSAL_PREFIX} {site.config.site_id}: min-cohort: {err}"
        turn.record("refusal", {"reason": reason})
        return refusal(msg, reason)
    return turn


def cannot_take_part(msg: Message, site_id: str | None, cause: str) -> Message:
    logger.error("site %s cannot take part: %s", site_id or "(unnamed)", cause)
    return internal_error(msg, site_id, cause)


def open_train_part_turn(msg: Message, context: Context, overrides: Mapping[str, object]) -> SiteTurn | Message:
    """:func:`open_turn` for a message about the train part: refused if that part is a small cell."""
    turn = open_turn(msg, context, overrides)
    if isinstance(turn, Message):
        return turn
    return turn.small_cell_refusal(msg, turn.data.num_train, "the train part") or turn


def standardised(msg: Message, turn: SiteTurn) -> SiteData | Message:
    """The site's model input, standardised as the trial says; else a refusal.

    Without a contract, the site scales by its own train part's mean and standard deviation.
    Under a contract, the rows are imputed, one-hot coded and scaled
    (:meth:`~participants.contract_data.ContractSiteData.prepared`) with the statistics in force:
    under ``per-site`` normalisation the site's own (nothing about them leaves the site; the
    message's are ignored); under ``federated`` the message's (the federation's, from the noised
    feature statistics), **checked** against the contract (finite, within its ranges,
    :func:`~trialcore.feature_statistics.statistics_problem`) and pinned for the trial: a
    coordinator cannot steer a site's input by what it sends.
    """
    data = turn.data
    if not isinstance(data, ContractSiteData):
        return data.standardised(*data.own_scaling())
    if not federated_scaling(turn.spec):
        return data.prepared(data.own_statistics())
    try:
        mean = as_floats(turn.config, wire.FEATURE_MEAN)
        # Without impute-median features the medians are not used; a message without them imputes no median.
        median = as_floats(turn.config, wire.FEATURE_MEDIAN) if wire.FEATURE_MEDIAN in turn.config else mean
        statistics = FeatureStatistics(mean, as_floats(turn.config, wire.FEATURE_STD), median)
        problem = None if layout.scaling_file(turn.folder).exists() else statistics_problem(data.contract, statistics)
        if problem is not None:  # first use: checked against the contract; later: compared with the pinned one
            raise ScalingRefused(problem)
        pinned_scaling(
            turn.folder,
            statistics.mean,
            statistics.std,
            num_features=len(data.contract.numeric_features),
            median=statistics.median,
        )
    except (ScalingRefused, RecordValueError) as err:
        reason = f"{wire.GUARD_REFUSAL_PREFIX} {turn.site.config.site_id}: {wire.FEATURE_SCALING_CLAUSE}: {err}"
        turn.record("refusal", {"reason": reason})
        return refusal(msg, reason)
    return data.prepared(statistics)


def model_from_message(msg: Message, turn: SiteTurn, data: SiteData) -> nn.Module:
    """The trial's model with the message's arrays loaded."""
    model = build_model(turn.spec.model.name, num_features=data.num_features, hidden_units=turn.spec.model.hidden_units)
    model.load_state_dict(msg.content.array_records[wire.ARRAYS_RECORD].to_torch_state_dict())
    return model
