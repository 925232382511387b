"""The exit code table scripts and CI jobs branch on: it must not drift."""

from __future__ import annotations

import re
from pathlib import Path

from trialcore.errors import (
    BadInputError,
    BudgetExhausted,
    ExitCode,
    IntegrityError,
    PolicyRefusal,
    SandboxError,
    ServiceUnavailable,
    SpecError,
)

# The table published in README.md ("Exit codes (every command)").
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


README = Path(__file__).resolve().parents[2] / "README.md"
# What the README's meaning column says for each code name.
README_MEANINGS = {
    "OK": "ok",
    "INTERNAL_ERROR": "internal error",
    "BAD_INPUT": "bad input",
    "REFUSED_BY_POLICY": "refused by policy",
    "BUDGET_EXHAUSTED": "privacy budget exhausted",
    "INTEGRITY_FAILED": "integrity check failed",
    "SERVICE_UNAVAILABLE": "a required service unreachable",
}


def test_readme_table_documents_the_same_codes() -> None:
    """The README's exit code table, which users read, lists exactly the codes the commands return."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = {
        int(code): meaning.strip() for code, meaning in re.findall(r"^\| (\d+) \| ([^|]+) \|$", section, re.MULTILINE)
    }
    assert sorted(rows) == [code.value for code in ExitCode]
    for code in ExitCode:
        assert rows[code.value].startswith(README_MEANINGS[code.name]), (code, rows[code.value])


def test_each_error_family_exits_with_its_code() -> None:
    """Each kind of failure maps to its row of the table; anything unclassified is an internal error (1)."""
    assert SandboxError.exit_code is ExitCode.INTERNAL_ERROR
    assert BadInputError.exit_code is ExitCode.BAD_INPUT
    assert SpecError.exit_code is ExitCode.BAD_INPUT
    assert PolicyRefusal.exit_code is ExitCode.REFUSED_BY_POLICY
    assert BudgetExhausted.exit_code is ExitCode.BUDGET_EXHAUSTED
    assert IntegrityError.exit_code is ExitCode.INTEGRITY_FAILED
    assert ServiceUnavailable.exit_code is ExitCode.SERVICE_UNAVAILABLE
