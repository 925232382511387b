"""Canonical JSON: the one byte form every hash of the project is taken over.

Spec hashes, audit entry hashes, privacy ledger hashes and approval signatures are all over
these bytes, so two programs that agree on the content agree on the hash. Canonical JSON is
``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)``
encoded as UTF-8 (the form RFC 8785 narrows further; the project's inputs need no more).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["canonical_json"]


def canonical_json(data: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, no whitespace, UTF-8, no NaN or Infinity.

    Raises
    ------
    ValueError
        For non-finite floats or text that cannot be encoded as UTF-8 (lone surrogates).
    TypeError
        For values JSON cannot represent.
    """
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")
