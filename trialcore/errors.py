"""Root of every error the sandbox raises, and the one table of exit codes.

It lives in the shared layer: it imports nothing of the project, no Flower and no torch, so
every package builds on it. Each role adds its own kinds in its own ``errors.py``.

Hierarchy::

    SandboxError                    exit_code
    ├── BadInputError               2  a file, field or value the user must fix
    │   ├── SpecError                   the trial spec or the federation it names is wrong
    │   └── (per package: policies.PolicyFileError, participants' DataSourceError, ...)
    ├── PolicyRefusal               3  the trial is valid but a policy forbids it
    ├── BudgetExhausted             4  a site's privacy budget would be exceeded
    ├── IntegrityError              5  tampered log, bad signature, edited spec
    └── ServiceUnavailable          6  a required service cannot be reached

Anything else that escapes to the CLI is a bug and exits 1.

Every error carries a list of :class:`Problem`; each renders as one unwrapped line
naming the file as given, the field path, the value found and what is allowed.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


class ExitCode(enum.IntEnum):
    """Exit codes shared by every command of ``sandbox`` and ``participants``."""

    OK = 0
    INTERNAL_ERROR = 1
    BAD_INPUT = 2
    REFUSED_BY_POLICY = 3
    BUDGET_EXHAUSTED = 4
    INTEGRITY_FAILED = 5
    SERVICE_UNAVAILABLE = 6


_MAX_VALUE_CHARS = 80


def show_value(value: object) -> str:
    """Render a found value on one short line (newlines escaped, long values cut)."""
    text = repr(value)
    text = text.replace("\n", "\\n").replace("\r", "\\r")
    if len(text) > _MAX_VALUE_CHARS:
        text = text[: _MAX_VALUE_CHARS - 3] + "..."
    return text


def show_path(path: Path | None) -> str:
    """A path for a message: relative to the working folder when it lies below it, else whole; "" for None."""
    if path is None:
        return ""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one input.

    Attributes
    ----------
    source:
        The file as the user gave it (or another name for the input, e.g. ``"--site"``).
    field:
        Dotted field path inside the file (``"participants.2.site_id"``); empty for the whole file.
    found:
        The value found, already rendered with :func:`show_value`; empty when not applicable.
    allowed:
        What would be accepted, or what to do next.
    """

    source: str
    field: str
    found: str
    allowed: str

    def line(self) -> str:
        """One unwrapped line: ``file: field: found <value>; allowed: <what>``."""
        parts = [self.source]
        if self.field:
            parts.append(self.field)
        head = ": ".join(parts)
        found = f"found {self.found}; " if self.found else ""
        return f"{head}: {found}{self.allowed}"

    def as_dict(self) -> dict[str, str]:
        return {"file": self.source, "field": self.field, "found": self.found, "allowed": self.allowed}


class SandboxError(Exception):
    """Root of the project's errors; carries the exit code and the problems found."""

    exit_code: ExitCode = ExitCode.INTERNAL_ERROR

    def __init__(self, summary: str, problems: Iterable[Problem] = ()) -> None:
        self.summary = summary
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__(self.render())

    def lines(self) -> list[str]:
        """The lines a user sees: one per problem, or the summary alone."""
        return [p.line() for p in self.problems] or [self.summary]

    def render(self) -> str:
        return "\n".join([self.summary, *("  - " + p.line() for p in self.problems)])


class BadInputError(SandboxError):
    """A file, field or value the user must fix (exit 2)."""

    exit_code = ExitCode.BAD_INPUT


class SpecError(BadInputError):
    """The trial spec, or the federation folder it names, has problems the researcher must fix (exit 2)."""


class PolicyRefusal(SandboxError):
    """The input is valid but a policy forbids it (exit 3)."""

    exit_code = ExitCode.REFUSED_BY_POLICY


class BudgetExhausted(SandboxError):
    """A site's privacy budget would be exceeded (exit 4)."""

    exit_code = ExitCode.BUDGET_EXHAUSTED


class IntegrityError(SandboxError):
    """Evidence failed a check: a tampered log, a bad signature, an edited spec (exit 5)."""

    exit_code = ExitCode.INTEGRITY_FAILED


class ServiceUnavailable(SandboxError):
    """A required service (Prometheus, a SuperLink) cannot be reached (exit 6)."""

    exit_code = ExitCode.SERVICE_UNAVAILABLE
