"""The region presets shipped inside the package (``policies/presets/*.yaml``).

A preset is a root policy layer for one legal regime - ``eu-gdpr-ai-act``, ``uk-gdpr``,
``us-hipaa``, ``ch-fadp`` - every value commented with the article or rule it comes
from. Presets are ILLUSTRATIVE ONLY and NOT LEGAL ADVICE: simplified readings chosen
so a simulated sandbox behaves plausibly. Country and institution files extend them
with ``extends: preset:NAME``.

Files are read through :mod:`importlib.resources`, so presets work from an installed
wheel as well as from a source checkout. Loading a preset into a composed policy is
:func:`policies.loader.load_preset`; this module only lists and reads them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from trialcore.errors import BadInputError
from trialcore.yaml_file import parse_yaml_mapping

__all__ = ["PRESET_PREFIX", "PresetInfo", "list_presets", "preset_file", "preset_names", "preset_source", "preset_text"]

PRESET_PREFIX = "preset:"
"""How a policy file names a preset in ``extends`` (``extends: preset:eu-gdpr-ai-act``)."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True)
class PresetInfo:
    """What ``sandbox policies list`` shows for one preset."""

    name: str
    title: str
    summary: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "title": self.title, "summary": self.summary}


def _directory() -> Traversable:
    return resources.files("policies").joinpath("presets")


def preset_names() -> list[str]:
    """Names of the shipped presets, sorted (file stems of ``policies/presets/*.yaml``)."""
    return sorted(
        entry.name[: -len(".yaml")]
        for entry in _directory().iterdir()
        if entry.is_file() and entry.name.endswith(".yaml") and _NAME.match(entry.name[: -len(".yaml")])
    )


def preset_source(name: str) -> str:
    """How messages and provenance name a preset file: ``policies/presets/NAME.yaml``."""
    return f"policies/presets/{name}.yaml"


def preset_file(name: str) -> Traversable | None:
    """The packaged file of preset ``name``, or ``None`` if there is no such preset."""
    if not _NAME.match(name) or name not in preset_names():
        return None
    return _directory().joinpath(f"{name}.yaml")


def preset_text(name: str) -> str | None:
    """The raw YAML of preset ``name``, comments and all (for ``policies show``), or ``None``."""
    entry = preset_file(name)
    return None if entry is None else entry.read_text(encoding="utf-8")


def list_presets() -> list[PresetInfo]:
    """Every shipped preset with its title and one-line summary, sorted by name."""
    infos: list[PresetInfo] = []
    for name in preset_names():
        try:
            data = parse_yaml_mapping(preset_text(name) or "", shown_as=preset_source(name), what="policy preset")
        except BadInputError:
            data = {}  # listed by name; loading it (policies show, extends) names the problem
        infos.append(PresetInfo(name, str(data.get("title") or name), str(data.get("summary") or "")))
    return infos
