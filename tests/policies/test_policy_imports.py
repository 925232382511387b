"""The policy language stays independent of Flower and torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import importlib, pkgutil, sys
import policies
names = sorted(m.name for m in pkgutil.iter_modules(policies.__path__, "policies."))
for name in names:
    importlib.import_module(name)
leaked = sorted(m for m in ("flwr", "torch") if m in sys.modules)
assert not leaked, f"importing {names} loaded {leaked}"
assert "policies.loader" in names and "policies.preflight" in names, names
print(len(names))
"""


def test_importing_every_policies_module_loads_no_flwr_or_torch() -> None:
    """`import policies` and every module in it load neither flwr nor torch (fresh interpreter)."""
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) >= 10
