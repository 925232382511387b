"""Policy speed at federation scale: 1,000 sites composed and pre-flighted, and loaded from YAML.

Two measurements, each the median wall time of a few repeats (``time.perf_counter``):

- ``policy_compose_preflight_1000_sites_seconds``: :func:`policies.compose_sites` plus
  :func:`policies.evaluate` for a trial with 1,000 sites whose policies are already loaded. The
  four demo institutions' composed policies are loaded once and copied to 1,000 site ids spread
  evenly over their jurisdictions (DE, FR, GB, CH); the trial is the demo trial
  (``examples/demo.yaml``) with DP-SGD (noise multiplier 1.0, clipping norm 1.0) and those 1,000
  sites. Target: at most 0.5 s (``policy_compose_preflight_target_seconds``). Note that
  ``evaluate`` composes the sites again itself, so the time holds two compositions.
- ``policy_load_1000_sites_from_yaml_seconds``: :func:`policies.load_policies` on 1,000
  institution files written to a temporary folder, each a copy of a demo institution file that
  extends its demo country file (``../countries/de.yaml``, ...), which extends a packaged preset.
  Shared country and preset files are read once per call, so this is dominated by parsing 1,000
  YAML files and validating 1,000 layers.

A benchmark, never a timed test: ``python tests/benchmarks/policy_bench.py`` prints one JSON
document; :func:`policy_timings` returns the same numbers. Imports only ``policies`` (no Flower,
no torch).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if __name__ == "__main__" and str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run as a script from a checkout that is not installed

import dataclasses  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from typing import Any  # noqa: E402

import yaml  # noqa: E402

from policies import (  # noqa: E402
    ComposedPolicy,
    SiteFacts,
    TrialFacts,
    compose_sites,
    evaluate,
    fixed_clock,
    load_policies,
)
from trialcore.clock import Clock  # noqa: E402

EXAMPLES = REPO / "examples"
DEMO_SITES = {"de-berlin": "DE", "fr-lyon": "FR", "gb-leeds": "GB", "ch-zurich": "CH"}
"""The demo's institutions and their jurisdictions (``examples/policies/institutions/<site>.yaml``)."""

SITES = 1000
PREFLIGHT_REPEATS = 5
LOAD_REPEATS = 3
PREFLIGHT_TARGET_SECONDS = 0.5


def site_ids(count: int = SITES) -> dict[str, str]:
    """``count`` site ids (``de-berlin-0000``, ``fr-lyon-0001``, ...) → the demo site each copies, round robin."""
    demo = list(DEMO_SITES)
    return {f"{demo[i % len(demo)]}-{i:04d}": demo[i % len(demo)] for i in range(count)}


def demo_trial_facts(sites: dict[str, str]) -> TrialFacts:
    """The demo trial's facts (as ``sandbox`` derives them from a spec) with DP-SGD and the given sites."""
    spec: dict[str, Any] = yaml.safe_load((EXAMPLES / "demo.yaml").read_text(encoding="utf-8"))
    approvals = spec.get("approvals") or {}
    return TrialFacts(
        trial_id=spec["trial_id"],
        purpose=spec["purpose"],
        ai_risk_tier=spec.get("ai_risk_tier", "high"),
        data_categories=tuple(spec.get("data_categories", ("health",))),
        rounds=spec["rounds"],
        local_epochs=spec["local_training"]["epochs"],
        aggregator_jurisdiction=spec["aggregator"]["jurisdiction"],
        sites=[SiteFacts(site_id, DEMO_SITES[demo]) for site_id, demo in sites.items()],
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        delta=spec["privacy"]["delta"],
        secure_aggregation=False,
        ethics_approval_ref=approvals.get("ethics_board_ref"),
        sandbox_plan_id=approvals.get("sandbox_plan_id"),
    )


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``action``."""
    times: list[float] = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def compose_preflight(clock: Clock) -> dict[str, float | int]:
    """Time composing and pre-flighting 1,000 already-loaded site policies."""
    demo_files = {site: EXAMPLES / "policies" / "institutions" / f"{site}.yaml" for site in DEMO_SITES}
    loaded = load_policies(demo_files, clock=clock)
    sites = site_ids()
    policies: dict[str, ComposedPolicy] = {
        site_id: dataclasses.replace(loaded[demo], name=site_id) for site_id, demo in sites.items()
    }
    facts = demo_trial_facts(sites)

    def run() -> None:
        compose_sites(policies)
        evaluate(facts, policies, clock=clock)

    seconds = median_seconds(run, PREFLIGHT_REPEATS)
    result = evaluate(facts, policies, clock=clock)
    return {
        "policy_compose_preflight_1000_sites_seconds": round(seconds, 4),
        "policy_compose_preflight_target_seconds": PREFLIGHT_TARGET_SECONDS,
        "policy_compose_preflight_repeats": PREFLIGHT_REPEATS,
        "policy_preflight_decisions": len(result.decisions),
        "policy_preflight_denials": len(result.denials),
        "policy_preflight_findings": len(result.findings),
    }


def load_from_yaml(clock: Clock) -> dict[str, float | int]:
    """Time loading 1,000 institution files that extend the demo country files."""
    sites = site_ids()
    texts = {
        demo: (EXAMPLES / "policies" / "institutions" / f"{demo}.yaml").read_text(encoding="utf-8")
        for demo in DEMO_SITES
    }
    with tempfile.TemporaryDirectory(prefix="policy-bench-") as tmp:
        root = Path(tmp)
        shutil.copytree(EXAMPLES / "policies" / "countries", root / "countries")
        (root / "institutions").mkdir()
        files: dict[str, Path] = {}
        for site_id, demo in sites.items():
            path = root / "institutions" / f"{site_id}.yaml"
            path.write_text(texts[demo].replace(f"name: {demo}\n", f"name: {site_id}\n"), encoding="utf-8")
            files[site_id] = path
        loaded = load_policies(files, clock=clock)  # warm-up, and a check that every file loads
        assert len(loaded) == SITES and all(loaded[s].name == s for s in sites), "generated policies did not load"
        seconds = median_seconds(lambda: load_policies(files, clock=clock), LOAD_REPEATS)
    return {
        "policy_load_1000_sites_from_yaml_seconds": round(seconds, 4),
        "policy_load_repeats": LOAD_REPEATS,
    }


def policy_timings() -> dict[str, float | int]:
    """Both measurements, in seconds (medians), with the target and the sizes they were taken at."""
    clock = fixed_clock(datetime.now(UTC))  # one "today" for relative dates and validity checks
    return {"policy_sites": SITES, **compose_preflight(clock), **load_from_yaml(clock)}


if __name__ == "__main__":
    print(json.dumps(policy_timings(), indent=2))
