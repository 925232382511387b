"""Load policy files and their ``extends`` chains; report every problem at once.

How layers link: each file may say ``extends: preset:NAME`` (a packaged preset) or
``extends: ../countries/de.yaml`` (a path relative to the file itself). Following
``extends`` from an institution file gives the chain institution → country → preset;
the file without ``extends`` is the root and must set every required field.

Every problem of every file in the chain - missing file, empty, non-UTF-8, YAML syntax
error, top-level list, unknown key, wrong type, bad value, unknown ``extends`` target,
a cycle - is collected and raised once as a :class:`~trialcore.errors.PolicyFileError`,
each naming the file as given, the dotted field and the value found. Only a chain that
loads cleanly is layered (:func:`policies.layering.compose_chain`), which may raise
:class:`~trialcore.errors.LooseningError`.

Relative dates (``today+365d``) resolve against the injected clock at load time; see
:mod:`trialcore.clock`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from policies.composed import ComposedPolicy
from policies.errors import LooseningError, PolicyFileError
from policies.layering import LoadedLayer, compose_chain
from policies.presets import PRESET_PREFIX, preset_file, preset_names, preset_source
from policies.schema import PolicyLayer
from trialcore.clock import Clock, system_clock, utc_today
from trialcore.errors import BadInputError, Problem, show_value
from trialcore.yaml_file import problems_from_validation, read_yaml_mapping

__all__ = ["load_layers", "load_policies", "load_policy", "load_preset"]

_MAX_CHAIN = 16
_MAX_SHOWN_PATH = 400
"""A path longer than this is cut where a message repeats it (no real policy path is that long)."""


@dataclass(frozen=True)
class _Ref:
    """A policy file to read: how to name it, and where it is."""

    shown: str
    path: Path | None
    preset: str | None

    @property
    def key(self) -> str:
        if self.preset is not None:
            return PRESET_PREFIX + self.preset
        assert self.path is not None
        return os.path.realpath(self.path)


@dataclass(frozen=True)
class _Read:
    layer: LoadedLayer | None
    extends: Any
    problems: tuple[Problem, ...]


class _Loader:
    """Reads files once each (a federation shares its preset and country files)."""

    def __init__(self, today: date) -> None:
        self.today = today
        self.cache: dict[str, _Read] = {}

    def chain(self, start: _Ref) -> tuple[list[LoadedLayer], list[Problem]]:
        """The chain from ``start`` to its root, root first, and every problem met."""
        layers: list[LoadedLayer] = []
        problems: list[Problem] = []
        seen: dict[str, str] = {}
        ref: _Ref | None = start
        while ref is not None:
            if ref.key in seen or len(seen) >= _MAX_CHAIN:
                loop = " -> ".join([*seen.values(), ref.shown])
                last = list(seen.values())[-1]
                allowed = f"the chain must end at a preset without a cycle, in at most {_MAX_CHAIN} files ({loop})"
                problems.append(Problem(last, "extends", "", allowed))
                break
            seen[ref.key] = ref.shown
            read = self.cache.get(ref.key) or self._read(ref)
            self.cache[ref.key] = read
            problems.extend(read.problems)
            if read.layer is not None:
                layers.append(read.layer)
            ref = self._resolve(ref, read.extends, problems)
        layers.reverse()
        return layers, problems

    def _read(self, ref: _Ref) -> _Read:
        try:
            with _readable(ref) as path:
                data = read_yaml_mapping(path, shown_as=ref.shown, what="policy file")
        except BadInputError as err:
            return _Read(None, None, err.problems)
        extends = data.get("extends")
        try:
            layer = PolicyLayer.model_validate(data, context={"today": self.today})
        except ValidationError as err:
            return _Read(None, extends, tuple(problems_from_validation(err, source=ref.shown, model=PolicyLayer)))
        problems: list[Problem] = []
        if ref.preset is not None and layer.name not in (None, ref.preset):
            allowed = f"a preset's name must be its file name ({ref.preset!r})"
            problems.append(Problem(ref.shown, "name", show_value(layer.name), allowed))
        return _Read(LoadedLayer(ref.shown, layer), layer.extends, tuple(problems))

    def _resolve(self, parent: _Ref, extends: Any, problems: list[Problem]) -> _Ref | None:
        if not isinstance(extends, str) or not extends.strip():
            return None
        target = extends.strip()
        presets = ", ".join(PRESET_PREFIX + name for name in preset_names())

        def refuse(allowed: str) -> None:
            problems.append(Problem(parent.shown, "extends", show_value(extends), allowed))

        if target.startswith(PRESET_PREFIX):
            name = target[len(PRESET_PREFIX) :].strip()
            if preset_file(name) is None:
                refuse(f"unknown preset; allowed: {presets}")
                return None
            return _Ref(preset_source(name), None, name)
        if parent.path is None:
            refuse(f"a preset may only extend another preset ({presets})")
            return None
        if os.path.isabs(target):
            path, shown = Path(target), target
        else:
            path = parent.path.parent / target
            shown = os.path.normpath(os.path.join(os.path.dirname(parent.shown), target))
        if not _is_file(path):
            where = shown if len(shown) <= _MAX_SHOWN_PATH else shown[: _MAX_SHOWN_PATH - 3] + "..."
            refuse(f"no policy file at {where!r}; give a path relative to this file or one of {presets}")
            return None
        return _Ref(shown, path, None)


def _is_file(path: Path) -> bool:
    """``Path.is_file``, reading an OS refusal (a name too long, no permission) as "no such file"."""
    try:
        return path.is_file()
    except OSError:
        return False


@contextmanager
def _readable(ref: _Ref) -> Iterator[Path]:
    if ref.path is not None:
        yield ref.path
        return
    entry = preset_file(ref.preset or "")
    if entry is None:
        yield Path(ref.shown)
        return
    with resources.as_file(entry) as path:
        yield path


def _file_ref(path: str | os.PathLike[str]) -> _Ref:
    shown = os.fspath(path)
    return _Ref(shown, Path(shown), None)


def load_layers(path: str | os.PathLike[str], *, clock: Clock = system_clock) -> tuple[LoadedLayer, ...]:
    """Read a policy file and every file it extends, root first, without layering them.

    Raises
    ------
    PolicyFileError
        With every problem of every file in the chain.
    """
    layers, problems = _Loader(utc_today(clock)).chain(_file_ref(path))
    if problems:
        raise PolicyFileError(f"Invalid policy file {os.fspath(path)!r}", problems)
    return tuple(layers)


def load_policy(path: str | os.PathLike[str], *, clock: Clock = system_clock) -> ComposedPolicy:
    """Load a policy file with its ``extends`` chain and layer it into one site's policy.

    Raises
    ------
    PolicyFileError
        Any file in the chain is missing or invalid (all problems at once).
    LooseningError
        A lower layer loosens a higher one (all loosenings at once).
    """
    return compose_chain(load_layers(path, clock=clock))


def load_preset(name: str, *, clock: Clock = system_clock) -> ComposedPolicy:
    """Load a shipped preset (``eu-gdpr-ai-act``, ...) as a composed policy with provenance.

    Raises
    ------
    PolicyFileError
        If there is no such preset (the problem lists the shipped ones).
    """
    if preset_file(name) is None:
        problem = Problem("preset", "name", show_value(name), f"one of: {', '.join(preset_names())}")
        raise PolicyFileError(f"Unknown policy preset {name!r}", [problem])
    layers, problems = _Loader(utc_today(clock)).chain(_Ref(preset_source(name), None, name))
    if problems:
        raise PolicyFileError(f"Invalid policy preset {name!r}", problems)
    return compose_chain(layers)


def load_policies(
    site_files: Mapping[str, str | os.PathLike[str]], *, clock: Clock = system_clock
) -> dict[str, ComposedPolicy]:
    """Load every site's policy of a federation; shared files are read once.

    Parameters
    ----------
    site_files:
        Site id → that site's (institution) policy file, as the user gave it.

    Raises
    ------
    PolicyFileError
        With every file problem of every site, each reported once.
    LooseningError
        If the files are valid but some lower layers loosen higher ones (all of them).
    """
    loader = _Loader(utc_today(clock))
    chains: dict[str, list[LoadedLayer]] = {}
    problems: dict[Problem, None] = {}
    for site_id, path in site_files.items():
        layers, found = loader.chain(_file_ref(path))
        chains[site_id] = layers
        problems.update(dict.fromkeys(found))
    if problems:
        raise PolicyFileError(f"Invalid policy files for {len(site_files)} site(s)", problems)
    policies: dict[str, ComposedPolicy] = {}
    loosenings: dict[Problem, None] = {}
    incomplete = False
    for site_id, layers in chains.items():
        try:
            policies[site_id] = compose_chain(layers)
        except PolicyFileError as err:
            incomplete = incomplete or not isinstance(err, LooseningError)
            loosenings.update(dict.fromkeys(err.problems))
    if loosenings:
        error = PolicyFileError if incomplete else LooseningError
        raise error(f"Policy layers of {len(site_files)} site(s) do not compose", loosenings)
    return policies
