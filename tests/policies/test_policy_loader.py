"""Loading policy files: every bad input is one clear line naming file, field and value."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from policy_layer_builders import PINNED, PINNED_NOW, ROOT, chain, merged, write

from policies import PolicyFileError, load_layers, load_policies, load_policy
from trialcore.errors import ExitCode


def _error(path: Path) -> PolicyFileError:
    with pytest.raises(PolicyFileError) as caught:
        load_policy(path, clock=PINNED)
    assert caught.value.exit_code is ExitCode.BAD_INPUT
    return caught.value


def _only_line(path: Path) -> str:
    lines = _error(path).lines()
    assert len(lines) == 1, lines
    return lines[0]


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    """A policy path that does not exist is a bad-input error naming the path, not a traceback."""
    line = _only_line(tmp_path / "nope.yaml")
    assert str(tmp_path / "nope.yaml") in line and "no such file" in line


def test_empty_file(tmp_path: Path) -> None:
    """An empty policy file says it is empty."""
    line = _only_line(write(tmp_path / "p.yaml", ""))
    assert "p.yaml" in line and "empty" in line


def test_non_utf8_file(tmp_path: Path) -> None:
    """A policy file in another encoding says where the bad byte is."""
    path = tmp_path / "latin1.yaml"
    path.write_bytes("title: Zürich\n".encode("latin-1"))
    line = _only_line(path)
    assert "latin1.yaml" in line and "not UTF-8" in line


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    """A YAML syntax error names the file and the line, never a traceback."""
    line = _only_line(write(tmp_path / "bad.yaml", "purposes:\n  allowed: [treatment-research\n"))
    assert "bad.yaml" in line and "YAML syntax error at line" in line


def test_top_level_list(tmp_path: Path) -> None:
    """A policy file whose top level is a list says a mapping is expected."""
    line = _only_line(write(tmp_path / "list.yaml", "- extends: preset:uk-gdpr\n"))
    assert "top-level list" in line and "mapping" in line


def test_unknown_key_lists_known_keys(tmp_path: Path) -> None:
    """A typo in a key is refused, naming the dotted field and the keys allowed there."""
    path = chain(tmp_path, institution={"privacy": {"epsilon_budgett": 2.0}})
    line = _only_line(path)
    assert line.startswith(f"{tmp_path}/institutions/site.yaml: privacy.epsilon_budgett: found unknown key")
    assert "epsilon_budget" in line and "min_noise_multiplier" in line


def test_wrong_type_names_field_and_value(tmp_path: Path) -> None:
    """A value of the wrong type (text for a number, a bool for a count) names field and value."""
    path = chain(tmp_path, institution={"training": {"max_rounds": "ten", "max_local_epochs": True}})
    lines = _error(path).lines()
    assert any("training.max_rounds: found 'ten'" in line for line in lines)
    assert any("training.max_local_epochs: found True" in line for line in lines)


def test_bad_values_all_reported_at_once(tmp_path: Path) -> None:
    """Every bad value in a file is reported in one error, each naming the file and field."""
    path = chain(tmp_path, institution={"privacy": {"epsilon_budget": -1, "delta": 2.0, "max_clipping_norm": True}})
    lines = _error(path).lines()
    assert len(lines) == 3
    assert all(line.startswith(str(path)) for line in lines)
    assert any("privacy.epsilon_budget: found -1; input should be greater than 0" in line for line in lines)
    assert any("privacy.delta: found 2.0" in line for line in lines)
    assert any("privacy.max_clipping_norm: found True; must be a number" in line for line in lines)


def test_unknown_purpose_lists_allowed_terms(tmp_path: Path) -> None:
    """An unknown purpose term names the file, the list index and the value, and lists the vocabulary."""
    path = chain(tmp_path, institution={"purposes": {"allowed": ["treatment-research", "cancer-research"]}})
    line = _only_line(path)
    assert "purposes.allowed.1: found 'cancer-research'" in line
    assert "unknown purpose term; allowed terms:" in line and "public-health-statistics" in line


def test_redline_cannot_be_allowed(tmp_path: Path) -> None:
    """Listing a redline purpose as allowed is a bad-input error in any layer."""
    path = chain(tmp_path, institution={"purposes": {"allowed": ["treatment-research", "insurance-pricing"]}})
    line = _only_line(path)
    assert "purposes" in line and "insurance-pricing" in line and "never be allowed" in line


def test_unacceptable_risk_tier_never_allowed(tmp_path: Path) -> None:
    """'unacceptable' AI risk is refused in a policy file, citing AI Act Art. 5."""
    path = chain(tmp_path, root={"ai": {"allowed_risk_tiers": ["high", "unacceptable"]}})
    line = _only_line(path)
    assert "root.yaml: ai.allowed_risk_tiers.1: found 'unacceptable'" in line and "Art. 5" in line


@pytest.mark.parametrize(
    ("code", "hint"),
    [("UK", "use GB"), ("de", "use DE"), ("XX", "ISO 3166-1 alpha-2"), (False, 'write Norway as "NO"')],
)
def test_jurisdiction_codes_are_iso(tmp_path: Path, code: object, hint: str) -> None:
    """Aggregator jurisdictions must be ISO 3166-1 alpha-2 codes; common mistakes get a hint."""
    path = chain(tmp_path, institution={"transfers": {"allowed_aggregator_jurisdictions": [code]}})
    line = _only_line(path)
    assert "transfers.allowed_aggregator_jurisdictions.0" in line and hint in line


def test_unknown_preset_lists_presets(tmp_path: Path) -> None:
    """`extends: preset:NAME` with an unknown name lists the shipped presets."""
    line = _only_line(write(tmp_path / "x.yaml", {"extends": "preset:eu-gdpr"}))
    assert "x.yaml: extends: found 'preset:eu-gdpr'; unknown preset" in line and "preset:eu-gdpr-ai-act" in line


def test_missing_extends_target_names_both(tmp_path: Path) -> None:
    """An `extends` path that does not exist is reported on the extending file, resolved relative to it."""
    path = write(tmp_path / "institutions" / "a.yaml", {"extends": "../countries/zz.yaml"})
    line = _only_line(path)
    assert f"{path}: extends: found '../countries/zz.yaml'" in line
    assert f"{tmp_path}/countries/zz.yaml" in line


def test_extends_cycle(tmp_path: Path) -> None:
    """Two files extending each other are refused instead of looping."""
    write(tmp_path / "a.yaml", {"extends": "b.yaml"})
    write(tmp_path / "b.yaml", {"extends": "a.yaml"})
    line = _only_line(tmp_path / "a.yaml")
    assert "extends" in line and "cycle" in line


def test_root_must_be_complete(tmp_path: Path) -> None:
    """A root layer (no extends) missing required fields names each one."""
    path = write(tmp_path / "root.yaml", merged(ROOT, {"privacy": {"epsilon_budget": None, "delta": None}}))
    lines = _error(path).lines()
    assert lines == [
        f"{path}: privacy.epsilon_budget: required in a root layer (a file without extends)",
        f"{path}: privacy.delta: required in a root layer (a file without extends)",
    ]


def test_problems_of_every_file_in_the_chain(tmp_path: Path) -> None:
    """Problems in the institution and in the country file it extends are reported together."""
    path = chain(tmp_path, country={"jurisdiction": "UK"}, institution={"training": {"max_rounds": 0}})
    lines = _error(path).lines()
    assert any("countries/xx.yaml: jurisdiction: found 'UK'" in line for line in lines)
    assert any("institutions/site.yaml: training.max_rounds: found 0" in line for line in lines)


def test_load_policies_reports_each_shared_problem_once(tmp_path: Path) -> None:
    """Two sites sharing a broken country file get that problem once, not twice."""
    first = chain(tmp_path, "a", country={"jurisdiction": "UK"})
    second = write(tmp_path / "institutions" / "b.yaml", {"extends": "../countries/xx.yaml"})
    with pytest.raises(PolicyFileError) as caught:
        load_policies({"a": first, "b": second}, clock=PINNED)
    assert len(caught.value.lines()) == 1


def test_relative_dates_resolve_against_the_pinned_clock(tmp_path: Path) -> None:
    """`today-30d` / `today+365d` resolve against the injected clock's UTC date at load time."""
    path = chain(
        tmp_path,
        institution={
            "validity": {"valid_from": "today-30d", "valid_until": "today+365d"},
            "approvals": {"sandbox_plan_start": "today", "sandbox_plan_end": "2031-01-01"},
        },
    )
    policy = load_policy(path, clock=PINNED)
    today = PINNED_NOW.date()
    assert policy.valid_from == today - timedelta(days=30)
    assert policy.valid_until == today + timedelta(days=365)
    assert policy.sandbox_plan_start == today
    assert policy.sandbox_plan_end == date(2031, 1, 1)


def test_bad_relative_date_is_reported(tmp_path: Path) -> None:
    """A malformed date (`next-year`) names the field and the value."""
    path = chain(tmp_path, institution={"validity": {"valid_until": "next-year"}})
    assert "validity.valid_until: found 'next-year'" in _only_line(path)


def test_load_layers_returns_root_first(tmp_path: Path) -> None:
    """The chain is followed institution → country → root and returned root first."""
    path = chain(tmp_path)
    sources = [layer.source for layer in load_layers(path, clock=PINNED)]
    assert sources == [f"{tmp_path}/root.yaml", f"{tmp_path}/countries/xx.yaml", str(path)]
