"""Fuzzing ``sandbox validate`` and ``sandbox check`` with mutated trial, site and policy YAML.

Each example writes a copy of the demo trial (``examples/demo.yaml``), its four sites' configs
(``examples/demo-sites/``) and the example policy layers (``examples/policies/``), as read once at
import, into a fresh temporary folder, damages one or two of those files, and runs the commands
in-process through typer's ``CliRunner``. Whatever the input, a command must end the way the exit-code
table says a user's input ends - 0 (valid, permitted), 2 (bad input) or 3 (refused by policy) -
and say something; exit 1 with a traceback is how the CLI reports a bug of ours.

Three families of damage:

- (a) the trial spec (sometimes a site config too): keys deleted, values replaced by random
  scalars, lists, mappings, ``null``, huge, negative or non-finite numbers, unicode text,
  YAML 1.1 plain scalars that look like dates or numbers (``2020-13-01``), unknown keys;
- (b) an institution or a country policy layer, the same way, plus ``extends`` targets that are
  missing, the file itself, a cycle through another layer, a non-policy file, unknown presets,
  and relative dates (``today+365d``) at and beyond their limits;
- (c) raw bytes of any of those files: truncation, inserted or overwritten bytes, invalid
  UTF-8, NUL, YAML syntax fragments (tags, anchors, directives), deep nesting. ``validate``
  runs only when the trial or a site config was damaged, as it reads no policy file.

Half of the examples use DP-SGD and sites that require no signed approval, so that pre-flight
can permit as well as refuse.

Run with ``--hypothesis-show-statistics`` to see how the exit codes were spread.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from click.testing import Result
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from hypothesis.strategies import DataObject, SearchStrategy
from typer.testing import CliRunner

from policies.iso3166 import ALPHA2
from policies.presets import preset_names
from policies.vocabulary import vocabulary
from sandbox.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TRIAL = "demo.yaml"
SITES = ("de-berlin", "fr-lyon", "gb-leeds", "ch-zurich")
SITE_FILES = tuple(f"demo-sites/{site}.yaml" for site in SITES)
INSTITUTION_FILES = tuple(f"policies/institutions/{site}.yaml" for site in SITES)
COUNTRY_FILES = tuple(f"policies/countries/{country}.yaml" for country in ("de", "fr", "gb", "ch"))
POLICY_FILES = INSTITUTION_FILES + COUNTRY_FILES
SITE_OF_POLICY = dict(zip(INSTITUTION_FILES + COUNTRY_FILES, SITES + SITES))
ALL_FILES = (TRIAL, *SITE_FILES, *POLICY_FILES)
OTHER_POLICY_FILES = tuple(  # extends targets beside the demo's own layers
    f"policies/{name}.yaml"
    for name in (
        "countries/us",
        "institutions/us-boston",
        "institutions/loosening-example",
        "institutions/expired-example",
    )
)

EXIT_CODES_FOR_USER_INPUT = {0, 2, 3}
"""ok, bad input, refused by policy: the only ways a command may end on any input a user writes."""

DEFAULT_EXAMPLES = 150
MAX_EXAMPLES = int(os.environ.get("SANDBOX_CLI_FUZZ_EXAMPLES", str(DEFAULT_EXAMPLES)))
"""Inputs per test (three tests): 450 in ``make test``; ``make bench`` runs 600 each (``"cli_fuzz"``)."""

FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,  # one example runs the CLI once or twice: 5-100 ms, more on a busy machine
    # Recursive values and 1-3 edits per file often outgrow Hypothesis's early, small draws; expected here.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

RUNNER = CliRunner()
ORIGINAL = {
    name: (EXAMPLES / name).read_bytes()
    for name in (TRIAL, *SITE_FILES, *(str(p.relative_to(EXAMPLES)) for p in (EXAMPLES / "policies").rglob("*.yaml")))
}
"""The demo as read once at import: every example starts from the same files, even if ``examples/`` changes."""
DOCS = {name: yaml.safe_load(ORIGINAL[name]) for name in ALL_FILES}


ROOT_MARK = "@fuzz-root@"
"""Stands for the copy's ``examples`` folder in generated files (absolute ``extends`` paths) until they are written."""


