"""The audit chain: what it writes, and every kind of tampering verification must catch."""

from __future__ import annotations

import hashlib
import json
import math
import random
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trialcore.audit_chain import AuditChain, AuditEntry, AuditEntryError, ChainHead
from trialcore.audit_entry import GENESIS_HASH, entry_hash
from trialcore.audit_verify import TORN_LAST_LINE, verify_chain
from trialcore.errors import BadInputError, ExitCode, IntegrityError

SPEC_HASH = hashlib.sha256(b"trial spec").hexdigest()
START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ENTRIES = 30


def ticking_clock(start: datetime = START) -> Callable[[], datetime]:
    """A clock that advances one second per call."""
    ticks = iter(range(10**9))

    def now() -> datetime:
        return start + timedelta(seconds=next(ticks))

    return now


def open_chain(path: Path, actor: str = "coordinator") -> AuditChain:
    return AuditChain.open(path, actor=actor, trial_id="trial-1", spec_hash=SPEC_HASH, clock=ticking_clock())


def build_log(path: Path, entries: int = ENTRIES) -> ChainHead:
    """Write a realistic chain and return its head."""
    chain = open_chain(path)
    chain.append("trial-started", {"sites": ["de-berlin", "fr-paris"], "rounds": 9})
    events = ["round-configured", "update-received", "update-received", "refusal"]
    for i in range(1, entries):
        event = events[i % len(events)]
        chain.append(event, {"round": i // 4 + 1, "loss": 1.0 / (i + 1), "site": "de-berlin", "note": "Größe ✓"})
    return chain.head


@pytest.fixture
def log(tmp_path: Path) -> tuple[Path, ChainHead, bytes]:
    path = tmp_path / "runs" / "x" / "audit.jsonl"
    head = build_log(path)
    return path, head, path.read_bytes()


def lines_of(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def test_entry_shape_and_hash_follow_the_published_format(tmp_path: Path) -> None:
    """An independent verifier can recompute every hash from the documented canonical JSON."""
    path = tmp_path / "audit.jsonl"
    build_log(path, entries=3)
    prev = "0" * 64
    for seq, raw in enumerate(lines_of(path.read_bytes())):
        entry = json.loads(raw)
        assert set(entry) == {"seq", "time", "actor", "event", "trial_id", "spec_hash", "payload", "prev_hash", "hash"}
        assert entry["seq"] == seq and entry["prev_hash"] == prev
        body = {k: v for k, v in entry.items() if k != "hash"}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        assert entry["hash"] == hashlib.sha256(canonical).hexdigest()
        assert raw == json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        prev = entry["hash"]
    first = json.loads(lines_of(path.read_bytes())[0])
    assert first["time"] == "2025-03-01T12:00:00.000000Z"
    assert first["actor"] == "coordinator" and first["spec_hash"] == SPEC_HASH


def test_intact_chain_verifies_with_and_without_expected_head(log: tuple[Path, ChainHead, bytes]) -> None:
    """A chain nobody touched passes, and its head matches what the writer reported."""
    path, head, _ = log
    report = verify_chain(path, expected_head=head)
    assert report.ok and report.head == head and head.length == ENTRIES
    assert verify_chain(path).ok
    assert report.message() == f"{path}: ok: {ENTRIES} entries, head {head.hash}"
    json.dumps(report.as_json())


def test_every_flipped_byte_is_caught_at_its_line(log: tuple[Path, ChainHead, bytes]) -> None:
    """Changing any byte anywhere (even into invalid UTF-8 or JSON) fails at the line that holds it."""
    path, _, data = log
    rng = random.Random(20250301)
    positions = sorted({rng.randrange(len(data)) for _ in range(260)} | {0, len(data) - 2, len(data) - 1})
    assert len(positions) >= 200
    for position in positions:
        tampered = bytearray(data)
        tampered[position] ^= rng.randrange(1, 256)
        path.write_bytes(bytes(tampered))
        report = verify_chain(path)
        expected_line = data[:position].count(b"\n") + 1
        assert not report.ok, f"flip at byte {position} not detected"
        assert report.first_bad_line == expected_line, (position, report.message())


def test_edited_entry_message_names_file_line_and_intact_prefix(log: tuple[Path, ChainHead, bytes]) -> None:
    """A regulator sees which line was edited and how far the chain can still be trusted."""
    path, _, data = log
    lines = lines_of(data)
    entry = json.loads(lines[6])
    entry["payload"]["loss"] = 0.001
    lines[6] = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    path.write_bytes(b"".join(lines))
    report = verify_chain(path)
    assert report.message() == f"{path}: line 7: hash mismatch (entry was edited); the chain is intact up to line 6"
    assert report.as_json()["first_bad_line"] == 7 and report.length == 6
    with pytest.raises(IntegrityError) as caught:
        report.raise_if_broken()
    assert caught.value.exit_code == ExitCode.INTEGRITY_FAILED


def test_overflowing_number_is_reported_not_raised(log: tuple[Path, ChainHead, bytes]) -> None:
    """A number edited to 1e999 (which Python reads as infinity) is a bad line, not a crash."""
    path, _, data = log
    lines = lines_of(data)
    lines[4] = lines[4].replace(b'"loss":0.2', b'"loss":1e999')
    path.write_bytes(b"".join(lines))
    report = verify_chain(path)
    assert report.first_bad_line == 5 and report.reason == "not valid JSON"


def test_deleting_any_single_line_is_caught(log: tuple[Path, ChainHead, bytes]) -> None:
    """A removed entry is found at its place; removing the last one needs the recorded head."""
    path, head, data = log
    lines = lines_of(data)
    for index in range(len(lines)):
        path.write_bytes(b"".join(lines[:index] + lines[index + 1 :]))
        with_head = verify_chain(path, expected_head=head)
        assert not with_head.ok and with_head.first_bad_line == index + 1
        if index < len(lines) - 1:
            assert verify_chain(path).first_bad_line == index + 1


def test_swapping_adjacent_lines_is_caught(log: tuple[Path, ChainHead, bytes]) -> None:
    """Reordering two entries is caught at the first of them."""
    path, _, data = log
    lines = lines_of(data)
    for index in range(len(lines) - 1):
        swapped = list(lines)
        swapped[index], swapped[index + 1] = swapped[index + 1], swapped[index]
        path.write_bytes(b"".join(swapped))
        report = verify_chain(path)
        assert not report.ok and report.first_bad_line == index + 1


def test_inserting_a_copied_line_is_caught(log: tuple[Path, ChainHead, bytes]) -> None:
    """Replaying an existing entry anywhere in the log is caught where it was inserted."""
    path, _, data = log
    lines = lines_of(data)
    rng = random.Random(7)
    for _ in range(60):
        source, at = rng.randrange(len(lines)), rng.randrange(len(lines) + 1)
        path.write_bytes(b"".join([*lines[:at], lines[source], *lines[at:]]))
        report = verify_chain(path)
        duplicate_of_next = source == at  # the copy sits before its twin, so the twin is the misfit
        assert not report.ok and report.first_bad_line == at + (2 if duplicate_of_next else 1)


def test_forged_append_is_caught_only_against_the_recorded_head(log: tuple[Path, ChainHead, bytes]) -> None:
    """An attacker who computes a valid hash can extend the log; the head in report.json exposes it."""
    path, head, data = log
    forged = AuditEntry.create(
        seq=head.length,
        time="2025-03-01T13:00:00.000000Z",
        actor="coordinator",
        event="round-configured",
        trial_id="trial-1",
        spec_hash=SPEC_HASH,
        payload={"round": 99},
        prev_hash=head.hash,
    )
    path.write_bytes(data + forged.line())
    assert verify_chain(path).ok
    report = verify_chain(path, expected_head=head)
    assert not report.ok and report.first_bad_line == ENTRIES + 1
    assert report.intact_through_line == ENTRIES and "appended after the recorded head" in (report.reason or "")


def test_truncating_whole_lines_is_caught_against_the_recorded_head(log: tuple[Path, ChainHead, bytes]) -> None:
    """Dropping entries from the end leaves a consistent chain that the recorded head rejects."""
    path, head, data = log
    path.write_bytes(b"".join(lines_of(data)[:-3]))
    assert verify_chain(path).ok
    report = verify_chain(path, expected_head=head)
    assert not report.ok and report.first_bad_line == ENTRIES - 2 and "removed from the end" in (report.reason or "")


def test_truncating_mid_line_reports_a_torn_last_line(log: tuple[Path, ChainHead, bytes]) -> None:
    """A crash mid-write (or a cut inside a line) is reported as a torn last line, never ignored."""
    path, head, data = log
    last_start = data.rindex(b"\n", 0, len(data) - 1) + 1
    for cut in (len(data) - 1, last_start + 40, last_start + 1):
        path.write_bytes(data[:cut])
        report = verify_chain(path)
        assert not report.ok and report.reason == TORN_LAST_LINE and report.first_bad_line == ENTRIES
        assert report.head == ChainHead(json.loads(lines_of(data)[-2])["hash"], ENTRIES - 1)
    path.write_bytes(data + b'{"seq":30,')
    assert verify_chain(path, expected_head=head).reason == TORN_LAST_LINE


def test_empty_log_is_not_ok_unless_the_head_says_empty(tmp_path: Path) -> None:
    """An emptied log fails, except for a trial recorded as having no entries."""
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b"")
    assert not verify_chain(path).ok
    assert verify_chain(path, expected_head=ChainHead(GENESIS_HASH, 0)).ok
    assert not verify_chain(path, expected_head=ChainHead("a" * 64, 1)).ok


def test_missing_log_is_bad_input(tmp_path: Path) -> None:
    """Verifying a path that does not exist is a user error (exit 2), not a crash."""
    with pytest.raises(BadInputError, match="cannot be read"):
        verify_chain(tmp_path / "nope.jsonl")


def test_reopening_an_intact_chain_continues_from_its_head(tmp_path: Path) -> None:
    """A restarted coordinator appends after the existing entries, keeping one chain."""
    path = tmp_path / "deep" / "dir" / "audit.jsonl"
    first = open_chain(path)
    last = [first.append("update-sent", {"round": r}) for r in range(5)][-1]
    again = open_chain(path)
    assert again.head == first.head == ChainHead(last.hash, 5)
    entry = again.append("update-sent", {"round": 5})
    assert entry.seq == 5 and entry.prev_hash == last.hash
    assert verify_chain(path, expected_head=again.head).ok


def test_refuses_to_append_to_a_broken_chain(log: tuple[Path, ChainHead, bytes]) -> None:
    """Opening a tampered or torn log fails with exit 5 and writes nothing."""
    path, _, data = log
    for broken in (data.replace(b'"rounds":9', b'"rounds":8'), data[:-5]):
        path.write_bytes(broken)
        with pytest.raises(IntegrityError, match="line"):
            open_chain(path)
        assert path.read_bytes() == broken


def test_refuses_to_append_after_the_log_changed_on_disk(tmp_path: Path) -> None:
    """Someone writing to the log behind the chain's back stops further appends."""
    path = tmp_path / "audit.jsonl"
    chain = open_chain(path)
    chain.append("trial-started", {})
    with path.open("ab") as stream:
        stream.write(b"junk\n")
    for _ in range(2):
        with pytest.raises(IntegrityError):
            chain.append("round-configured", {"round": 1})


def test_injected_clock_gives_deterministic_utc_times(tmp_path: Path) -> None:
    """Tests and replays control entry times; any zone is written as UTC with Z; naive times are refused."""
    cet = timezone(timedelta(hours=1))
    chain = AuditChain.open(
        tmp_path / "a.jsonl",
        actor="site:de-berlin",
        trial_id="t",
        spec_hash=SPEC_HASH,
        clock=ticking_clock(datetime(2025, 3, 1, 13, 0, tzinfo=cet)),
    )
    times = [chain.append("update-sent", {}).time for _ in range(2)]
    assert times == ["2025-03-01T12:00:00.000000Z", "2025-03-01T12:00:01.000000Z"]
    naive = AuditChain.open(
        tmp_path / "b.jsonl", actor="x", trial_id="t", spec_hash=SPEC_HASH, clock=lambda: datetime(2025, 1, 1)
    )
    with pytest.raises(ValueError, match="naive"):
        naive.append("update-sent", {})


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_payload_is_refused_and_nothing_written(tmp_path: Path, bad: float) -> None:
    """A NaN or Infinity metric cannot enter the log, since canonical JSON must be deterministic."""
    path = tmp_path / "audit.jsonl"
    chain = open_chain(path)
    chain.append("trial-started", {})
    before = path.read_bytes()
    with pytest.raises(AuditEntryError) as caught:
        chain.append("update-received", {"metrics": {"loss": bad}})
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    assert any("payload.metrics.loss" in line and "finite" in line for line in caught.value.lines())
    assert path.read_bytes() == before and chain.head.length == 1


def test_bad_event_names_and_non_json_payloads_are_refused(tmp_path: Path) -> None:
    """Only kebab-case events and plain JSON payloads are written, so every line verifies."""
    chain = open_chain(tmp_path / "audit.jsonl")
    cases: list[tuple[str, Any]] = [
        ("Round Configured", {}),
        ("update-sent", {1: "x"}),
        ("update-sent", {"x": object()}),
    ]
    for event, payload in cases:
        with pytest.raises(AuditEntryError):
            chain.append(event, payload)
    with pytest.raises(AuditEntryError, match="spec_hash"):
        AuditChain.open(tmp_path / "b.jsonl", actor="coordinator", trial_id="t", spec_hash="abc")


def test_entries_cross_reference_the_other_sides_hash(tmp_path: Path) -> None:
    """A site's entry can quote the coordinator's entry hash, tying the two logs together."""
    coordinator = open_chain(tmp_path / "coordinator.jsonl")
    site = open_chain(tmp_path / "site.jsonl", actor="site:de-berlin")
    sent = coordinator.append("round-configured", {"round": 1})
    received = site.append("update-sent", {"round": 1, "coordinator_hash": sent.hash})
    coordinator.append("update-received", {"round": 1, "site_hash": received.hash})
    assert received.payload["coordinator_hash"] == sent.hash
    assert received.hash == entry_hash(received.as_json())


def test_concurrent_appends_from_threads_keep_one_valid_chain(tmp_path: Path) -> None:
    """The ServerApp thread and others can append at once without corrupting the log."""
    path = tmp_path / "audit.jsonl"
    chain = open_chain(path)

    def worker(n: int) -> None:
        for i in range(8):
            chain.append("update-received", {"worker": n, "i": i})

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = verify_chain(path, expected_head=chain.head)
    assert report.ok and report.length == 48


_json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=40, deadline=None, database=None)
@given(payload=st.dictionaries(st.text(), _json_values, max_size=5))
def test_any_json_payload_round_trips_and_verifies(payload: dict[str, Any]) -> None:
    """Whatever JSON a caller logs (unicode, -0.0, big ints) is stored exactly and verifies."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "audit.jsonl"
        entry = open_chain(path).append("update-sent", payload)
        assert entry.payload == json.loads(json.dumps(payload))
        stored = json.loads(path.read_bytes())
        assert stored["payload"] == entry.payload
        assert verify_chain(path, expected_head=ChainHead(entry.hash, 1)).ok


def test_audit_modules_import_neither_flower_nor_torch() -> None:
    """Sites can keep a chain without pulling the coordinator's or training stack's imports."""
    code = (
        "import sys, trialcore.audit_chain, trialcore.audit_verify;"
        "bad = [m for m in sys.modules if m.split('.')[0] in {'flwr', 'torch', 'sandbox', 'participants'}];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
