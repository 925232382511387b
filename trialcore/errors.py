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
import reprlib
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
_MAX_INT_BITS = 256

_REPR = reprlib.Repr()
_REPR.maxstring = _MAX_VALUE_CHARS
_REPR.maxother = _MAX_VALUE_CHARS
_REPR.maxlong = _MAX_VALUE_CHARS
_REPR.maxlevel = 3
for _name in ("maxdict", "maxlist", "maxtuple", "maxset", "maxfrozenset", "maxdeque", "maxarray"):
    setattr(_REPR, _name, 4)


def show_value(value: object) -> str:
    """Render a found value on one short, terminal-safe line.

    The value is shortened *before* it is rendered (a string is cut to 80 characters, a container
    to its first few items, three levels deep), so a hostile value of gigabytes costs no more than a
    short one; control characters are escaped (``\\x1b``, ``\\n``), never written raw.
    """
    if isinstance(value, (str, bytes)):
        text = repr(value[: _MAX_VALUE_CHARS + 1])
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _MAX_INT_BITS:
        text = f"an integer of {value.bit_length()} bits"  # repr of a huge int is slow, or refused
    else:
        try:
            text = _REPR.repr(value)
        except Exception:  # a value whose repr fails still gets a line
            text = f"<{type(value).__name__}>"
    text = terminal_safe(text)
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


def show_text(text: str) -> str:
    """``text`` shortened to 80 characters and made terminal-safe, without the quotes of :func:`show_value`."""
    return terminal_safe(text[: _MAX_VALUE_CHARS + 1].replace("\n", " ").replace("\r", " "))[:_MAX_VALUE_CHARS]


def terminal_safe(text: str) -> str:
    """``text`` with every control or format character escaped (``\\x1b[31m`` stays visible, inert).

    Terminal escape sequences, carriage returns, bidirectional overrides (U+202E) and other
    non-printing characters in a file name, a title or a key would otherwise act on the terminal
    of whoever reads the message.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() or char == " " else _escaped(char) for char in text)


def _escaped(char: str) -> str:
    code = ord(char)
    if char == "\n":
        return "\\n"
    if char == "\r":
        return "\\r"
    if char == "\t":
        return "\\t"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


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
        return terminal_safe(f"{head}: {found}{self.allowed}")

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
        return [p.line() for p in self.problems] or [terminal_safe(self.summary)]

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
