"""Governance against a truly plain Flower app, at the demo's size and at 1,000 sites (``make bench``).

Two measurements, both on Flower's simulation engine in this process, DP off on both sides
(:mod:`tests.benchmarks.bench_federation`), against :mod:`tests.benchmarks.plain_flower`:

1. ``plain_flower``: 4 sites of demo size (142 records each), 10 rounds, :data:`PAIRS` pairs of
   runs in ABBA order. Ratios of the medians of whole runs (Ray start-up included) and of the
   medians of per-round times (start-up excluded: a round runs from its ``configure_train`` to
   the next one's, the last to the end of its evaluation, timed on the strategy Flower runs; round 1
   is left out on both sides, since plain FedAvg waits there for every node to come up, where the
   governed trial waits in its feature query before round 1).
2. ``scale``: 1,000 sites (44 records each), 3 rounds, one governed and one plain run. Wall time
   of each run, peak resident memory of the whole process tree during the governed run
   (:mod:`tests.benchmarks.process_memory`, goal <= 4 GiB), and the time of one scrape of the
   coordinator's ``/metrics`` once the trial has ended (every per-site value set), fetched over
   HTTP as Prometheus does (gzip accepted), median of :data:`SCRAPES` (goal <= 0.1 s).

A benchmark, never a timed test: nothing is asserted. ``python tests/benchmarks/scale_bench.py
--sites 50 --rounds 2`` runs the scale part alone at another size.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: make `tests` importable (here and in Flower's workers)
    sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from typing import Any  # noqa: E402
from unittest import mock  # noqa: E402

from prometheus_client import CollectorRegistry  # noqa: E402

from monitoring.exporter import serve  # noqa: E402
from participants.client_app import make_client_app  # noqa: E402
from sandbox import server_app as server_module  # noqa: E402
from sandbox.resolved_trial import resolve_trial  # noqa: E402
from sandbox.server_app import TrialHooks, make_server_app, new_metrics  # noqa: E402
from sandbox.strategy_choice import build_inner_strategy  # noqa: E402
from sandbox.trial_run import FLOWER_ENVIRONMENT, _run_simulation, simulated_site_settings  # noqa: E402
from tests.benchmarks.bench_federation import BenchFederation, write_federation  # noqa: E402
from tests.benchmarks.plain_flower import (  # noqa: E402
    RoundClock,
    clocked,
    plain_client_app,
    plain_server_app,
    plain_strategy,
    site_config_paths,
)
from tests.benchmarks.privacy_bench import no_dp_train_handler  # noqa: E402
from tests.benchmarks.process_memory import PeakTreeMemory  # noqa: E402
from trialcore import wire  # noqa: E402

PAIRS = 3
"""Pairs of demo-size runs (governed, plain), alternating which goes first."""
DEMO_SIZE = {"num_sites": 4, "rounds": 10, "records_per_site": 142}
SCALE_SIZE = {"num_sites": 1000, "rounds": 3}
SCRAPES = 5
CLIENT_CPUS = 1.0
"""CPUs Ray reserves per simulated site, on both sides (``sandbox run``'s default)."""
GIB = 2**30


def governed_run(federation: BenchFederation, run_dir: Path) -> tuple[float, RoundClock, CollectorRegistry, str]:
    """Run the governed trial (DP off); return its wall seconds, round clock, registry and end state."""
    loaded = federation.load()
    clocks: list[RoundClock] = []

    def clocked_inner(spec: Any) -> Any:
        clocks.append(clocked(build_inner_strategy(spec)))
        return clocks[-1].strategy

    registry = CollectorRegistry()
    hooks = TrialHooks(registry=registry, metrics=new_metrics(loaded, registry, run_id=run_dir.name))
    server_app = make_server_app({wire.RUN_DIR: str(run_dir)}, hooks, resolve_trial(loaded))
    client_app = make_client_app(simulated_site_settings(loaded, run_dir), train=no_dp_train_handler)
    with mock.patch.object(server_module, "build_inner_strategy", clocked_inner):
        started = time.perf_counter()
        _run_simulation(
            server_app,
            client_app,
            num_supernodes=len(loaded.spec.participants),
            sites_to_console=False,
            client_cpus=CLIENT_CPUS,
        )
        seconds = time.perf_counter() - started
    state = hooks.report["state"] if hooks.report else "no report"
    return seconds, clocks[0], registry, state


def plain_run(federation: BenchFederation) -> tuple[float, RoundClock]:
    """Run the plain Flower app on the same sites; return its wall seconds and round clock."""
    spec = federation.load().spec
    clock = plain_strategy(len(spec.participants))
    client_app = plain_client_app(site_config_paths(federation.spec.parent / spec.federation, spec.site_ids), spec)
    started = time.perf_counter()
    _run_simulation(
        plain_server_app(spec, clock),
        client_app,
        num_supernodes=len(spec.participants),
        sites_to_console=False,
        client_cpus=CLIENT_CPUS,
    )
    return time.perf_counter() - started, clock


def scrape_seconds(registry: CollectorRegistry) -> list[float]:
    """Wall time of :data:`SCRAPES` HTTP scrapes of ``registry`` (gzip accepted, as Prometheus asks)."""
    times = []
    with serve(registry, port=0) as server:
        request = urllib.request.Request(server.url, headers={"Accept-Encoding": "gzip"})
        for _ in range(SCRAPES):
            started = time.perf_counter()
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
            times.append(time.perf_counter() - started)
    return times


def _ratio(governed: float, plain: float) -> float:
    return round(governed / plain, 3)


def plain_flower_overhead(workdir: Path) -> dict[str, Any]:
    """Demo-size governed vs plain Flower runs in ABBA order: medians and their ratios."""
    federation = write_federation(workdir / "demo-size", trial_id="overhead-bench", **DEMO_SIZE)
    whole: dict[str, list[float]] = {"governed": [], "plain": []}
    rounds: dict[str, list[float]] = {"governed": [], "plain": []}
    for pair in range(PAIRS):
        for kind in ("governed", "plain") if pair % 2 == 0 else ("plain", "governed"):
            if kind == "governed":
                seconds, clock, _, state = governed_run(federation, workdir / f"governed-{pair}")
                assert state == "finished", state
            else:
                seconds, clock = plain_run(federation)
            whole[kind].append(round(seconds, 3))
            rounds[kind].extend(round(t, 4) for t in clock.steady_round_seconds())
            print(f"plain_flower: {kind} run {pair + 1}/{PAIRS}: {seconds:.2f} s", file=sys.stderr)
    medians = {kind: statistics.median(values) for kind, values in whole.items()}
    round_medians = {kind: statistics.median(values) for kind, values in rounds.items()}
    return {
        "benchmark": "governed trial vs a truly plain Flower app (FedAvg, no guard/ledger/audit/DP), DP off on both",
        **DEMO_SIZE,
        "pairs": PAIRS,
        "governed_seconds": whole["governed"],
        "plain_seconds": whole["plain"],
        "whole_run_ratio": _ratio(medians["governed"], medians["plain"]),
        "governed_round_median_seconds": round(round_medians["governed"], 4),
        "plain_round_median_seconds": round(round_medians["plain"], 4),
        "per_round_ratio": _ratio(round_medians["governed"], round_medians["plain"]),
    }


def scale_results(workdir: Path, *, num_sites: int, rounds: int) -> dict[str, Any]:
    """One governed and one plain run of ``num_sites`` sites for ``rounds`` rounds (see module docstring)."""
    federation = write_federation(workdir / "scale", num_sites=num_sites, rounds=rounds)
    with PeakTreeMemory() as memory:
        governed_seconds, governed_clock, registry, state = governed_run(federation, workdir / "scale-governed")
    print(f"scale: governed {num_sites} sites: {governed_seconds:.1f} s ({state})", file=sys.stderr)
    scrapes = scrape_seconds(registry)
    with PeakTreeMemory() as plain_memory:
        plain_seconds, plain_clock = plain_run(federation)
    print(f"scale: plain {num_sites} sites: {plain_seconds:.1f} s", file=sys.stderr)
    governed_rounds, plain_rounds = governed_clock.round_seconds(), plain_clock.round_seconds()
    return {
        "sites": num_sites,
        "rounds": rounds,
        "state": state,
        "wall_seconds": round(governed_seconds, 2),
        "peak_rss_gib": round(memory.peak_bytes / GIB, 3),
        "peak_rss_gib_goal": 4.0,
        "scrape_seconds": round(statistics.median(scrapes), 4),
        "scrape_seconds_goal": 0.1,
        "scrape_samples": _sample_count(registry),
        "plain_flower_wall_seconds": round(plain_seconds, 2),
        "plain_flower_peak_rss_gib": round(plain_memory.peak_bytes / GIB, 3),
        "ratio_vs_plain": _ratio(governed_seconds, plain_seconds),
        "round_seconds": [round(t, 2) for t in governed_rounds],
        "plain_round_seconds": [round(t, 2) for t in plain_rounds],
        "per_round_ratio": _ratio(
            statistics.median(governed_rounds[1:] or governed_rounds),
            statistics.median(plain_rounds[1:] or plain_rounds),
        ),
    }


def _sample_count(registry: CollectorRegistry) -> int:
    from prometheus_client import generate_latest

    return sum(1 for line in generate_latest(registry).splitlines() if line and not line.startswith(b"#"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=SCALE_SIZE["num_sites"])
    parser.add_argument("--rounds", type=int, default=SCALE_SIZE["rounds"])
    parser.add_argument("--overhead", action="store_true", help="also run the demo-size comparison")
    args = parser.parse_args()
    os.environ.update(FLOWER_ENVIRONMENT)
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    logging.getLogger("flwr").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="sandbox-scale-") as tmp:
        found: dict[str, Any] = {}
        if args.overhead:
            found["plain_flower"] = plain_flower_overhead(Path(tmp))
        found["scale"] = scale_results(Path(tmp), num_sites=args.sites, rounds=args.rounds)
    print(json.dumps(found, indent=2))


if __name__ == "__main__":
    main()
