"""The value types of policy fields: vocabulary terms, country codes, numbers, dates.

Each type is an ``Annotated`` pydantic type whose validator explains a bad value in one
line a user can act on, listing the allowed terms (the vocabulary is
:mod:`policies.vocabulary`). Numbers are never booleans and always finite; jurisdictions
are ISO 3166-1 alpha-2 (an unquoted ``NO`` - YAML 1.1 reads it as false - is explained);
dates accept ``today``, ``today-Nd`` and ``today+Nd`` resolved against the ``today`` in
the validation context (see :mod:`trialcore.clock`).
"""

from __future__ import annotations

import math
from datetime import date
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo

from policies.iso3166 import jurisdiction_problem
from policies.vocabulary import vocabulary
from trialcore.clock import resolve_relative_date, system_clock, utc_today

__all__ = [
    "DataCategory",
    "Jurisdiction",
    "Mechanism",
    "NonNegativeFloat",
    "PolicyDate",
    "PositiveFloat",
    "Probability",
    "RiskTier",
    "SpecialCategory",
    "Terms",
    "Text",
    "unique",
]


def _listing(terms: Any) -> str:
    return ", ".join(terms)


def _purpose(term: str) -> str:
    if term not in vocabulary().purposes:
        raise ValueError(f"unknown purpose term; allowed terms: {_listing(vocabulary().purposes)}")
    return term


def _risk_tier(term: str) -> str:
    vocab = vocabulary()
    allowed = _listing(vocab.permissible_risk_tiers)
    if term in vocab.prohibited_risk_tiers:
        raise ValueError(f"never allowed (AI Act Art. 5 prohibited practices); allowed: {allowed}")
    if term not in vocab.risk_tiers:
        raise ValueError(f"unknown risk tier; allowed: {allowed}")
    return term


def _data_category(term: str) -> str:
    if term not in vocabulary().data_categories:
        raise ValueError(f"unknown data category; allowed: {_listing(vocabulary().data_categories)}")
    return term


def _special_category(term: str) -> str:
    special = vocabulary().special_categories
    if term not in special:
        raise ValueError(f"not a special category; a legal basis is named for: {_listing(sorted(special))}")
    return term


def _mechanism(term: str) -> str:
    if term not in vocabulary().transfer_mechanisms:
        raise ValueError(f"unknown transfer mechanism; allowed: {_listing(vocabulary().transfer_mechanisms)}")
    return term


def _jurisdiction(code: str) -> str:
    problem = jurisdiction_problem(code)
    if problem is not None:
        raise ValueError(problem)
    return code


def _norway(value: object) -> object:
    if value is False:
        raise ValueError('an unquoted NO is read by YAML 1.1 as false; write Norway as "NO"')
    return value


def _number(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def unique(items: tuple[str, ...]) -> tuple[str, ...]:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            raise ValueError(f"{item!r} is listed twice")
        seen.add(item)
    return items


def _policy_date(value: object, info: ValidationInfo) -> object:
    """Resolve ``today``, ``today-30d``, ``today+365d`` against the load-time clock."""
    if isinstance(value, str):
        context = info.context if isinstance(info.context, dict) else {}
        today = context.get("today")
        resolved = resolve_relative_date(value, today if isinstance(today, date) else utc_today(system_clock))
        if resolved is not None:
            return resolved
    return value


Purpose = Annotated[str, AfterValidator(_purpose)]
RiskTier = Annotated[str, AfterValidator(_risk_tier)]
DataCategory = Annotated[str, AfterValidator(_data_category)]
SpecialCategory = Annotated[str, AfterValidator(_special_category)]
Mechanism = Annotated[str, AfterValidator(_mechanism)]
Jurisdiction = Annotated[str, BeforeValidator(_norway), AfterValidator(_jurisdiction)]
PositiveFloat = Annotated[float, BeforeValidator(_number), AfterValidator(_finite), Field(gt=0)]
NonNegativeFloat = Annotated[float, BeforeValidator(_number), AfterValidator(_finite), Field(ge=0)]
PolicyDate = Annotated[date, BeforeValidator(_policy_date)]
Probability = Annotated[float, BeforeValidator(_number), AfterValidator(_finite), Field(gt=0, lt=1)]
Text = Annotated[str, Field(min_length=1, max_length=200)]
Terms = Annotated[tuple[Purpose, ...], AfterValidator(unique)]
