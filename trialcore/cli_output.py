"""How every command talks to people and machines: one table of exit codes, one error path.

Human output goes to stdout (results) and stderr (problems, progress, logs). With
``--format json`` stdout carries exactly one JSON document, success or failure. Problems are
printed one per line, unwrapped, so a terminal, a log file and ``grep`` all see whole lines.
"""

from __future__ import annotations

import enum
import json
import logging
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import typer
from rich.text import Text

from trialcore.errors import ExitCode, SandboxError, terminal_safe

T = TypeVar("T")


class OutputFormat(str, enum.Enum):
    """``--format`` choices."""

    text = "text"
    json = "json"


def emit_json(document: Any) -> None:
    """Write one JSON document to stdout."""
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    sys.stdout.flush()


def fail(error: SandboxError, output: OutputFormat) -> NoReturn:
    """Report ``error`` (each problem on one unwrapped line) and exit with its code."""
    if output is OutputFormat.json:
        emit_json(
            {
                "ok": False,
                "exit_code": int(error.exit_code),
                "error": error.summary,
                "problems": [p.as_dict() for p in error.problems],
                "lines": error.lines(),
            }
        )
    else:
        sys.stderr.write(f"error: {terminal_safe(error.summary)}\n")
        for line in error.lines():
            sys.stderr.write(f"{line}\n")
    raise typer.Exit(int(error.exit_code))


def guarded(output: OutputFormat, action: Callable[[], T]) -> T:
    """Run ``action``; turn a SandboxError into its exit code and anything else into exit 1 (a bug)."""
    try:
        return action()
    except SandboxError as error:
        fail(error, output)
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as error:
        sys.stderr.write(
            "error: internal error (a bug in the sandbox, not in your input); please report it with this trace:\n"
        )
        traceback.print_exception(error, file=sys.stderr)
        if output is OutputFormat.json:
            emit_json({"ok": False, "exit_code": int(ExitCode.INTERNAL_ERROR), "error": f"internal error: {error}"})
        raise typer.Exit(int(ExitCode.INTERNAL_ERROR)) from error


def plain(value: object) -> Text:
    """A table cell or line for Rich that shows ``value`` as typed: no markup, control characters escaped."""
    return Text(terminal_safe(str(value)))


def configure_logging(verbose: bool) -> None:
    """Logs go to stderr; Flower and Ray are quiet unless ``verbose``."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for name in ("flwr", "ray"):
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)
