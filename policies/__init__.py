"""The policy language of the regulatory sandbox: layered, composable, explainable.

A site's policy is a chain of YAML layers - a region preset shipped in
``policies/presets/`` (``eu-gdpr-ai-act``, ``uk-gdpr``, ``us-hipaa``, ``ch-fadp``), a
country file, the institution's own file - where each lower layer may only tighten the
one above (:func:`load_policy`). The sites of a trial compose strictest-wins
(:func:`compose_sites`), and :func:`evaluate` pre-flights a trial against them, naming
for every denial the rule, the file and the value. Presets are illustrative, not legal
advice.

It holds only the language: schema, layering, composition, clauses, decisions and presets. It
must never import Flower or torch, nor hold files, chains or clocks of its own (those live in
``trialcore``, the only package it imports).
"""

from __future__ import annotations

from policies.composed import ComposedPolicy
from policies.composition import Composition, compose_sites
from policies.decision import ROW_COLUMNS, Clause, Decision, Finding, PreflightResult
from policies.errors import LooseningError, PolicyFileError
from policies.layering import LoadedLayer, compose_chain
from policies.loader import load_layers, load_policies, load_policy, load_preset
from policies.preflight import evaluate
from policies.presets import PresetInfo, list_presets, preset_names, preset_text
from policies.schema import PolicyLayer
from policies.vocabulary import Vocabulary, vocabulary
from trialcore.clock import Clock, fixed_clock, system_clock
from trialcore.facts import PrivacyCost, SiteFacts, TrialFacts

__all__ = [
    "ROW_COLUMNS",
    "Clause",
    "Clock",
    "ComposedPolicy",
    "Composition",
    "Decision",
    "Finding",
    "LoadedLayer",
    "LooseningError",
    "PolicyFileError",
    "PolicyLayer",
    "PreflightResult",
    "PresetInfo",
    "PrivacyCost",
    "SiteFacts",
    "TrialFacts",
    "Vocabulary",
    "compose_chain",
    "compose_sites",
    "evaluate",
    "fixed_clock",
    "list_presets",
    "load_layers",
    "load_policies",
    "load_policy",
    "load_preset",
    "preset_names",
    "preset_text",
    "system_clock",
    "vocabulary",
]