@contextmanager
def demo_copy() -> Iterator[Path]:
    """A fresh ``examples`` folder: the demo trial, its four sites' configs and every example policy layer.

    It sits one level below a temporary folder, as ``examples/`` does in the repository, so that
    paths the site configs give relative to the repository (``../../runs/...``) stay inside it.
    """
    with tempfile.TemporaryDirectory(prefix="policy-fuzz-") as tmp:
        root = Path(tmp) / "examples"
        for name, content in ORIGINAL.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(content)
        yield root


# ---------------------------------------------------------------- values


@dataclass(frozen=True)
class Plain:
    """A scalar written unquoted, so YAML 1.1 reads it as it would in a hand-written file (``2020-13-01``)."""

    text: str


class _Dumper(yaml.SafeDumper):
    pass


def _represent_plain(dumper: yaml.SafeDumper, value: Plain) -> yaml.ScalarNode:
    tag = dumper.resolve(yaml.ScalarNode, value.text, (True, False))  # type: ignore[no-untyped-call]  # untyped in types-PyYAML
    return dumper.represent_scalar(tag, value.text)


_Dumper.add_representer(Plain, _represent_plain)


def dump(doc: Any) -> bytes:
    return yaml.dump(doc, Dumper=_Dumper, allow_unicode=True, sort_keys=False).encode("utf-8")


VOCAB = vocabulary()
PURPOSES = sorted(VOCAB.purposes)
RISK_TIERS = sorted(VOCAB.risk_tiers)
CATEGORIES = sorted(VOCAB.data_categories)
MECHANISMS = sorted(VOCAB.transfer_mechanisms)
PRESETS = sorted(preset_names())

PLAIN_SCALARS = (
    "2020-13-01",
    "2021-02-30",
    "0000-00-00",
    "2020-1-1",
    "2020-01-01 25:61:61",
    "2001-12-14t21:59:43.10-05:00",
    "1e400",
    "-1e400",
    ".NaN",
    ".inf",
    "-.Inf",
    "0x1F",
    "0o17",
    "0b101",
    "1_000",
    "190:20:30",
    "-0",
    "NO",
    "off",
    "~",
    "yes",
    "=",
)
NASTY_TEXT = (
    "",
    " ",
    "\t",
    "\n",
    "\x00",
    "a\x00b",
    "\u202e",
    "\ufeff",
    "\u2028",
    "é",
    "日本語",
    "🤖",
    "a" * 500,
    "../" * 40,
    "${HOME}",
    "{{ x }}",
    "%s%n",
    "today",
    "today+365d",
    "today-30d",
    "today+99999d",
    "today-99999d",
    "today+100000d",
    "today + 5d",
    "today+1y",
    "2020-02-30",
    "NO",
    "UK",
    "EU",
    "preset:",
    "*",
    "null",
)
TEXT = st.one_of(st.text(max_size=24), st.sampled_from(NASTY_TEXT))
HUGE_NUMBERS = (10**400, -(10**400), 2**63, 2**64, -(2**63) - 1, 1e308, 5e-324, -0.0, float("nan"), float("inf"))
PLAUSIBLE_NUMBERS = st.one_of(st.integers(min_value=1, max_value=120), st.floats(min_value=0.01, max_value=20))
ODD_NUMBERS = st.one_of(
    st.integers(min_value=-3, max_value=0),
    st.floats(),
    st.integers(),
    st.sampled_from(HUGE_NUMBERS),
    st.builds(Plain, st.sampled_from(PLAIN_SCALARS)),
)
NUMBERS = st.one_of(PLAUSIBLE_NUMBERS, PLAUSIBLE_NUMBERS, ODD_NUMBERS)
"""Two draws in three a number a policy author might write, one in three an odd one."""
PROBABILITIES = st.one_of(st.floats(min_value=1e-12, max_value=0.01), NUMBERS)
COUNTRY = st.one_of(
    st.sampled_from(("DE", "FR", "GB", "CH", "US", "NO")),
    st.sampled_from(sorted(ALPHA2)),
    st.sampled_from(("UK", "EU", "EL", "de", "D", "DEU", "")),
    st.just(Plain("NO")),
)
DATES = st.one_of(
    st.dates(),
    st.sampled_from(
        (
            "today",
            "today+365d",
            "today-30d",
            "today+99999d",
            "today-99999d",
            "today+100000d",
            "today + 5d",
            "today+1y",
            "2020-02-30",
            "9999-12-31",
            "0001-01-01",
        )
    ),
    st.builds(Plain, st.sampled_from(PLAIN_SCALARS)),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    NUMBERS,
    TEXT,
    st.dates(),
    st.datetimes(),
    st.sampled_from(PURPOSES + RISK_TIERS + CATEGORIES + MECHANISMS),
)
KEYS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(("privacy", "extends", "allowed", "site_id", "data", "name")),
    st.integers(),
    st.booleans(),
    st.none(),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)),
    max_leaves=6,
)


