"""The specs this site process has already verified, by hash: a repeated spec is not parsed again.

Every message carries the whole trial spec (about 45 KB at 1,000 sites) and its hash; a site
that parsed and validated it for every message spent most of its time on that. The guard still
hashes the spec text of **every** message and refuses one whose SHA-256 differs from the hash it
names (:func:`participants.site_guard.verified_spec`); only then does it look here. So a cached
spec is returned only for text whose SHA-256 equals the key it was cached under, i.e. for the
very text that was parsed and validated the first time. A different spec (another hash) is
verified in full; a spec swapped under the same claimed hash fails the hash check before the
cache is consulted.

Invariants (tests in ``tests/participants/test_verified_specs.py`` and ``tests/adversary``):

- a key is the SHA-256 of the canonical spec text that validated into the stored spec;
- the cache is per process and bounded (:data:`MAX_SPECS`, least recently used dropped first);
- it holds no site's data or policy: the policy judgement runs for every message.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from trialcore.spec import TrialSpec

__all__ = ["MAX_SPECS", "forget_all", "recall", "remember"]

MAX_SPECS = 8
"""Specs kept per process (a site serves few trials at once)."""

_specs: OrderedDict[str, TrialSpec] = OrderedDict()
_lock = threading.Lock()


def recall(spec_hash: str) -> TrialSpec | None:
    """The spec verified earlier whose canonical text hashes to ``spec_hash``; None if not (or no longer) cached.

    Call only after checking that the message's spec text hashes to ``spec_hash``.
    """
    with _lock:
        spec = _specs.get(spec_hash)
        if spec is not None:
            _specs.move_to_end(spec_hash)
        return spec


def remember(spec_hash: str, spec: TrialSpec) -> None:
    """Keep ``spec``, parsed and validated from text whose SHA-256 is ``spec_hash``."""
    with _lock:
        _specs[spec_hash] = spec
        _specs.move_to_end(spec_hash)
        while len(_specs) > MAX_SPECS:
            _specs.popitem(last=False)


def forget_all() -> None:
    """Drop every cached spec (tests)."""
    with _lock:
        _specs.clear()
