"""Imports of this project's packages in a simulation worker, whatever folder the run started from.

Flower's simulation pickles the ClientApp with every message it hands a Ray worker, and Ray puts the
folder the run was started from first on the worker's import path. Unpickled by module name, the app
would import a user's own ``policies/`` or ``participants/`` folder there instead of this project's
(and fail, or worse, run it). So a :class:`~participants.portable_app.PortableClientApp` pickles as a
call that first *executes this file by its path* (no import by name), installs
:class:`ProjectPackages` at the head of ``sys.meta_path``, and only then rebuilds the app by name.

Invariants
----------
- This file imports only the standard library: it runs before any of the project's packages may be
  imported in the worker.
- Once :func:`install` ran, each name in :data:`PACKAGES` (and so every module under it) is imported
  from :data:`PROJECT_ROOT`, never from another folder on ``sys.path``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

PACKAGES = ("trialcore", "policies", "monitoring", "participants", "sandbox")
"""The project's top-level packages (those ``pyproject.toml`` installs)."""
PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""The folder holding the project's packages (the repository, site-packages, or a Flower app folder)."""
RUN_NAME = "__sandbox_project_imports__"
"""The ``__name__`` this file runs under when executed by its path: it then installs its finder at once."""


class ProjectPackages(importlib.abc.MetaPathFinder):
    """Finds the project's top-level packages in :data:`PROJECT_ROOT` before any ``sys.path`` entry is tried."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in PACKAGES:
            return None  # submodules follow their package's __path__, which points into root
        init = self.root / fullname / "__init__.py"
        return importlib.util.spec_from_file_location(fullname, init, submodule_search_locations=[str(init.parent)])


def install() -> None:
    """Put a :class:`ProjectPackages` for :data:`PROJECT_ROOT` first in ``sys.meta_path`` (once per process)."""
    for finder in sys.meta_path:
        if getattr(finder, "root", None) == PROJECT_ROOT and type(finder).__name__ == ProjectPackages.__name__:
            return
    sys.meta_path.insert(0, ProjectPackages(PROJECT_ROOT))


def build(factory: str, *args: Any) -> Any:
    """Install the finder, then call ``factory`` (``"package.module:function"``) with ``args``."""
    install()
    module_name, _, function_name = factory.partition(":")
    return getattr(importlib.import_module(module_name), function_name)(*args)


if __name__ == RUN_NAME:  # executed by path while a ClientApp is unpickled: pin the imports before anything else
    install()