def terms(allowed: Sequence[str]) -> SearchStrategy[list[Any]]:
    """Lists of vocabulary terms, sometimes repeated or mixed with a stranger."""
    return st.lists(st.one_of(st.sampled_from(list(allowed)), TEXT), max_size=len(allowed) + 1)


def policy_fields(extends: SearchStrategy[Any]) -> dict[str, SearchStrategy[Any]]:
    """Every key of a policy layer, with values a policy author might plausibly write."""
    flag = st.one_of(st.booleans(), st.sampled_from(("yes", "true", 1, 0, None)))
    return {
        "extends": extends,
        "name": st.one_of(st.from_regex(r"[a-z0-9][a-z0-9-]{0,8}", fullmatch=True), TEXT),
        "title": TEXT,
        "summary": TEXT,
        "region": st.one_of(st.sampled_from(("EU", "UK", "US", "CH", "eu", "E")), TEXT),
        "jurisdiction": COUNTRY,
        "purposes": st.one_of(st.none(), VALUES),
        "purposes.allowed": terms(PURPOSES),
        "purposes.redlines": terms(PURPOSES),
        "ai.allowed_risk_tiers": terms(RISK_TIERS),
        "data.allowed_categories": terms(CATEGORIES),
        "data.special_category_legal_basis": st.dictionaries(st.sampled_from(CATEGORIES), TEXT, max_size=3),
        "data.min_cohort_size": NUMBERS,
        "privacy": st.one_of(st.none(), VALUES),
        "privacy.epsilon_budget": NUMBERS,
        "privacy.delta": PROBABILITIES,
        "privacy.min_noise_multiplier": NUMBERS,
        "privacy.max_clipping_norm": NUMBERS,
        "privacy.secure_aggregation_required": flag,
        "transfers.allowed_aggregator_jurisdictions": st.lists(COUNTRY, max_size=5),
        "transfers.transfer_mechanisms": st.dictionaries(
            COUNTRY, st.one_of(st.sampled_from(MECHANISMS), TEXT), max_size=4
        ),
        "training.max_rounds": NUMBERS,
        "training.max_local_epochs": NUMBERS,
        "validity.valid_from": DATES,
        "validity.valid_until": DATES,
        "approvals.ethics_approval_required": flag,
        "approvals.ethics_approval_ref": TEXT,
        "approvals.sandbox_plan_required": flag,
        "approvals.sandbox_plan_id": TEXT,
        "approvals.sandbox_plan_start": DATES,
        "approvals.sandbox_plan_end": DATES,
    }


def extends_targets(own_file: str) -> SearchStrategy[Any]:
    """``extends`` values: presets real and unknown, the file itself, cycles, missing and odd paths."""
    own = Path(own_file).name
    siblings = [f"../{Path(name).parent.name}/{Path(name).name}" for name in POLICY_FILES + OTHER_POLICY_FILES]
    return st.one_of(
        st.sampled_from([f"preset:{name}" for name in PRESETS]),
        st.sampled_from(
            (
                "preset:nope",
                "preset:",
                "preset: eu-gdpr-ai-act ",
                "PRESET:eu-gdpr-ai-act",
                "preset:EU-GDPR-AI-ACT",
                "preset:../countries/de",
                "preset:eu-gdpr-ai-act.yaml",
            )
        ),
        st.sampled_from((own, f"./{own}", f"../{Path(own_file).parent.name}/{own}")),  # a cycle to itself
        st.sampled_from(siblings),  # other layers: loosening, other jurisdictions, cycles through them
        st.sampled_from(
            (
                "missing.yaml",
                "../countries/xx.yaml",
                "../countries",
                "..",
                ".",
                "",
                "   ",
                "\x00",
                "a" * 300 + ".yaml",
                "x/" * 2100 + "p.yaml",
                "../" * 60 + "x.yaml",
                "~/policy.yaml",
                "C:\\policy.yaml",
                "file:///policy.yaml",
                "/dev/null",
                "/nonexistent/policy.yaml",
                "../../demo.yaml",
                "../../demo-sites/de-berlin.yaml",
            )
        ),
        st.sampled_from((*POLICY_FILES, TRIAL)).map(lambda name: f"{ROOT_MARK}/{name}"),  # absolute paths
        VALUES,
    )


