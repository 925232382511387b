"""Values a site derives from its own files, kept per process and keyed by the files' exact bytes.

A site reads its node config and its records for every message (a simulated site, or one
SuperNode serving many messages). Parsing them again each time was most of a site's work at
1,000 sites. A :class:`ContentCache` keeps what was derived from a file under the SHA-256 of the
bytes it was derived from: the file is still read for every message, and any change to it
(another byte, another length) is another key, so a cached value is always what parsing the
current bytes would give. Errors are never cached (the file is parsed again, and fails again).

Invariants (``tests/participants/test_content_cache.py``):

- a value is returned only for the same key and bytes whose SHA-256 it was made from;
- at most ``max_entries`` values are kept, the least recently used dropped first;
- nothing here reads files or messages: callers pass the bytes they read.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["ContentCache"]

T = TypeVar("T")


class ContentCache(Generic[T]):
    """A bounded LRU of values derived from file bytes, keyed by ``(key, SHA-256 of the bytes)``."""

    def __init__(self, *, max_entries: int) -> None:
        self.max_entries = max_entries
        self._values: OrderedDict[tuple[Hashable, bytes], T] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_make(self, key: Hashable, content: bytes, make: Callable[[], T]) -> T:
        """The value made from ``content`` under ``key`` before, else ``make()`` (kept unless it raises)."""
        full = (key, hashlib.sha256(content).digest())
        with self._lock:
            if full in self._values:
                self._values.move_to_end(full)
                return self._values[full]
        value = make()
        with self._lock:
            self._values[full] = value
            self._values.move_to_end(full)
            while len(self._values) > self.max_entries:
                self._values.popitem(last=False)
        return value

    def clear(self) -> None:
        """Drop every value."""
        with self._lock:
            self._values.clear()

    def __len__(self) -> int:
        return len(self._values)
