"""The one YAML reader every spec, policy, preset and node config goes through refuses what could mislead or hang.

Duplicate keys, aliases, merge keys, files over 1 MB and anything but a regular file are each one
bad-input problem naming the file; nothing blocks on a FIFO and nothing expands an alias bomb.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from trialcore.errors import BadInputError, ExitCode
from trialcore.yaml_file import MAX_YAML_BYTES, parse_yaml_mapping, read_yaml_mapping


def _one_line(path: Path) -> str:
    with pytest.raises(BadInputError) as caught:
        read_yaml_mapping(path, what="trial spec")
    assert caught.value.exit_code is ExitCode.BAD_INPUT
    [line] = caught.value.lines()
    return line


def test_duplicate_top_level_key_names_both_lines(tmp_path: Path) -> None:
    """``rounds: 10`` then ``rounds: 3`` is refused, naming the field and both lines."""
    path = tmp_path / "spec.yaml"
    path.write_text("rounds: 10\ntitle: t\nrounds: 3\n", encoding="utf-8")
    line = _one_line(path)
    assert line.startswith(f"{path}: rounds: found key 'rounds' written twice (lines 1 and 3)")


def test_duplicate_key_in_a_list_item_names_its_path(tmp_path: Path) -> None:
    """A duplicate inside a list entry names the entry's dotted path."""
    path = tmp_path / "spec.yaml"
    path.write_text("participants:\n  - {site_id: a, site_id: b}\n", encoding="utf-8")
    assert "participants.0.site_id: found key 'site_id' written twice (lines 2 and 2)" in _one_line(path)


def test_keys_equal_in_value_are_duplicates(tmp_path: Path) -> None:
    """``1`` and ``0x1`` are the same key once read: refused like a literal repeat."""
    path = tmp_path / "spec.yaml"
    path.write_text("a:\n  1: x\n  0x1: y\n", encoding="utf-8")
    assert "written twice (lines 2 and 3)" in _one_line(path)


def test_alias_is_refused_before_it_expands(tmp_path: Path) -> None:
    """A billion-laughs alias bomb is refused at its first alias, in well under a second."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    lines.append("title: *a9")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    started = time.monotonic()
    line = _one_line(path)
    assert time.monotonic() - started < 1.0
    assert "an alias (*a0) at line 2" in line and "aliases (*name) are refused" in line


def test_file_over_the_size_cap_is_refused_unread(tmp_path: Path) -> None:
    """A spec larger than 1 MB is refused by its size, naming the limit."""
    path = tmp_path / "big.yaml"
    path.write_bytes(b"title: x\n" + b"# padding\n" * (MAX_YAML_BYTES // 10 + 1))
    line = _one_line(path)
    assert f"found {path.stat().st_size} bytes" in line and f"at most {MAX_YAML_BYTES} bytes (1 MB)" in line


def test_text_over_the_size_cap_is_refused() -> None:
    """Text handed to the parser directly obeys the same cap."""
    with pytest.raises(BadInputError) as caught:
        parse_yaml_mapping("a: " + "x" * MAX_YAML_BYTES, shown_as="inline")
    assert "more than 1000000 bytes" in caught.value.lines()[0]


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """A named pipe given as a spec path is refused at once (opening it for reading would wait forever)."""
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    outcome: list[str] = []
    worker = threading.Thread(target=lambda: outcome.append(_one_line(fifo)), daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "reading a FIFO blocked"
    assert "a named pipe (FIFO), not a regular file" in outcome[0]


def test_directory_and_symlink_loop_are_one_line_each(tmp_path: Path) -> None:
    """A folder or a symbolic-link loop in place of the file is a bad-input line, not a traceback."""
    assert "found a directory" in _one_line(tmp_path)
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(tmp_path / "loop.yaml")
    assert "a symbolic link loop" in _one_line(loop)


def test_control_characters_in_yaml_errors_are_escaped(tmp_path: Path) -> None:
    """A terminal escape sequence in a duplicated key reaches the message escaped, never raw."""
    path = tmp_path / "spec.yaml"
    path.write_text('"\\e[2Jx": 1\n"\\e[2Jx": 2\n', encoding="utf-8")
    line = _one_line(path)
    assert "\x1b" not in line and "\\x1b[2Jx" in line