TRIAL_FIELDS: dict[str, SearchStrategy[Any]] = {
    "trial_id": st.one_of(st.sampled_from(("x", "a-b", "A", "-a", "a--b", "a" * 64)), TEXT),
    "title": TEXT,
    "purpose": st.one_of(st.sampled_from(PURPOSES), TEXT),
    "ai_risk_tier": st.one_of(st.sampled_from([*RISK_TIERS, "HIGH"]), TEXT),
    "data_categories": terms(CATEGORIES),
    "model": st.one_of(st.none(), VALUES),
    "model.name": st.sampled_from(("logistic_regression", "mlp", "cnn", "")),
    "model.input_features": NUMBERS,
    "model.hidden_units": NUMBERS,
    "federation": st.one_of(
        st.sampled_from(
            (
                "demo-sites",
                "demo-sites/",
                "./demo-sites",
                ".",
                "..",
                "missing",
                "demo.yaml",
                "policies",
                "/",
                "\x00",
                "demo\x00sites",
                "a" * 300,
                "x/" * 2100,
            )
        ),
        TEXT,
    ),
    "aggregator.jurisdiction": COUNTRY,
    "participants": st.lists(
        st.fixed_dictionaries(
            {"site_id": st.sampled_from((*SITES, "xx-nowhere", "DE-BERLIN", "")), "jurisdiction": COUNTRY}
        ),
        max_size=6,
    ),
    "participants.0.site_id": st.sampled_from((*SITES, "xx-nowhere", "../demo", "")),
    "participants.1.jurisdiction": COUNTRY,
    "rounds": NUMBERS,
    "min_participants": NUMBERS,
    "local_training.epochs": NUMBERS,
    "local_training.batch_size": NUMBERS,
    "local_training.learning_rate": NUMBERS,
    "privacy": st.one_of(st.none(), VALUES),
    "privacy.epsilon_budget": NUMBERS,
    "privacy.delta": PROBABILITIES,
    "privacy.noise_multiplier": NUMBERS,
    "privacy.max_grad_norm": NUMBERS,
    "strategy.name": st.sampled_from(("FedAvg", "FedProx", "FedMedian", "fedavg", "")),
    "strategy.params": st.dictionaries(TEXT, st.one_of(NUMBERS, st.booleans(), TEXT), max_size=3),
    "approvals.ethics_board_ref": st.one_of(TEXT, st.none()),
    "approvals.sandbox_plan_id": st.one_of(TEXT, st.none()),
    "seed": NUMBERS,
}

SITE_FIELDS: dict[str, SearchStrategy[Any]] = {
    "site_id": st.sampled_from((*SITES, "xx", "")),
    "jurisdiction": COUNTRY,
    "data.kind": st.sampled_from(("embedded-breast-cancer", "csv", "")),
    "data.partition": NUMBERS,
    "test_fraction": NUMBERS,
    "policy": st.one_of(
        st.sampled_from(
            (
                "",
                "\x00",
                "missing.yaml",
                "../policies/countries/de.yaml",
                "../policies/institutions",
                "../demo.yaml",
                "/dev/null",
                "a" * 300,
                "x/" * 2100,
            )
        ),
        TEXT,
    ),
    "state_dir": TEXT,
    # Signed approvals. Names longer than the file system allows are left out: participants/approvals.py
    # crashes on them (OSError from Path.is_file), a known bug outside the policy code fuzzed here.
    "approvals_dir": st.sampled_from(("", "\x00", "missing", "../policies", "../demo.yaml", "/dev/null", ".", "/")),
    "trusted_keys": st.sampled_from(
        ("", "\x00", "missing.pem", "../policies/countries/de.yaml", "../demo.yaml", "/dev/null", ".", "/")
    ),
}


