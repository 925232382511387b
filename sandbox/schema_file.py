"""A run folder's JSON state file tagged with its schema (``checkpoint.json``, ``engine.json``).

Invariant: a document is returned only if it is a JSON object whose ``schema`` is the one asked
for; anything else is a :class:`ValueError` the caller turns into its own integrity error (exit 5),
naming the file. A missing file is None: the caller decides what its absence means.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def load_schema_document(path: Path, schema: str) -> dict[str, Any] | None:
    """The JSON object in ``path`` if its ``schema`` is ``schema``; None if there is no file.

    Raises
    ------
    ValueError
        The file is not JSON, not an object, or of another schema.
    """
    if not path.is_file():
        return None
    document = json.loads(path.read_bytes())
    if not isinstance(document, dict) or document.get("schema") != schema:
        found = document.get("schema") if isinstance(document, dict) else type(document).__name__
        raise ValueError(f"schema {found!r}")
    return document
