"""The exit code table scripts and CI jobs branch on: it must not drift."""

from __future__ import annotations

from policies.errors import (
    BadInputError,
    BudgetExhausted,
    ExitCode,
    IntegrityError,
    PolicyRefusal,
    SandboxError,
    ServiceUnavailable,
)
from sandbox.errors import SpecError

# The table published in STYLE.md ("CLI turns errors into ... an exit code from one table") and sandbox/cli.py.
PUBLISHED_TABLE = {
    "OK": 0,
    "INTERNAL_ERROR": 1,
    "BAD_INPUT": 2,
    "REFUSED_BY_POLICY": 3,
    "BUDGET_EXHAUSTED": 4,
    "INTEGRITY_FAILED": 5,
    "SERVICE_UNAVAILABLE": 6,
}


def test_exit_codes_are_the_published_table() -> None:
    """Exit codes 0..6 keep their published names and numbers."""
    assert {code.name: code.value for code in ExitCode} == PUBLISHED_TABLE


def test_each_error_family_exits_with_its_code() -> None:
    """Each kind of failure maps to its row of the table; anything unclassified is an internal error (1)."""
    assert SandboxError.exit_code is ExitCode.INTERNAL_ERROR
    assert BadInputError.exit_code is ExitCode.BAD_INPUT
    assert SpecError.exit_code is ExitCode.BAD_INPUT
    assert PolicyRefusal.exit_code is ExitCode.REFUSED_BY_POLICY
    assert BudgetExhausted.exit_code is ExitCode.BUDGET_EXHAUSTED
    assert IntegrityError.exit_code is ExitCode.INTEGRITY_FAILED
    assert ServiceUnavailable.exit_code is ExitCode.SERVICE_UNAVAILABLE
