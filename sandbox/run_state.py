"""Whether a run folder's coordinator chain ended, or the run died before its final entry.

A run that is killed (``kill -9``, a power cut) leaves an intact chain: every entry it wrote is
whole (atomic appends), so ``audit verify`` alone cannot tell it from a finished run. The end of
a run is its final entry (``trial-finished``, which names the end state) followed by
``report.json``; a coordinator chain whose last entry is not final, in a folder without a report,
is ``interrupted`` (killed, or still running).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from trialcore import layout

FINAL_EVENTS = frozenset({"trial-finished"})
"""The entry only the end of a run writes (after it, report.json); a failed trial writes it too, after trial-failed."""

INTERRUPTED = "interrupted"
REPORT_MISSING = "report-missing"
_TAIL_BYTES = 1 << 20


def run_state(chain: Path) -> str | None:
    """The state of the run whose coordinator chain is ``chain``; None for a site's chain or an empty one.

    ``interrupted`` when the last entry is not a final one; the final entry's state (``finished``,
    ``terminated``, ...) when it is and ``report.json`` sits beside the chain; ``report-missing``
    when the final entry was written but the report was not.
    """
    last = _last_entry(chain)
    if last is None or last.get("actor") != "coordinator":
        return None
    if last.get("event") not in FINAL_EVENTS:
        return INTERRUPTED
    if not (chain.parent / layout.REPORT_FILE).is_file():
        return REPORT_MISSING
    payload = last.get("payload")
    state = payload.get("state") if isinstance(payload, dict) else None
    return str(state) if isinstance(state, str) else "ended"


def _last_entry(chain: Path) -> dict[str, object] | None:
    """The last entry of a chain (read from its tail only), or None."""
    try:
        with chain.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(size - _TAIL_BYTES, 0))
            tail = handle.read()
    except OSError:
        return None
    lines = [line for line in tail.split(b"\n") if line.strip()]
    if not lines:
        return None
    try:
        entry = json.loads(lines[-1])
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None
