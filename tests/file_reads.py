"""Count the YAML documents the coordinator reads: specs, site node configs and policy layers.

Every YAML input goes through :func:`trialcore.yaml_file.read_yaml_mapping`; the modules that read
specs, node configs and policy layers import it by name, so the counter wraps it in each of them.
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
        original = module.read_yaml_mapping

        def counted(path: Path, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            reads[Path(path).resolve()] += 1
            return _original(path, *args, **kwargs)

        monkeypatch.setattr(module, "read_yaml_mapping", counted)
    return reads
