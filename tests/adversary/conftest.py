"""The hostile coordinator's attack table: every adversary test records one row, printed at the end."""

from __future__ import annotations

import pytest

from tests.adversary.hostile_coordinator import ATTACKS


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the attack table (``pytest tests/adversary -q`` shows it too)."""
    if not ATTACKS:
        return
    terminalreporter.section("attacks of a hostile coordinator (or site) and outcomes")
    width = max(len(attack) for attack, _ in ATTACKS)
    for attack, outcome in sorted(ATTACKS):
        terminalreporter.write_line(f"{attack:<{width}}  {outcome}")
    terminalreporter.write_line(f"{len(ATTACKS)} attacks, each refused or neutralised")
