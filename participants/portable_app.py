"""A ClientApp that a simulation worker rebuilds from this project's own files, whatever its working folder.

Flower pickles the ClientApp object with every message for a simulated site (``sandbox run`` and
``flwr run`` alike), and a Ray worker puts the folder the run started from first on its import path.
A :class:`PortableClientApp` therefore pickles as three standard-library calls that need none of the
project's modules to be importable by name::

    operator.call(runpy.run_path(".../participants/project_imports.py", None, RUN_NAME)["build"], factory, *args)

``project_imports.py`` runs by its path and at once makes the project's packages resolve to the
project's folder (:mod:`participants.project_imports`); only then are ``factory`` and ``args``
(which may name the project's functions) unpickled, and ``factory`` called.
"""

from __future__ import annotations

import operator
import runpy
from collections.abc import Callable
from typing import Any

from flwr.clientapp import ClientApp
from flwr.clientapp.typing import Mod

from participants import project_imports


class _ExecutedFile:
    """Pickles as ``runpy.run_path(path, None, run_name)``: the namespace of a file executed by its path."""

    def __init__(self, path: str, run_name: str) -> None:
        self.path = path
        self.run_name = run_name

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return (runpy.run_path, (self.path, None, self.run_name))


class _Entry:
    """Pickles as ``mapping[key]``."""

    def __init__(self, mapping: object, key: str) -> None:
        self.mapping = mapping
        self.key = key

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return (operator.getitem, (self.mapping, self.key))


class PortableClientApp(ClientApp):
    """A ClientApp that unpickles as ``factory(*args)``, called after the project's imports are pinned.

    Parameters
    ----------
    factory:
        ``"package.module:function"`` that builds this very app from ``args``.
    args:
        Picklable arguments of ``factory`` (unpickled after the imports are pinned, so they may
        name the project's functions).
    mods:
        The app's Flower mods.
    """

    def __init__(self, factory: str, args: tuple[Any, ...], *, mods: list[Mod]) -> None:
        super().__init__(mods=mods)
        self._factory = factory
        self._factory_args = args

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        build = _Entry(_ExecutedFile(project_imports.__file__, project_imports.RUN_NAME), "build")
        return (operator.call, (build, self._factory, *self._factory_args))