# ---------------------------------------------------------------- structured mutations

Key = Any
"""A mapping key or a list index on the way to a node."""


def node_paths(doc: Any, prefix: tuple[Key, ...] = ()) -> list[tuple[Key, ...]]:
    """Every key and index path below ``doc``."""
    paths: list[tuple[Key, ...]] = []
    children = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, child in children:
        paths.append((*prefix, key))
        paths.extend(node_paths(child, (*prefix, key)))
    return paths


def node(doc: Any, path: Sequence[Key]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def set_known(doc: dict[Key, Any], dotted: str, value: Any) -> None:
    """Set a dotted field, turning whatever stands in the way into a mapping or a list (grown as needed)."""
    parts: list[Key] = [int(part) if part.isdigit() else part for part in dotted.split(".")]
    target: Any = doc
    for part, following in itertools.pairwise(parts):
        kind: type = list if isinstance(following, int) else dict
        if isinstance(target, list):
            target.extend([None] * (part + 1 - len(target)))
        child = target[part] if isinstance(target, list) or part in target else None
        if not isinstance(child, kind):
            child = kind()
            target[part] = child
        target = child
    if isinstance(target, list):
        target.extend([None] * (parts[-1] + 1 - len(target)))
    target[parts[-1]] = value


EDITS = ("set-field", "set-field", "set-field", "delete", "delete", "replace", "unknown-key", "root")
"""Most edits set a known field, so that many inputs get past the schema into layering and pre-flight."""


def mutate(data: DataObject, doc: Any, fields: Mapping[str, SearchStrategy[Any]]) -> Any:
    """Apply one to three random edits to a parsed YAML document; return the new document."""
    for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="edits")):
        op = data.draw(st.sampled_from(EDITS), label="edit")
        paths = node_paths(doc)
        if op == "set-field" and isinstance(doc, dict):
            dotted = data.draw(st.sampled_from(sorted(fields)), label="field")
            set_known(doc, dotted, data.draw(st.one_of(fields[dotted], fields[dotted], VALUES), label=dotted))
        elif op == "replace" and paths:
            *parent, key = data.draw(st.sampled_from(paths), label="replace at")
            node(doc, parent)[key] = data.draw(VALUES, label="with")
        elif op == "delete" and paths:
            *parent, key = data.draw(st.sampled_from(paths), label="delete at")
            del node(doc, parent)[key]
        elif op == "unknown-key":
            mappings = [p for p in [(), *paths] if isinstance(node(doc, p), dict)]
            if mappings:
                where = data.draw(st.sampled_from(mappings), label="insert into")
                node(doc, where)[data.draw(KEYS, label="unknown key")] = data.draw(VALUES, label="its value")
        elif op == "root":
            doc = data.draw(VALUES, label="whole document")
    return doc


def run_in_copy(files: Mapping[str, bytes], commands: Sequence[Sequence[str]]) -> None:
    """Write ``files`` over a fresh copy of the demo, then run each command on its trial spec.

    Everything random is drawn before this is called, so an example Hypothesis discards costs no I/O.
    """
    with demo_copy() as root:
        for name, content in files.items():
            note(f"--- {name} ---\n{content.decode('utf-8', errors='backslashreplace')}")
            (root / name).write_bytes(content.replace(ROOT_MARK.encode(), str(root).encode()))
        for command, *options in commands:
            run_cli([command, str(root / TRIAL), *options])


UNSIGNED_SITES = {
    name: dump({key: value for key, value in DOCS[name].items() if key not in ("approvals_dir", "trusted_keys")})
    for name in SITE_FILES
}
"""The demo's site configs without signed approvals (none exist in a fresh copy, so they refuse every trial)."""


def site_configs(data: DataObject) -> dict[str, bytes]:
    """Half of the time, sites that require no signed approval, so that pre-flight can permit (exit 0)."""
    return dict(UNSIGNED_SITES) if data.draw(st.booleans(), label="sites require no approval") else {}


