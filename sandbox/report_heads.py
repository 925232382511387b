"""Find the audit chain heads a report recorded, to detect truncation of a chain after the run."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trialcore.audit_entry import ChainHead
from trialcore.errors import BadInputError, Problem, show_value


def _heads(report: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    audit = report.get("audit", {})
    if isinstance(audit.get("coordinator"), dict):
        yield "audit.coordinator", audit["coordinator"]
    for site_id, head in (audit.get("sites") or {}).items():
        if isinstance(head, dict):
            yield f"audit.sites.{site_id}", head


def _why_unreadable(err: BaseException) -> str:
    """What was wrong with a report file, in words (never an exception's class name)."""
    if isinstance(err, (FileNotFoundError, NotADirectoryError)):
        return "no such file"
    if isinstance(err, IsADirectoryError):
        return "a folder"
    if isinstance(err, UnicodeDecodeError):
        return f"bytes that are not UTF-8 at offset {err.start}"
    if isinstance(err, json.JSONDecodeError):
        return f"not JSON (line {err.lineno}, column {err.colno}: {err.msg})"
    if isinstance(err, RecursionError):
        return "JSON nested too deeply"
    if isinstance(err, OSError):
        return f"unreadable ({err.strerror})"
    return "unreadable"


def recorded_head(report_path: Path, chain: Path) -> ChainHead:
    """The head report.json recorded for ``chain`` (matched by path, relative to the report's folder).

    Raises
    ------
    BadInputError
        If the report cannot be read or records no head for this chain.
    """
    shown = str(report_path)
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise BadInputError(
            f"Cannot read report '{shown}'",
            [Problem(shown, "", _why_unreadable(err), "a report.json written by sandbox run")],
        ) from err
    if not isinstance(report, dict):
        raise BadInputError(
            f"Cannot read report '{shown}'",
            [Problem(shown, "", "not a JSON object", "a report.json written by sandbox run")],
        )
    target = Path(os.path.realpath(chain))
    known = []
    for _field, head in _heads(report):
        path = Path(os.path.realpath(report_path.parent / str(head.get("path", ""))))
        known.append(str(head.get("path")))
        if path == target:
            return ChainHead(hash=str(head["hash"]), length=int(head["length"]))
    raise BadInputError(
        f"Report '{shown}' records no head for '{chain}'",
        [
            Problem(
                shown, "audit", show_value(str(chain)), f"one of the chains it records: {', '.join(known) or '(none)'}"
            )
        ],
    )
