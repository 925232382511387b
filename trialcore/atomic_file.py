"""Write a file so a reader sees either the old content or the new, never half of it.

Temp file in the same folder, fsync, ``os.replace``, then fsync of the folder. Used for
reports, models and any other evidence file written whole.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_bytes_atomic(path: Path, data: bytes, *, create_parents: bool = True, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically; the file gets permission bits ``mode``.

    With ``create_parents`` missing parent folders are created; otherwise a missing folder
    raises ``FileNotFoundError``.
    """
    if create_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_json_atomic(path: Path, document: Any) -> None:
    """Write ``document`` as indented UTF-8 JSON (no NaN) atomically."""
    text = json.dumps(document, indent=2, sort_keys=False, ensure_ascii=False, allow_nan=False) + "\n"
    write_bytes_atomic(path, text.encode("utf-8"))


def fsync_dir(folder: Path) -> None:
    """Make a folder's entries (a new or renamed file) durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_directories(directory: Path) -> None:
    """Create ``directory`` and its missing parents, fsyncing each parent that gained an entry.

    After a power loss the new folders are still there (a plain ``mkdir -p`` may lose them).
    """
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for new in reversed(missing):
        new.mkdir(exist_ok=True)
        fsync_dir(new.parent)
