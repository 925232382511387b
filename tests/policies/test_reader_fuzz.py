"""Fuzzing every reader in-process: trial specs, policy layers, site node configs and site CSVs.

Where :mod:`test_policy_cli_fuzz` drives whole commands, this calls each reader directly, so many
more inputs fit the same time: ``load_spec``, ``load_policy`` (an institution layer and its
``extends`` chain), ``load_site_config`` and ``read_csv_records``. Inputs are the demo's files
mutated structurally (values, keys, whole sections) and byte by byte (the CLI fuzz's edits), plus
the hostile shapes of issue 18: a key written twice, anchors and alias bombs, merge keys, a
byte-order mark, terminal escape sequences, files over the 1 MB cap; CSVs get duplicate and empty
header names, ragged rows and numbers finite in float64 but not in float32.

Each reader must either return a value that keeps its invariants, or raise a
:class:`~trialcore.errors.SandboxError` whose exit code is one a user's input may cause and whose
lines are short and terminal-safe; no example may take more than :data:`EXAMPLE_SECONDS`.

The count per reader is ``SANDBOX_FUZZ_EXAMPLES`` (default :data:`DEFAULT_EXAMPLES` in
``make test``); ``make bench`` runs this module with a larger count and reports counts and time.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import DataObject
from policy_layer_builders import PINNED
from test_policy_cli_fuzz import (
    DOCS,
    INSTITUTION_FILES,
    ORIGINAL,
    POLICY_FIELDS,
    SITE_FIELDS,
    SITE_FILES,
    TRIAL,
    TRIAL_FIELDS,
    damage,
    dump,
    mutate,
    with_dp,
)

from participants.csv_connector import FLOAT32_MAX, read_csv_records
from participants.site_config import load_site_config
from policies import load_policy
from trialcore.errors import ExitCode, SandboxError
from trialcore.spec_loading import load_spec
from trialcore.yaml_file import MAX_YAML_BYTES

DEFAULT_EXAMPLES = 250
FUZZ_EXAMPLES = int(os.environ.get("SANDBOX_FUZZ_EXAMPLES", str(DEFAULT_EXAMPLES)))
"""Examples per reader (four readers): 1,000 in ``make test``; ``make bench`` runs 2,500 each (10,000)."""

EXAMPLE_SECONDS = 20.0
"""No single input may keep a reader busy longer (a hang, or a blow-up, fails the test)."""

MAX_LINE_CHARS = 2_000
USER_INPUT_EXITS = {ExitCode.BAD_INPUT, ExitCode.REFUSED_BY_POLICY}

READER_SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)

T = TypeVar("T")

# ---------------------------------------------------------------- hostile YAML shapes

ALIAS_BOMB = b"".join(
    [b'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n']
    + [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]\n".encode() for i in range(1, 9)]
)


def hostile(data: DataObject, raw: bytes) -> bytes:
    """One of issue 18's shapes, applied to a YAML file."""
    lines = raw.splitlines(keepends=True) or [b"\n"]
    kind = data.draw(
        st.sampled_from(("duplicate-line", "alias-bomb", "alias", "merge", "bom", "escape", "oversize", "anchor")),
        label="hostile shape",
    )
    if kind == "duplicate-line":
        top = [line for line in lines if line[:1].isalpha()] or lines
        return raw + data.draw(st.sampled_from(top), label="line written again")
    if kind == "alias-bomb":
        key = data.draw(st.sampled_from((b"title", b"strategy", b"name", b"institution")), label="bomb key")
        return ALIAS_BOMB + raw + key + b": *a8\n"
    if kind == "alias":
        return b"x: &x 12\n" + raw + b"rounds: *x\n"
    if kind == "merge":
        return raw + b"privacy:\n  <<: {epsilon_budget: 100}\n"
    if kind == "bom":
        return b"\xef\xbb\xbf" + raw
    if kind == "escape":
        return raw + b'title: "\\e[2J\\e]0;owned\\a"\n'
    if kind == "oversize":
        return raw + b"#" * (MAX_YAML_BYTES + 1 - len(raw)) + b"\n"
    return raw.replace(b": ", b": &anchor ", 1)


def yaml_input(data: DataObject, doc: Any, fields: Any) -> bytes:
    """A structurally mutated document, then maybe byte damage, then maybe a hostile shape."""
    raw = dump(mutate(data, copy.deepcopy(doc), fields)) if data.draw(st.booleans(), label="mutate") else dump(doc)
    if data.draw(st.booleans(), label="damage bytes"):
        raw = damage(data, raw)
    if data.draw(st.booleans(), label="hostile"):
        raw = hostile(data, raw)
    return raw


# ---------------------------------------------------------------- CSVs

CELLS = st.one_of(
    st.integers(min_value=-1000, max_value=1000).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        ("1e308", "-1e308", "3.4028234e38", "3.5e38", "1e39", "nan", "inf", "-inf", "", " ", "0", "1", "2", "1_0")
    ),
    st.sampled_from(("x", "\x1b[2J", "é", '"quoted, with comma"', '"unclosed', "\x00", "\r")),
)
NAMES = st.one_of(st.sampled_from(("a", "b", "c", "y", "", " y ", "\ufeffa", "a,b")), st.text(max_size=6))


