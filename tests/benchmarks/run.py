"""``make bench``: speed of the governed trial against plain Flower, and of policy pre-flight, as one JSON document.

Each measurement is the wall time of one in-process simulation (Ray start-up included) of the
demo trial: the governed ServerApp (audit chain, metrics, report) against a plain ServerApp that
runs Flower's FedAvg on the same ClientApp, model, data, rounds and seed. Runs alternate
in ABBA order (governed, plain, plain, governed, ...) so machine noise and order effects hit
both alike; the medians' ratio is
``overhead_ratio`` (target <= 1.05). Under ``"privacy"``: accuracy vs epsilon budget and the time
of a DP-SGD round (:mod:`tests.benchmarks.privacy_bench`). Under ``"plain_flower"`` and ``"scale"``: the
governed trial against a truly plain Flower app at the demo's size and at 1,000 sites, with peak
memory and the scrape time of the coordinator's metrics (:mod:`tests.benchmarks.scale_bench`).
Under ``"contract_normalisation"``: the OPT
clinics example with federated vs per-site normalisation, statistics exact or noised, against a
centralised logistic regression, and the time of the preprocessing phase
(:mod:`tests.benchmarks.contract_bench`). This is a benchmark, never a timed test.
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp
from prometheus_client import CollectorRegistry

from participants.client_app import make_client_app
from participants.model import build_model
from sandbox.server_app import TrialHooks, make_server_app, new_metrics, round_config
from sandbox.strategy_choice import build_inner_strategy
from sandbox.trial_recorder import DEFAULT_MIN_COHORT_SIZE
from sandbox.trial_run import FLOWER_ENVIRONMENT, _run_simulation, simulated_site_settings
from trialcore.spec_loading import LoadedSpec, load_spec

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `python tests/benchmarks/run.py` puts only this folder on the path
    sys.path.insert(0, str(REPO))

from tests.benchmarks.contract_bench import normalisation_table  # noqa: E402
from tests.benchmarks.fuzz_bench import cli_fuzz, reader_fuzz  # noqa: E402
from tests.benchmarks.policy_bench import policy_timings  # noqa: E402
from tests.benchmarks.privacy_bench import privacy_results  # noqa: E402
from tests.benchmarks.scale_bench import SCALE_SIZE, plain_flower_overhead, scale_results  # noqa: E402

if str(REPO) not in sys.path:  # run as a script (make bench): make tests.approved_demo importable
    sys.path.insert(0, str(REPO))

from sandbox.resolved_trial import resolve_trial  # noqa: E402
from tests.approved_demo import approved_demo_at  # noqa: E402
from trialcore import wire  # noqa: E402

REPEATS = 4
"""Runs of each kind; pairs alternate which kind goes first (ABBA), so order effects cancel."""


def plain_server_app(loaded: LoadedSpec) -> ServerApp:
    """Flower's FedAvg alone: same config and initial model, no governance, audit or metrics."""
    server_app = ServerApp()

    @server_app.main()
    def _main(grid: Grid, context: Context) -> None:
        spec = loaded.spec
        config = round_config(grid, loaded, min_cohort_size=DEFAULT_MIN_COHORT_SIZE)
        model = build_model(spec.model.name, num_features=spec.model.input_features, seed=spec.seed)
        build_inner_strategy(spec).start(
            grid=grid,
            initial_arrays=ArrayRecord(model.state_dict()),
            num_rounds=spec.rounds,
            train_config=config,
            evaluate_config=ConfigRecord(dict(config)),
        )

    return server_app


def one_run(loaded: LoadedSpec, governed: bool, workdir: Path, index: int) -> float:
    run_dir = workdir / f"{'governed' if governed else 'plain'}-{index}"
    client_app = make_client_app(simulated_site_settings(loaded, run_dir))
    if governed:
        registry = CollectorRegistry()
        hooks = TrialHooks(registry=registry, metrics=new_metrics(loaded, registry, run_id=run_dir.name))
        server_app = make_server_app({wire.RUN_DIR: str(run_dir)}, hooks, resolve_trial(loaded))
    else:
        server_app = plain_server_app(loaded)
    started = time.perf_counter()
    _run_simulation(
        server_app, client_app, num_supernodes=len(loaded.spec.participants), sites_to_console=False, client_cpus=1.0
    )
    return time.perf_counter() - started


def main() -> None:
    import os

    os.environ.update(FLOWER_ENVIRONMENT)
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    logging.getLogger("flwr").setLevel(logging.ERROR)
    times: dict[str, list[float]] = {"governed": [], "plain": []}
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as tmp:
        # The demo sites serve only an approved spec: bench a private copy whose sites signed it (as make demo does).
        loaded = load_spec(approved_demo_at(Path(tmp) / "demo").spec)
        for index in range(REPEATS):
            order = ("governed", "plain") if index % 2 == 0 else ("plain", "governed")
            for kind in order:
                seconds = one_run(loaded, kind == "governed", Path(tmp), index)
                times[kind].append(seconds)
                print(f"{kind} run {index + 1}/{REPEATS}: {seconds:.2f} s", file=sys.stderr)
        plain_flower = plain_flower_overhead(Path(tmp))
        scale = scale_results(Path(tmp), num_sites=SCALE_SIZE["num_sites"], rounds=SCALE_SIZE["rounds"])
    governed = statistics.median(times["governed"])
    plain = statistics.median(times["plain"])
    print(
        json.dumps(
            {
                "benchmark": "demo trial, governed vs plain Flower FedAvg (simulation, same model/data/rounds/seed)",
                "rounds": loaded.spec.rounds,
                "sites": len(loaded.spec.participants),
                "repeats": REPEATS,
                "governed_seconds": times["governed"],
                "plain_seconds": times["plain"],
                "governed_median_seconds": round(governed, 3),
                "plain_median_seconds": round(plain, 3),
                "overhead_ratio": round(governed / plain, 4),
                "overhead_ratio_target": 1.05,
                **policy_timings(),
                "privacy": privacy_results(),
                "reader_fuzz": reader_fuzz(),
                "cli_fuzz": cli_fuzz(),
                "plain_flower": plain_flower,
                "scale": scale,
                "contract_normalisation": normalisation_table(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
