"""A site parses its own files and the trial spec once per content, and still sees every change at the next message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from participants import verified_specs
from participants.content_cache import ContentCache
from participants.embedded_data import embedded_partition
from participants.site_config import load_site_config
from participants.site_data import load_site_data
from participants.site_guard import Refused, verified_spec
from tests.approved_demo import DemoCopy
from tests.participants.guard_harness import message, spec_document
from trialcore import wire
from trialcore.spec import TrialSpec


def test_content_cache_keys_by_bytes_is_bounded_and_never_keeps_errors() -> None:
    """Other bytes under the same key are made afresh; the oldest entry goes first; a failing make keeps nothing."""
    cache: ContentCache[str] = ContentCache(max_entries=2)
    made: list[bytes] = []

    def make(content: bytes) -> str:
        made.append(content)
        return content.decode()

    assert cache.get_or_make("k", b"a", lambda: make(b"a")) == "a"
    assert cache.get_or_make("k", b"a", lambda: make(b"a")) == "a"
    assert cache.get_or_make("k", b"b", lambda: make(b"b")) == "b"
    assert made == [b"a", b"b"]
    cache.get_or_make("k", b"c", lambda: make(b"c"))
    assert len(cache) == 2
    cache.get_or_make("k", b"a", lambda: make(b"a"))
    assert made == [b"a", b"b", b"c", b"a"], "the least recently used entry was dropped"

    def fail() -> str:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        cache.get_or_make("x", b"z", fail)
    assert cache.get_or_make("x", b"z", lambda: "ok") == "ok"


def test_an_edit_to_the_site_config_or_its_data_is_seen_at_once(tmp_path: Path) -> None:
    """Cached parses follow the files' bytes: an edited config or CSV file is read as edited; arrays are the caller's own."""
    features, labels = embedded_partition(0)
    rows = [",".join([*(f"f{i}" for i in range(features.shape[1])), "y"])]
    rows += [",".join(f"{v:.6g}" for v in (*row, label)) for row, label in zip(features, labels, strict=True)]
    (tmp_path / "site.csv").write_text("\n".join(rows) + "\n")
    path = tmp_path / "site.yaml"
    config = {
        "site_id": "de-berlin",
        "jurisdiction": "DE",
        "institution": "test",
        "data": {"kind": "csv", "path": "site.csv", "target_column": "y"},
        "test_fraction": 0.25,
    }
    path.write_text(yaml.safe_dump(config))
    first = load_site_config(path)
    assert load_site_config(path) is first, "the same bytes are not parsed again"
    path.write_text(yaml.safe_dump(config | {"test_fraction": 0.3}))
    edited = load_site_config(path)
    assert edited.config.test_fraction == 0.3 and first.config.test_fraction == 0.25
    data = load_site_data(edited)
    assert data.num_train + data.num_test == len(rows) - 1
    data.x_train[:] = 99.0
    assert (load_site_data(edited).x_train != 99.0).any(), "a handler changing its arrays changes no other message's"
    (tmp_path / "site.csv").write_text("\n".join(rows[:-20]) + "\n")
    shorter = load_site_data(edited)
    assert shorter.num_train + shorter.num_test == len(rows) - 21


def test_a_spec_is_parsed_once_per_hash_and_a_mismatch_is_refused_every_time(
    approved_demo: DemoCopy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same spec text again is not re-validated; a new spec is; text that does not hash to its named hash is refused
    even when that hash names a spec verified before."""
    verified_specs.forget_all()
    parsed: list[int] = []
    validate = TrialSpec.model_validate_json

    def counting(text: str) -> TrialSpec:
        parsed.append(len(text))
        return validate(text)

    monkeypatch.setattr(TrialSpec, "model_validate_json", counting)
    document = spec_document(approved_demo.spec)
    config = message(document).content.config_records[wire.CONFIG_RECORD]
    first = verified_spec(config)
    assert verified_spec(message(document, server_round=2).content.config_records[wire.CONFIG_RECORD]) is first
    assert len(parsed) == 1
    other = verified_spec(message(document | {"rounds": 7}).content.config_records[wire.CONFIG_RECORD])
    assert other.rounds == 7 and len(parsed) == 2
    swapped = message(document | {"rounds": 500}, spec_hash=str(config[wire.SPEC_HASH]))
    with pytest.raises(Refused, match="does not match the spec hash"):
        verified_spec(swapped.content.config_records[wire.CONFIG_RECORD])