def with_dp(data: DataObject, doc: dict[str, Any]) -> dict[str, Any]:
    """The demo trial with or without DP-SGD, so that pre-flight can permit (exit 0) as well as refuse."""
    doc = copy.deepcopy(doc)
    if data.draw(st.booleans(), label="dp-sgd"):
        doc["privacy"].update(noise_multiplier=1.0, max_grad_norm=1.0)
    else:
        doc["privacy"].pop("noise_multiplier", None)
        doc["privacy"].pop("max_grad_norm", None)
    return doc


# ---------------------------------------------------------------- byte mutations

BYTE_SNIPPETS = (
    # not UTF-8, or characters YAML refuses
    b"\xff",
    b"\xfe\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xc0\xaf",
    b"\x00",
    b"\xef\xbb\xbf",
    b"\t",
    b"\r",
    b"\r\n",
    b"\x85",
    "\u2028".encode(),
    b"\x1b[31m",
    b"\x7f",
    # YAML structure: indicators, anchors and aliases, tags (some whose constructors raise), directives
    b": ",
    b":",
    b"- ",
    b"? ",
    b"&a ",
    b"*a",
    b"*nope",
    b"<<: *a\n",
    b"{",
    b"}",
    b"[",
    b"]",
    b"'",
    b'"',
    b"|",
    b">",
    b"#",
    b"!!python/object/apply:os.system ['true']",
    b"!!binary ",
    b"!!binary AA==",
    b"!!float ",
    b"!!int x",
    b"!!int ''",
    b"!!bool x",
    b"!!timestamp x",
    b"!!timestamp 2020-13-01",
    b"!!set ",
    b"!!map ",
    b"!custom ",
    b"%YAML 1.1\n",
    b"%YAML 9.9\n",
    b"%TAG ! tag:x,2000:\n",
    b"---\n",
    b"...\n",
    b"\n",
    b"  ",
    # values: impossible dates, numbers beyond float and beyond Python's int-from-text limit, relative dates
    b"2020-13-01",
    b"2021-02-30 25:00:00",
    b"1e400",
    b".nan",
    b"~",
    b"9" * 5000,
    b"today+99999d",
    b"today+100000d",
    b"extends: ",
    b"preset:nope",
)
SNIPPETS = st.one_of(st.sampled_from(BYTE_SNIPPETS), st.binary(min_size=1, max_size=12))


BYTE_EDITS = ("insert", "insert", "overwrite", "truncate", "cut", "line", "nest")


def damage(data: DataObject, raw: bytes) -> bytes:
    """Apply one to three random byte edits."""
    for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="byte edits")):
        op = data.draw(st.sampled_from(BYTE_EDITS), label="byte edit")
        at = data.draw(st.integers(min_value=0, max_value=len(raw)), label="at")
        if op == "insert":
            raw = raw[:at] + data.draw(SNIPPETS, label="insert") + raw[at:]
        elif op == "overwrite":
            new = data.draw(SNIPPETS, label="overwrite with")
            raw = raw[:at] + new + raw[at + len(new) :]
        elif op == "truncate":
            raw = raw[:at]
        elif op == "cut":
            raw = raw[:at] + raw[at + data.draw(st.integers(min_value=1, max_value=64), label="cut") :]
        elif op == "line":
            lines = raw.splitlines(keepends=True) or [b""]
            index = data.draw(st.integers(min_value=0, max_value=len(lines) - 1), label="line")
            if data.draw(st.booleans(), label="drop line"):
                del lines[index]
            else:
                lines.insert(index, lines[index])
            raw = b"".join(lines)
        else:
            depth = data.draw(st.integers(min_value=1, max_value=3000), label="depth")
            opener, closer = data.draw(st.sampled_from(((b"[", b"]"), (b"{a: ", b"}"), (b"- ", b""))), label="nesting")
            raw = raw[:at] + b"x: " + opener * depth + b"1" + closer * depth + b"\n" + raw[at:]
    return raw


# ---------------------------------------------------------------- running the CLI

OUTPUTS = (("--format", "json"), ("--format", "text"))


def command(data: DataObject, name: str) -> list[str]:
    """``validate`` or ``check`` with a drawn output format (and, for check, maybe ``--denials-only``)."""
    args = [name, *data.draw(st.sampled_from(OUTPUTS), label=f"{name} output")]
    if name == "check" and data.draw(st.booleans(), label="denials only"):
        args.append("--denials-only")
    return args


