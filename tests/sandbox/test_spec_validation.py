"""The trial spec as a researcher relies on it: frozen, strict, hashed by meaning, paths relative to the file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from sandbox.cli import app
from trialcore.errors import SpecError
from trialcore.spec import TrialSpec
from trialcore.spec_loading import load_spec


def test_loaded_spec_cannot_be_changed(demo_dir: Path) -> None:
    """A validated spec is frozen at every level, so what sites approved is what runs."""
    spec = load_spec("demo.yaml").spec
    with pytest.raises(ValidationError):
        spec.rounds = 1
    with pytest.raises(ValidationError):
        spec.local_training.epochs = 50
    with pytest.raises(ValidationError):
        spec.participants[0].jurisdiction = "US"
    assert spec.rounds == 10 and spec.local_training.epochs == 1 and spec.participants[0].jurisdiction == "DE"


def test_unknown_nested_key_is_refused_listing_the_keys_allowed_there(write_spec: Callable[..., str]) -> None:
    """A typo inside a nested section is an error naming the full path and that section's keys, not a silent default."""

    def change(data: dict[str, Any]) -> None:
        data["privacy"]["epsilon"] = 1.0

    shown = write_spec(change)
    with pytest.raises(SpecError) as caught:
        load_spec(shown)
    [problem] = caught.value.problems
    assert problem.source == shown
    assert problem.field == "privacy.epsilon"
    assert problem.found == "unknown key 'epsilon'"
    assert (
        "(accountant, delta, epsilon_budget, evaluation_noise_multiplier, feature_statistics_noise_multiplier, "
        "max_grad_norm, noise_multiplier)"
    ) in problem.allowed


def test_unknown_key_in_a_list_item_is_refused() -> None:
    """A typo in one participant entry is refused too (models forbid extra keys at every depth)."""
    data = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "demo.yaml").read_text(encoding="utf-8"))
    data["participants"][2]["country"] = "GB"
    with pytest.raises(ValidationError) as caught:
        TrialSpec.model_validate(data)
    assert [error["loc"] for error in caught.value.errors()] == [("participants", 2, "country")]


def _reordered_without_comments(data: dict[str, Any]) -> str:
    """The same spec with keys in reverse order at every level, flow style, no comments."""

    def reverse(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: reverse(value[key]) for key in reversed(list(value))}
        if isinstance(value, list):
            return [reverse(item) for item in value]
        return value

    return yaml.safe_dump(reverse(data), sort_keys=False, default_flow_style=True)


def test_spec_hash_ignores_comments_and_key_order(demo_dir: Path) -> None:
    """Reformatting a spec (comments, key order, layout) keeps its hash, so sites' approvals still hold."""
    original = load_spec("demo.yaml")
    data = yaml.safe_load((demo_dir / "demo.yaml").read_text(encoding="utf-8"))
    (demo_dir / "reformatted.yaml").write_text(_reordered_without_comments(data), encoding="utf-8")
    assert "#" in (demo_dir / "demo.yaml").read_text(encoding="utf-8")
    assert "#" not in (demo_dir / "reformatted.yaml").read_text(encoding="utf-8")
    assert load_spec("reformatted.yaml").spec_hash == original.spec_hash


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        (None, "seed", 43),
        (None, "rounds", 11),
        ("local_training", "learning_rate", 0.05),
        ("privacy", "epsilon_budget", 8.5),
    ],
)
def test_spec_hash_changes_when_a_value_changes(demo_dir: Path, section: str | None, key: str, value: Any) -> None:
    """Any change of meaning changes the hash, so an edited spec cannot pass as the approved one."""
    original = load_spec("demo.yaml").spec_hash
    data = yaml.safe_load((demo_dir / "demo.yaml").read_text(encoding="utf-8"))
    (data if section is None else data[section])[key] = value
    (demo_dir / "edited.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    edited = load_spec("edited.yaml").spec_hash
    assert edited != original and len(edited) == 64


def test_federation_resolves_against_the_spec_file_not_the_cwd(
    demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sandbox validate` works from any directory: the federation folder is found beside the spec file."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert not (elsewhere / "demo-sites").exists()
    result = CliRunner().invoke(app, ["validate", "../demo.yaml", "--format", "json"])
    assert result.exit_code == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)
    assert document["spec_file"] == "../demo.yaml"
    assert Path(document["federation"]) == (demo_dir / "demo-sites").resolve()
