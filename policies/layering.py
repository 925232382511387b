"""Layering along one site's chain: region preset → country → institution.

``compose_chain`` folds the layers root first. The root sets the starting values (and
defaults fill what it leaves out); each lower layer may only *tighten* what the layers
above it set, in the direction :mod:`policies.rules` gives for the field. A lower
layer that loosens anything is refused with a :class:`~trialcore.errors.LooseningError`
whose every problem names both files, the field and both values::

    examples/policies/institutions/x.yaml: privacy.epsilon_budget: found 20.0; must not
    loosen 8.0 set by policies/presets/eu-gdpr-ai-act.yaml (lower layers may only tighten)

The vocabulary's redlines are added to every chain, and any purpose a layer makes a
redline is removed from the allowed purposes. The function is pure: same layers, same
result, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from policies.composed import ComposedPolicy
from policies.errors import LooseningError, PolicyFileError
from policies.rules import DEFAULT_SOURCE, FIELD_RULES, FieldRule, Kind, render
from policies.schema import PolicyLayer
from policies.vocabulary import VOCABULARY_SOURCE, vocabulary
from trialcore.errors import Problem

__all__ = ["LoadedLayer", "compose_chain", "missing_at_root"]

_TIGHTEN_ONLY = "(lower layers may only tighten)"


@dataclass(frozen=True)
class LoadedLayer:
    """One validated policy file and how to name it in messages (the path as given)."""

    source: str
    layer: PolicyLayer


def missing_at_root(layer: PolicyLayer) -> list[str]:
    """Dotted paths a root layer (no ``extends``) must set but does not."""
    return [rule.path for rule in FIELD_RULES if rule.required_at_root and rule.read(layer) is None]


def compose_chain(layers: Sequence[LoadedLayer]) -> ComposedPolicy:
    """Fold one site's layers, root first, into its effective policy.

    Parameters
    ----------
    layers:
        Root layer first (the preset), the site's own file last.

    Raises
    ------
    PolicyFileError
        If the root layer lacks a required field.
    LooseningError
        Listing every field any lower layer loosens.
    """
    if not layers:
        raise ValueError("compose_chain needs at least one layer")
    root = layers[0]
    missing = missing_at_root(root.layer)
    if missing:
        raise PolicyFileError(
            f"Root policy layer {root.source!r} is incomplete",
            [Problem(root.source, path, "", "required in a root layer (a file without extends)") for path in missing],
        )
    values: dict[str, Any] = {}
    prov: dict[str, str] = {}
    terms: dict[str, dict[str, str]] = {}
    for rule in FIELD_RULES:
        raw = rule.read(root.layer)
        value = (None if rule.default is None else rule.normalise(rule.default)) if raw is None else rule.normalise(raw)
        source = DEFAULT_SOURCE if raw is None else root.source
        values[rule.attr], prov[rule.path] = value, source
        terms[rule.path] = _initial_terms(rule, value, source)
    _add_vocabulary_redlines(values, terms)

    problems: list[Problem] = []
    for lower in layers[1:]:
        for rule in FIELD_RULES:
            raw = rule.read(lower.layer)
            if raw is not None:
                _tighten(rule, rule.normalise(raw), lower.source, values, prov, terms, problems)
    if problems:
        raise LooseningError(f"Policy {layers[-1].source!r} loosens a higher layer", problems)
    _drop_redlines_from_allowed(values, prov, terms)

    stem = PurePath(layers[-1].source).stem
    name = layers[-1].layer.name or stem
    return ComposedPolicy(
        name=name,
        title=layers[-1].layer.title or name,
        summary=layers[-1].layer.summary or "",
        sources=tuple(layer.source for layer in layers),
        provenance=prov,
        term_sources=terms,
        **values,
    )


def _initial_terms(rule: FieldRule, value: Any, source: str) -> dict[str, str]:
    if rule.kind is Kind.SUBSET:
        return {"*": source}
    if rule.kind in (Kind.SUPERSET, Kind.SUBMAP, Kind.REFINE):
        return {str(term): source for term in value}
    return {}


def _add_vocabulary_redlines(values: dict[str, Any], terms: dict[str, dict[str, str]]) -> None:
    base = vocabulary().redlines
    values["redline_purposes"] = values["redline_purposes"] | base
    terms["purposes.redlines"] = dict.fromkeys(base, VOCABULARY_SOURCE) | terms["purposes.redlines"]


def _drop_redlines_from_allowed(values: dict[str, Any], prov: dict[str, str], terms: dict[str, dict[str, str]]) -> None:
    blocked = values["allowed_purposes"] & values["redline_purposes"]
    if blocked:
        values["allowed_purposes"] = values["allowed_purposes"] - blocked
        prov["purposes.allowed"] = terms["purposes.redlines"][min(blocked)]
        for term in blocked:
            terms["purposes.allowed"][term] = terms["purposes.redlines"][term]


def _tighten(
    rule: FieldRule,
    new: Any,
    source: str,
    values: dict[str, Any],
    prov: dict[str, str],
    terms: dict[str, dict[str, str]],
    problems: list[Problem],
) -> None:
    """Apply one lower-layer value, or record why it loosens the current one."""
    current = values[rule.attr]
    limit_by = prov[rule.path]

    def refuse(found: Any, limit: Any, verb: str = "loosen") -> None:
        allowed = f"must not {verb} {render(limit)} set by {limit_by} {_TIGHTEN_ONLY}"
        problems.append(Problem(source, rule.path, render(found), allowed))

    def take(value: Any) -> None:
        values[rule.attr], prov[rule.path] = value, source

    kind = rule.kind
    if kind is Kind.SUBSET:
        extra = new - current
        if extra:
            refuse(extra, current)
        elif new != current:
            for term in current - new:
                terms[rule.path][term] = source
            take(new)
    elif kind is Kind.SUPERSET:
        for term in new - current:
            terms[rule.path][term] = source
        if new - current:
            take(current | new)
    elif kind in (Kind.CEILING, Kind.END):
        if current is None or new < current:
            take(new)
        elif new > current:
            refuse(new, current)
    elif kind in (Kind.FLOOR, Kind.START):
        if current is None or new > current:
            take(new)
        elif new < current:
            refuse(new, current)
    elif kind is Kind.REQUIRE:
        if new and not current:
            take(True)
        elif current and not new:
            refuse(new, current)
    elif kind in (Kind.LABEL, Kind.PINNED):
        if current is None:
            take(new)
        elif new != current:
            refuse(new, current, verb="change")
    elif kind is Kind.SUBMAP:
        extra = set(new) - set(current)
        if extra:
            refuse(extra, set(current), verb="add to")
        elif new != current:
            kept = {key: terms[rule.path][key] for key in new if new[key] == current[key]}
            terms[rule.path] = kept | {key: source for key in new if key not in kept}
            take(new)
    elif kind is Kind.REFINE:
        changed = {key: text for key, text in new.items() if current.get(key) != text}
        if changed:
            terms[rule.path].update(dict.fromkeys(changed, source))
            take({**current, **changed})
