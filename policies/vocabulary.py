"""The controlled vocabulary policy files are written in (``policies/vocabulary.yaml``).

Purposes, risk tiers, data categories and transfer mechanisms are kebab-case terms with
a one-line meaning each. Two subsets are fixed here rather than in any policy layer:

* ``redlines`` - purposes that are never-events (re-identification, insurance pricing,
  employment screening, mass surveillance); every composed policy forbids them and no
  layer can lift them (EHDS Regulation (EU) 2025/327 Art. 54 lists similar prohibited uses);
* ``prohibited_risk_tiers`` - ``unacceptable`` (AI Act Art. 5), never allowed.

The file ships inside the package and is read with :mod:`importlib.resources`, so it
works from an installed wheel. It is validated on first use; a broken vocabulary is a
packaging bug (:class:`~trialcore.errors.SandboxError`, exit 1), not user input.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from trialcore.errors import BadInputError, SandboxError
from trialcore.yaml_file import parse_yaml_mapping

__all__ = ["VOCABULARY_SOURCE", "Vocabulary", "vocabulary"]

VOCABULARY_SOURCE = "policies/vocabulary.yaml"
"""How messages name the vocabulary file (the path inside the source tree)."""

_TERM = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
_SECTIONS = ("purposes", "risk_tiers", "data_categories", "transfer_mechanisms")
_SUBSETS = {
    "redlines": "purposes",
    "prohibited_risk_tiers": "risk_tiers",
    "special_categories": "data_categories",
}


@dataclass(frozen=True)
class Vocabulary:
    """Every term a policy file may use, with its one-line meaning.

    Invariants: every term is kebab-case; ``redlines`` are purposes,
    ``prohibited_risk_tiers`` are risk tiers, ``special_categories`` are data categories.
    """

    purposes: Mapping[str, str]
    redlines: frozenset[str]
    risk_tiers: Mapping[str, str]
    prohibited_risk_tiers: frozenset[str]
    data_categories: Mapping[str, str]
    special_categories: frozenset[str]
    transfer_mechanisms: Mapping[str, str]

    @property
    def permissible_risk_tiers(self) -> tuple[str, ...]:
        """Risk tiers a policy may allow, in vocabulary order."""
        return tuple(t for t in self.risk_tiers if t not in self.prohibited_risk_tiers)

    @property
    def permissible_purposes(self) -> tuple[str, ...]:
        """Purposes a policy may allow (everything but the redlines), in vocabulary order."""
        return tuple(p for p in self.purposes if p not in self.redlines)


@functools.cache
def vocabulary() -> Vocabulary:
    """The shipped vocabulary, parsed and checked once per process."""
    text = resources.files("policies").joinpath("vocabulary.yaml").read_text(encoding="utf-8")
    try:
        data = parse_yaml_mapping(text, shown_as=VOCABULARY_SOURCE, what="vocabulary")
    except BadInputError as err:  # a packaging bug, not user input
        raise SandboxError(f"Broken vocabulary {VOCABULARY_SOURCE}: {'; '.join(err.lines())}") from err
    return parse_vocabulary(data)


def parse_vocabulary(data: Any) -> Vocabulary:
    """Check a parsed vocabulary document and build a :class:`Vocabulary`.

    Raises
    ------
    SandboxError
        Naming every malformed section or term.
    """
    errors: list[str] = []
    if not isinstance(data, dict):
        raise SandboxError(f"{VOCABULARY_SOURCE}: top level must be a mapping")
    sections: dict[str, dict[str, str]] = {}
    for name in _SECTIONS:
        section = data.get(name)
        if not isinstance(section, dict) or not section:
            errors.append(f"{name}: must be a non-empty mapping of term: meaning")
            sections[name] = {}
            continue
        for term, meaning in section.items():
            if not isinstance(term, str) or not _TERM.match(term):
                errors.append(f"{name}.{term}: terms must be kebab-case")
            if not isinstance(meaning, str) or not meaning.strip():
                errors.append(f"{name}.{term}: needs a one-line meaning")
        sections[name] = {str(k): str(v) for k, v in section.items()}
    subsets: dict[str, frozenset[str]] = {}
    for name, parent in _SUBSETS.items():
        items = data.get(name)
        if not isinstance(items, list):
            errors.append(f"{name}: must be a list of {parent} terms")
            items = []
        unknown = [t for t in items if t not in sections[parent]]
        if unknown:
            errors.append(f"{name}: {unknown} are not {parent} terms")
        subsets[name] = frozenset(str(t) for t in items)
    extra = set(data) - set(_SECTIONS) - set(_SUBSETS)
    if extra:
        errors.append(f"unknown sections {sorted(extra)}")
    if errors:
        raise SandboxError(f"Broken vocabulary {VOCABULARY_SOURCE}: " + "; ".join(errors))
    return Vocabulary(
        purposes=sections["purposes"],
        redlines=subsets["redlines"],
        risk_tiers=sections["risk_tiers"],
        prohibited_risk_tiers=subsets["prohibited_risk_tiers"],
        data_categories=sections["data_categories"],
        special_categories=subsets["special_categories"],
        transfer_mechanisms=sections["transfer_mechanisms"],
    )