def run_cli(args: list[str]) -> None:
    """Run one command and assert it ended as user input must: exit 0, 2 or 3, a message, no traceback."""
    shown = f"sandbox {' '.join(args)}"
    # In a fresh thread, whose frame stack starts empty: CPython 3.11 maps and unmaps a frame-stack
    # chunk whenever a call crosses a chunk boundary, and at the depth pytest and Hypothesis run
    # tests the YAML scanner's hot loop sits on one (thousands of mmap calls per example, half
    # the run time).
    results: list[Result] = []
    worker = threading.Thread(target=lambda: results.append(RUNNER.invoke(app, args)))
    worker.start()
    worker.join()
    assert results, f"{shown} ended without a result"
    result = results[0]
    event(f"{args[0]}: exit {result.exit_code}")
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{shown} raised {result.exception!r}\n{result.stderr}"
    )
    assert result.exit_code in EXIT_CODES_FOR_USER_INPUT, f"{shown} exited {result.exit_code}:\n{result.stderr}"
    assert "Traceback" not in result.stderr, f"{shown} printed a traceback:\n{result.stderr}"
    assert (result.stdout + result.stderr).strip(), f"{shown} exited {result.exit_code} without a message"
    if "json" in args:
        document = json.loads(result.stdout)  # exactly one JSON document, success or failure
        assert document.get("exit_code", 0) == result.exit_code, result.stdout


# ---------------------------------------------------------------- the tests

POLICY_FIELDS = {name: policy_fields(extends_targets(name)) for name in POLICY_FILES}


@FUZZ_SETTINGS
@given(data=st.data())
def test_mutated_trial_spec_never_crashes_validate_or_check(data: DataObject) -> None:
    """Every malformed trial spec (or site config) ends validate and check in exit 0, 2 or 3 with a message, never a traceback."""
    files = {**site_configs(data), TRIAL: dump(mutate(data, with_dp(data, DOCS[TRIAL]), TRIAL_FIELDS))}
    if data.draw(st.integers(min_value=0, max_value=3), label="also a site") == 0:
        site = data.draw(st.sampled_from(SITE_FILES), label="site file")
        files[site] = dump(mutate(data, copy.deepcopy(DOCS[site]), SITE_FIELDS))
    run_in_copy(files, [command(data, "validate"), command(data, "check")])


@FUZZ_SETTINGS
@given(data=st.data())
def test_mutated_policy_layers_never_crash_check(data: DataObject) -> None:
    """Every malformed institution or country policy (bad extends, cycles, unknown presets, odd values) ends check in exit 0, 2 or 3 with a message, never a traceback."""
    names = data.draw(st.lists(st.sampled_from(POLICY_FILES), min_size=1, max_size=2, unique=True), label="layers")
    trial = with_dp(data, DOCS[TRIAL])
    sites = {SITE_OF_POLICY[name] for name in names} | {data.draw(st.sampled_from(SITES), label="another site")}
    trial["participants"] = [p for p in trial["participants"] if p["site_id"] in sites]  # fewer files to parse
    trial["min_participants"] = 1
    files = {**site_configs(data), TRIAL: dump(trial)}
    for name in names:
        doc = mutate(data, copy.deepcopy(DOCS[name]), POLICY_FIELDS[name])
        if isinstance(doc, dict) and data.draw(st.integers(min_value=0, max_value=2), label="re-point extends") == 0:
            doc["extends"] = data.draw(POLICY_FIELDS[name]["extends"], label="extends")
        files[name] = dump(doc)
    run_in_copy(files, [command(data, "check")])


@FUZZ_SETTINGS
@given(data=st.data())
def test_damaged_yaml_bytes_never_crash_validate_or_check(data: DataObject) -> None:
    """Every truncated, non-UTF-8 or syntactically broken trial, site or policy file ends check (and validate) in exit 0, 2 or 3 with a message, never a traceback."""
    names = data.draw(st.lists(st.sampled_from(ALL_FILES), min_size=1, max_size=2, unique=True), label="files")
    files = {name: damage(data, ORIGINAL[name]) for name in names}
    commands = [command(data, "check")]
    if set(names) & {TRIAL, *SITE_FILES}:  # validate reads no policy file
        commands.insert(0, command(data, "validate"))
    run_in_copy(files, commands)