def csv_input(data: DataObject) -> tuple[bytes, tuple[str, ...] | None]:
    """A CSV table with a drawn header, drawn rows (some ragged) and maybe byte damage; feature columns."""
    header = data.draw(st.lists(NAMES, min_size=0, max_size=5), label="header")
    if data.draw(st.booleans(), label="usual header"):
        header = ["a", "b", "y"]
    width = max(len(header), 1)
    rows = data.draw(
        st.lists(st.lists(CELLS, min_size=max(width - 1, 0), max_size=width + 1), min_size=0, max_size=12),
        label="rows",
    )
    text = "\n".join(",".join(cells) for cells in [header, *rows]) + "\n"
    raw = text.encode("utf-8", "surrogatepass")
    if data.draw(st.booleans(), label="bom"):
        raw = b"\xef\xbb\xbf" + raw
    if data.draw(st.integers(min_value=0, max_value=3), label="damage csv") == 0:
        raw = damage(data, raw)
    features = data.draw(st.one_of(st.none(), st.lists(NAMES, max_size=3).map(tuple)), label="feature_columns")
    return raw, features


# ---------------------------------------------------------------- running a reader


class _Bug:
    """Anything but a SandboxError escaping a reader: a bug, re-raised in the test's thread."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def bounded(action: Callable[[], T]) -> T | SandboxError:
    """Run ``action`` in a fresh thread (see ``run_cli``); its value or its SandboxError, within the time bound."""
    outcome: list[Any] = []

    def work() -> None:
        try:
            outcome.append(action())
        except SandboxError as err:
            outcome.append(err)
        except BaseException as err:  # anything else is a bug: fail the example with it
            outcome.append(_Bug(err))

    started = time.monotonic()
    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(EXAMPLE_SECONDS)
    assert not worker.is_alive(), f"a reader took more than {EXAMPLE_SECONDS} s"
    event(f"seconds: {'<0.1' if time.monotonic() - started < 0.1 else '>=0.1'}")
    result = outcome[0]
    if isinstance(result, _Bug):
        raise result.error
    if isinstance(result, SandboxError):
        event(f"exit {int(result.exit_code)}")
        assert result.exit_code in USER_INPUT_EXITS, result.render()
        for line in result.lines():
            assert line.isprintable(), f"control characters reach the terminal: {line!r}"
            assert len(line) <= MAX_LINE_CHARS, f"a message line of {len(line)} characters"
    else:
        event("read")
    return result  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the demo's files, written once; each example overwrites the one file it damages."""
    root = tmp_path_factory.mktemp("reader-fuzz") / "examples"
    for name, content in ORIGINAL.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


# ---------------------------------------------------------------- the tests


@READER_SETTINGS
@given(data=st.data())
def test_spec_reader_never_crashes(scratch: Path, data: DataObject) -> None:
    """Every malformed trial spec is read or refused as bad input, with short, terminal-safe lines."""
    path = scratch / "fuzz-spec.yaml"
    path.write_bytes(yaml_input(data, with_dp(data, DOCS[TRIAL]), TRIAL_FIELDS))
    loaded = bounded(lambda: load_spec(path))
    if not isinstance(loaded, SandboxError):
        assert loaded.spec.rounds >= 1 and not isinstance(loaded.spec.rounds, bool)


@READER_SETTINGS
@given(data=st.data())
def test_policy_reader_never_crashes(scratch: Path, data: DataObject) -> None:
    """Every malformed institution layer (and its chain) is composed or refused, never a traceback."""
    name = data.draw(st.sampled_from(INSTITUTION_FILES), label="institution")
    path = scratch / Path(name).parent / f"fuzz-{Path(name).name}"
    path.write_bytes(yaml_input(data, DOCS[name], POLICY_FIELDS[name]))
    policy = bounded(lambda: load_policy(path, clock=PINNED))
    if not isinstance(policy, SandboxError):
        assert policy.max_rounds >= 1


@READER_SETTINGS
@given(data=st.data())
def test_site_config_reader_never_crashes(scratch: Path, data: DataObject) -> None:
    """Every malformed node config is read or refused as bad input."""
    name = data.draw(st.sampled_from(SITE_FILES), label="site")
    path = scratch / Path(name).parent / f"fuzz-{Path(name).name}"
    path.write_bytes(yaml_input(data, DOCS[name], SITE_FIELDS))
    bounded(lambda: load_site_config(path))


@READER_SETTINGS
@given(data=st.data())
def test_csv_reader_never_crashes(scratch: Path, data: DataObject) -> None:
    """Every CSV is read into values finite in float32 with 0/1 labels, or refused naming file, row or column."""
    raw, features = csv_input(data)
    path = scratch / "fuzz.csv"
    path.write_bytes(raw)
    result = bounded(lambda: read_csv_records(path, shown_as="fuzz.csv", target_column="y", feature_columns=features))
    if not isinstance(result, SandboxError):
        x, y = result
        assert x.shape[0] == y.shape[0] >= 1
        assert bool(np.all(np.abs(x) <= FLOAT32_MAX)) and set(np.unique(y).tolist()) <= {0.0, 1.0}
