"""Count the YAML documents the coordinator reads: specs, site node configs and policy layers.

Every YAML input goes through :func:`trialcore.yaml_file.read_yaml_mapping` or, for node configs
(parsed once per content, :mod:`participants.content_cache`), :func:`trialcore.yaml_file.read_yaml_bytes`;
the modules that read specs, node configs and policy layers import them by name, so the counter
wraps the one each of them uses.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

READERS = ("trialcore.spec_loading", "participants.site_config", "policies.loader")


def count_yaml_reads(monkeypatch: pytest.MonkeyPatch) -> Counter[Path]:
    """A counter of reads per resolved path, filled from now on in this process."""
    import importlib

    reads: Counter[Path] = Counter()
    for name in READERS:
        module = importlib.import_module(name)
        reader = "read_yaml_mapping" if hasattr(module, "read_yaml_mapping") else "read_yaml_bytes"
        original = getattr(module, reader)

        def counted(path: Path, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            reads[Path(path).resolve()] += 1
            return _original(path, *args, **kwargs)

        monkeypatch.setattr(module, reader, counted)
    return reads
