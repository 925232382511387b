"""Shipped presets and vocabulary: they load, cite their sources and say they are not legal advice."""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from policy_layer_builders import PINNED

from policies import PolicyFileError, list_presets, load_preset, preset_names, preset_text, vocabulary
from policies.presets import preset_source

REPO = Path(__file__).resolve().parents[2]
REQUIRED = {"eu-gdpr-ai-act", "uk-gdpr", "us-hipaa", "ch-fadp"}
CITATION = re.compile(
    r"Art\.|§|\bs\.\s?\d|Sch\.|Recital|CFR|Regulation|Decision|Directive|\bAct\b|Annex|Code|Ordinance|Const\."
    r"|Declaration|NIST|ICO|HRA|DPO|FADP|GDPR|HIPAA|Abadi|Framework|Convention|\bSR \d|para \d|CMS|EHDS|MDR"
)


def test_required_presets_ship() -> None:
    """EU GDPR + AI Act, UK GDPR, US HIPAA and Swiss FADP presets are listed with title and summary."""
    infos = {info.name: info for info in list_presets()}
    assert set(infos) >= REQUIRED
    for info in infos.values():
        assert info.title and info.summary and "\n" not in info.summary


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_preset_loads_as_a_complete_root(name: str) -> None:
    """Each preset loads alone into a full policy whose provenance is the preset file."""
    policy = load_preset(name, clock=PINNED)
    assert policy.region and policy.sources == (preset_source(name),)
    assert policy.source_of("privacy.epsilon_budget") == f"policies/presets/{name}.yaml"
    assert "unacceptable" not in policy.allowed_risk_tiers
    assert policy.min_cohort_size >= 11 and not policy.secure_aggregation_required


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_every_preset_value_cites_its_source(name: str) -> None:
    """Every key: value and list item line of a preset carries a comment citing an article or rule."""
    text = preset_text(name)
    assert text is not None
    head = text[:400].upper()
    assert "ILLUSTRATIVE" in head and "NOT LEGAL ADVICE" in head
    for number, line in enumerate(text.splitlines(), start=1):
        code, _, comment = line.partition("#")
        code = code.strip()
        if not code or code.endswith(":"):
            continue
        assert comment.strip(), f"{name}.yaml line {number} has no comment: {line!r}"
        assert CITATION.search(comment), f"{name}.yaml line {number} cites nothing: {comment!r}"


def test_gb_and_ch_may_send_updates_to_germany() -> None:
    """The UK and Swiss presets allow a German aggregator under an adequacy decision (the demo needs it)."""
    for name in ("uk-gdpr", "ch-fadp"):
        policy = load_preset(name, clock=PINNED)
        assert "DE" in policy.allowed_aggregator_jurisdictions
        assert policy.transfer_mechanisms["DE"] == "adequacy-decision"


def test_unknown_preset_lists_the_shipped_ones() -> None:
    """Asking for a preset that does not exist is a bad-input error listing the real names."""
    with pytest.raises(PolicyFileError) as caught:
        load_preset("eu-gdpr")
    assert all(name in caught.value.lines()[0] for name in preset_names())


def test_presets_are_packaged_for_wheels() -> None:
    """pyproject ships presets/*.yaml and vocabulary.yaml as package data, so an installed wheel has them."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    data = config["tool"]["setuptools"]["package-data"]["policies"]
    assert "presets/*.yaml" in data and "*.yaml" in data


def test_vocabulary_terms_are_kebab_case_with_meanings() -> None:
    """Every vocabulary term is kebab-case with a one-line meaning; the four never-events are redlines."""
    vocab = vocabulary()
    for section in (vocab.purposes, vocab.risk_tiers, vocab.data_categories, vocab.transfer_mechanisms):
        for term, meaning in section.items():
            assert re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", term) and meaning and "\n" not in meaning
    assert {"re-identification", "insurance-pricing", "employment-screening", "mass-surveillance"} <= vocab.redlines
    assert vocab.prohibited_risk_tiers == {"unacceptable"}


def test_presets_never_expire_on_their_own() -> None:
    """No preset has a sunset, so only institution files and sandbox plans end a demo."""
    far = datetime(2099, 1, 1, tzinfo=UTC)
    for name in preset_names():
        policy = load_preset(name, clock=lambda: far)
        assert policy.valid_until is None
