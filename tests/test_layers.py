"""The layers of the design hold: no import runs from a lower layer to a higher one.

Order (lowest first)::

    trialcore  <  policies  <  participants  <  sandbox
    trialcore  <  monitoring  <  sandbox

``participants`` (a hospital's site) never imports the coordinator, so a site can be read,
reviewed and packaged without it; ``policies`` imports neither Flower nor torch, and importing
``trialcore`` loads neither.
Every ``import`` statement is checked, including those inside functions.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

ROLES = ("trialcore", "policies", "participants", "sandbox", "monitoring")
ALLOWED: dict[str, frozenset[str]] = {
    "trialcore": frozenset({"trialcore"}),
    "policies": frozenset({"trialcore", "policies"}),
    "monitoring": frozenset({"trialcore", "monitoring"}),
    "participants": frozenset({"trialcore", "policies", "participants"}),
    "sandbox": frozenset(ROLES),
}
"""For each package, the project packages its modules may import."""
FORBIDDEN_LIBRARIES: dict[str, frozenset[str]] = {
    "trialcore": frozenset({"flwr"}),
    "policies": frozenset({"flwr", "torch", "opacus"}),
}
"""Libraries a package never imports: the shared layer is transport-free (its accountant loads
Opacus only inside the functions that price a mechanism); the policy language needs neither."""


def imported_roots(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every import in ``path``, function-level ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name.split(".")[0]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def violations(package: str) -> list[str]:
    """Every import in ``package`` against the layer rule, as ``file:line imports X``."""
    bad: list[str] = []
    for path in sorted((REPO / package).rglob("*.py")):
        for line, root in imported_roots(path):
            forbidden_role = root in ROLES and root not in ALLOWED[package]
            forbidden_stack = root in FORBIDDEN_LIBRARIES.get(package, frozenset())
            if forbidden_role or forbidden_stack:
                bad.append(f"{path.relative_to(REPO)}:{line} imports {root}")
    return bad


@pytest.mark.parametrize("package", ROLES)
def test_no_import_runs_against_the_layer_order(package: str) -> None:
    """Each package imports only the layers below it (and none of the libraries it must not use)."""
    assert violations(package) == []


def test_the_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    """The checker itself sees a function-level import of the coordinator from site code."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from sandbox.server_app import app\n    import torch\n")
    assert imported_roots(module) == [(2, "sandbox"), (3, "torch")]


SCRIPT = """
import importlib, pkgutil, sys
package = sys.argv[1]
root = importlib.import_module(package)
names = sorted(m.name for m in pkgutil.walk_packages(root.__path__, package + "."))
for name in names:
    importlib.import_module(name)
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[2].split(",")))
print(len(names), ",".join(loaded))
"""


@pytest.mark.parametrize(
    ("package", "must_not_load"),
    [
        ("trialcore", "flwr,torch,opacus,policies,participants,sandbox,monitoring"),
        ("policies", "flwr,torch,opacus,participants,sandbox,monitoring"),
        ("monitoring", "flwr,torch,policies,participants,sandbox"),
        ("participants", "sandbox,monitoring"),
    ],
)
def test_importing_every_module_of_a_layer_loads_nothing_above_it(package: str, must_not_load: str) -> None:
    """In a fresh interpreter, importing every module of a package loads no higher layer (transitively)."""
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, package, must_not_load], cwd=REPO, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    count, loaded = done.stdout.split(" ", 1)
    assert int(count) >= 3
    assert loaded.strip() == ""
