"""Privacy section of ``make bench``: what DP-SGD costs the demo trial in accuracy and in time.

Two measurements, returned by :func:`privacy_results` (``run.py`` prints them under ``"privacy"``);
``python tests/benchmarks/privacy_bench.py`` prints them alone as one JSON document.

1. **Utility table** (``utility``). The demo trial (``examples/demo.yaml``: 4 simulated sites,
   10 rounds, FedAvg, batch size 16) runs end to end in Flower's in-process simulation with the
   governed ServerApp, as ``run.py``'s governed runs do, for each seed of :data:`SEEDS`:

   - at each per-site epsilon of :data:`EPSILONS` for **training alone** (record-level, at the
     spec's delta): a copy of the demo spec with ``privacy.noise_multiplier`` calibrated so that
     the trial's DP-SGD fits within ``eps`` at *every* site, and ``privacy.epsilon_budget`` the
     planned epsilon of **everything released** (DP-SGD, the feature sums and the evaluations at
     the demo's release noise, composed; rounded up to 2 decimals). A site's round is
     :func:`participants.privacy_plan.round_mechanism` (``epochs x int(1/q)`` DP-SGD steps at
     Poisson rate ``q = 1 / ceil(num_train / batch_size)``, epochs from
     :func:`participants.site_floor.site_floor`); Opacus's ``get_noise_multiplier`` (RDP) gives the
     noise for ``rounds x`` those steps; the largest over the sites is rounded *up* to 3 decimals
     (more noise, never more epsilon) and never below a site's ``min_noise_multiplier``;
   - **without DP** (``epsilon: null``): see :func:`no_dp_train_handler`.

   Each row reports the noise multiplier used (dimensionless), the largest trial epsilon planned
   for training alone and for everything released (repository accountant, before running), the
   largest of each the sites reported in ``report.json`` (``trial_epsilon_by_release["dp-sgd"]``
   and ``trial_epsilon``), each run's end state and rounds, the global test accuracy of each
   seed (the final model on the union of the sites' test parts, :mod:`tests.demo_accuracy`: the
   released accuracies are noised sums) and their median. ``smallest_budget_reaching_0_93`` is the smallest epsilon whose
   median accuracy is at least :data:`ACCURACY_TARGET` with every run finished (null if none).
   About 18 trial runs of ~12 s each.

2. **DP round time** (``dp_round_time``). One site's local training round
   (:func:`participants.training.train_locally`) on :data:`TIMING_SITE`'s train part, standardised
   with the federation's pooled mean and standard deviation, with the demo's batch size, learning
   rate, the site's epochs and DP settings from ``site_floor``: DP-SGD (Opacus, Opacus's set-up
   included, as every real round pays it) against the same round without DP. After
   :data:`TIMING_WARMUP` warm-up calls of each, :data:`TIMING_REPEATS` timed calls of each
   alternate in ABBA order, on :data:`TIMING_TORCH_THREADS` torch thread; medians in seconds
   (``time.perf_counter``, model construction excluded), and
   ``dp_round_time_ratio = median_dp / median_plain`` against the target :data:`DP_RATIO_TARGET`.

A benchmark, never a timed test. All numbers are measured; nothing is asserted.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: make `tests` importable (here and in Flower's workers)
    sys.path.insert(0, str(REPO))

import functools  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Mapping  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from participants.client_app import make_client_app, train_handler  # noqa: E402
from participants.model import build_model  # noqa: E402
from participants.privacy_plan import round_mechanism, trial_releases  # noqa: E402
from participants.site_config import LoadedSiteConfig  # noqa: E402
from participants.site_data import SiteData, load_site_data  # noqa: E402
from participants.site_floor import DpSettings, site_floor  # noqa: E402
from participants.training import TrainSettings, train_locally  # noqa: E402
from policies import ComposedPolicy  # noqa: E402
from sandbox.resolved_trial import resolve_trial  # noqa: E402
from sandbox.server_app import TrialHooks, make_server_app, new_metrics  # noqa: E402
from sandbox.trial_run import FLOWER_ENVIRONMENT, _run_simulation, simulated_site_settings  # noqa: E402
from tests.approved_demo import DemoCopy, approved_demo_at  # noqa: E402
from tests.demo_accuracy import true_pooled_test_accuracy  # noqa: E402
from trialcore import wire  # noqa: E402
from trialcore.privacy_accountant import Accountant, Mechanism, epsilon  # noqa: E402
from trialcore.spec import TrialSpec  # noqa: E402
from trialcore.spec_loading import LoadedSpec, load_spec  # noqa: E402

EPSILONS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Per-site epsilon budgets of the whole trial (record-level, at the spec's delta)."""
SEEDS: tuple[int, ...] = (1, 2, 3)
"""Trial seeds (spec ``seed``: initial model, local shuffling and DP noise); each row's median is over these."""
ACCURACY_TARGET = 0.93
"""Median global test accuracy (fraction) a budget must reach for ``smallest_budget_reaching_0_93``."""
NOISE_DECIMALS = 3
"""Calibrated noise multipliers are rounded up to this many decimals."""
TIMING_SITE = "de-berlin"
TIMING_WARMUP = 2
"""Untimed calls of each kind before timing (imports, allocator, Opacus's first set-up)."""
TIMING_REPEATS = 20
"""Timed calls of each kind, alternating ABBA."""
TIMING_TORCH_THREADS = 1
"""torch intra-op threads while timing (restored after). Batches of 16 records gain nothing from
more, and on a small busy machine OpenMP threads waiting for a descheduled sibling stretched a
round from ~1 ms to ~47 ms, DP or not, which hid the DP cost entirely."""
DP_RATIO_TARGET = 1.5


@dataclass(frozen=True)
class SiteShape:
    """What a site's DP-SGD round looks like: Poisson sample rate (0-1) and steps per round."""

    site_id: str
    num_train: int
    epochs: int
    sample_rate: float
    steps_per_round: int
    min_noise_multiplier: float


def demo_policies(loaded: LoadedSpec) -> tuple[dict[str, LoadedSiteConfig], dict[str, ComposedPolicy]]:
    """Each participant's node config and composed policy, as the pre-flight loads them."""
    trial = resolve_trial(loaded)
    return dict(trial.sites), dict(trial.policies)


def site_shapes(loaded: LoadedSpec) -> list[SiteShape]:
    """Every participant's round mechanism under ``loaded``'s local training and its own policy."""
    sites, policies = demo_policies(loaded)
    shapes = []
    for site_id, site in sites.items():
        policy = policies[site_id]
        num_train = load_site_data(site).num_train
        epochs, _ = site_floor(loaded.spec, policy)
        # Only the sample rate and steps are used; the noise multiplier is what gets calibrated.
        mechanism = round_mechanism(
            num_train, epochs=epochs, batch_size=loaded.spec.local_training.batch_size, dp=DpSettings(1.0, 1.0)
        )
        shapes.append(
            SiteShape(
                site_id=site_id,
                num_train=num_train,
                epochs=epochs,
                sample_rate=mechanism.sample_rate,
                steps_per_round=mechanism.steps,
                min_noise_multiplier=policy.min_noise_multiplier,
            )
        )
    return shapes


def calibrated_noise_multiplier(shapes: list[SiteShape], *, target_epsilon: float, delta: float, rounds: int) -> float:
    """The smallest noise multiplier (dimensionless, rounded up to 3 decimals) keeping every site's whole trial within ``target_epsilon``."""
    from opacus.accountants.utils import get_noise_multiplier

    needed: list[float] = []
    with warnings.catch_warnings():
        # Opacus's binary search tries tiny noise levels whose optimum is the largest RDP order; harmless here.
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        for shape in shapes:
            sigma = get_noise_multiplier(
                target_epsilon=target_epsilon,
                target_delta=delta,
                sample_rate=shape.sample_rate,
                steps=rounds * shape.steps_per_round,
                accountant="rdp",
            )
            needed.append(max(float(sigma), shape.min_noise_multiplier))
    scale: int = 10**NOISE_DECIMALS
    return math.ceil(max(needed) * scale) / scale


def planned_trial_epsilon(shapes: list[SiteShape], *, noise_multiplier: float, delta: float, rounds: int) -> float:
    """The largest whole-trial epsilon over the sites, with the repository's own accountant (RDP), before running."""
    return max(
        epsilon(
            [Mechanism(noise_multiplier=noise_multiplier, sample_rate=s.sample_rate, steps=s.steps_per_round)] * rounds,
            delta=delta,
            accountant=Accountant.RDP,
        )
        for s in shapes
    )


def planned_everything_epsilon(spec: TrialSpec, shapes: list[SiteShape], *, noise_multiplier: float) -> float:
    """The largest epsilon over the sites of everything a site releases in the trial (DP-SGD, feature sums, evaluations)."""
    return max(
        epsilon(
            trial_releases(
                spec,
                Mechanism(noise_multiplier=noise_multiplier, sample_rate=s.sample_rate, steps=s.steps_per_round),
                rounds=spec.rounds,
            ),
            delta=spec.privacy.delta,
            accountant=Accountant.RDP,
        )
        for s in shapes
    )


def write_spec(demo: DemoCopy, *, seed: int, epsilon_budget: float | None, noise_multiplier: float | None) -> Path:
    """A copy of the demo spec beside it (its federation path still resolves) with another seed and, if given, budget and noise."""
    data: dict[str, Any] = yaml.safe_load(demo.spec.read_text(encoding="utf-8"))
    data["seed"] = seed
    label = "nodp"
    if epsilon_budget is not None and noise_multiplier is not None:
        data["privacy"]["epsilon_budget"] = epsilon_budget
        data["privacy"]["noise_multiplier"] = noise_multiplier
        label = f"eps{epsilon_budget:g}"
    path = demo.examples / f"privacy-bench-{label}-seed{seed}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def no_dp_floor(spec: TrialSpec, policy: ComposedPolicy) -> tuple[int, DpSettings | None]:
    """The production train handler without DP: the no-DP baseline's sites train by plain SGD.

    Why a handler of its own: a spec without DP cannot be run. Every demo site's guard
    (``participants.site_guard``, before any handler, whatever the ServerApp) refuses it on the
    noise-floor, clipping-ceiling and privacy-budget clauses, and the production
    ``train_handler`` applies ``site_floor``, which imposes DP at the policy's floor (0.5) even
    for a spec without DP. (``run.py``'s "plain" runs use that same ClientApp, so they train with
    DP-SGD too.) So the baseline sends the approved demo spec with its seed changed (DP fields
    as in the demo, so the guard lets it through) and the sites train with this handler, which is
    ``train_handler`` with a floor that gives no DP settings (``train_locally(dp=None)``): the same site, data, standardisation,
    epochs from ``site_floor``, batch size, learning rate and seed, no ledger charge (no epsilon
    is spent). Evaluation, the guard and the governed ServerApp are unchanged, so the accuracy is
    read from ``report.json`` exactly as for the DP rows. (``run.py``'s ``plain_server_app`` keeps
    no result to read an accuracy from; pooled from the sites' evaluations, plain FedAvg with this
    handler gave the same accuracy, 0.99306 at seed 1, when checked by hand.)
    """
    epochs, _ = site_floor(spec, policy)
    return epochs, None


no_dp_train_handler = functools.partial(train_handler, floor=no_dp_floor)
"""The production train handler with :func:`no_dp_floor`: plain SGD, no ledger charge."""


def governed_run(demo: DemoCopy, spec_path: Path, run_dir: Path, *, dp: bool) -> dict[str, Any]:
    """Approve ``spec_path`` at every demo site, run it with the governed ServerApp; return its report."""
    demo.approve(spec_path)
    loaded = load_spec(spec_path)
    settings = simulated_site_settings(loaded, run_dir)
    client_app = make_client_app(settings) if dp else make_client_app(settings, train=no_dp_train_handler)
    registry = CollectorRegistry()
    hooks = TrialHooks(registry=registry, metrics=new_metrics(loaded, registry, run_id=run_dir.name))
    server_app = make_server_app({wire.RUN_DIR: str(run_dir)}, hooks, resolve_trial(loaded))
    _run_simulation(
        server_app, client_app, num_supernodes=len(loaded.spec.participants), sites_to_console=False, client_cpus=1.0
    )
    if hooks.report is None:
        raise RuntimeError(f"the simulation of {spec_path.name} ended without a report")
    return hooks.report


def run_summary(seed: int, report: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """One run's end state, rounds, true and released global test accuracy (fraction), largest site epsilons (null: none)."""
    final_global = (report.get("final") or {}).get("global") or {}
    released = final_global.get("test_accuracy")
    charged = [s["privacy"] for s in report["sites"] if s["privacy"].get("last_charged_round") is not None]
    training = [p["trial_epsilon_by_release"]["dp-sgd"] for p in charged]
    return {
        "seed": seed,
        "state": report["state"],
        "rounds_completed": report["rounds_completed"],
        "test_accuracy": round(true_pooled_test_accuracy(run_dir), 4) if (run_dir / "model.pt").exists() else None,
        "released_test_accuracy": None if released is None else round(float(released), 4),
        "max_epsilon_spent": round(max(p["trial_epsilon"] for p in charged), 4) if charged else None,
        "max_training_epsilon_spent": round(max(training), 4) if training and max(training) > 0 else None,
        "round_seconds": [float(r["duration_seconds"]) for r in report.get("rounds", [])],
    }


def utility_row(
    demo: DemoCopy, workdir: Path, shapes: list[SiteShape], base: LoadedSpec, target_epsilon: float | None
) -> dict[str, Any]:
    """One table row: the trial at ``target_epsilon`` per site (None: without DP), once per seed."""
    spec = base.spec
    noise: float | None = None
    planned: float | None = None
    planned_all: float | None = None
    budget: float | None = None
    if target_epsilon is not None:
        noise = calibrated_noise_multiplier(
            shapes, target_epsilon=target_epsilon, delta=spec.privacy.delta, rounds=spec.rounds
        )
        planned = round(
            planned_trial_epsilon(shapes, noise_multiplier=noise, delta=spec.privacy.delta, rounds=spec.rounds), 4
        )
        everything = planned_everything_epsilon(spec, shapes, noise_multiplier=noise)
        planned_all = round(everything, 4)
        budget = math.ceil(everything * 100) / 100
    runs = []
    for seed in SEEDS:
        spec_path = write_spec(demo, seed=seed, epsilon_budget=budget, noise_multiplier=noise)
        started = time.perf_counter()
        run_dir = workdir / spec_path.stem
        report = governed_run(demo, spec_path, run_dir, dp=target_epsilon is not None)
        runs.append(run_summary(seed, report, run_dir))
        print(
            f"privacy: epsilon {target_epsilon if target_epsilon is not None else 'no DP'} seed {seed}: "
            f"accuracy {runs[-1]['test_accuracy']} ({report['state']}, {time.perf_counter() - started:.1f} s)",
            file=sys.stderr,
        )
    accuracies = [r["test_accuracy"] for r in runs]
    spent = [r["max_epsilon_spent"] for r in runs if r["max_epsilon_spent"] is not None]
    spent_training = [r["max_training_epsilon_spent"] for r in runs if r["max_training_epsilon_spent"] is not None]
    complete = all(r["state"] == "finished" and r["rounds_completed"] == spec.rounds for r in runs)
    known = [a for a in accuracies if a is not None]
    return {
        "epsilon": target_epsilon,
        "dp": target_epsilon is not None,
        "noise_multiplier": noise,
        "max_grad_norm": spec.privacy.max_grad_norm if target_epsilon is not None else None,
        "trial_epsilon_budget": budget,
        "max_epsilon_planned": planned,
        "max_epsilon_all_releases_planned": planned_all,
        "max_training_epsilon_spent": max(spent_training) if spent_training else None,
        "max_epsilon_spent": max(spent) if spent else None,
        "all_runs_finished": complete,
        "runs": runs,
        "accuracies": accuracies,
        "median_accuracy": round(statistics.median(known), 4) if len(known) == len(runs) else None,
        "median_round_seconds": _median_round_seconds(runs),
    }


def _median_round_seconds(runs: list[dict[str, Any]]) -> float | None:
    """Median duration (s) of a federated round (train + evaluate, report.json) over every round of ``runs``."""
    durations = [d for r in runs for d in r["round_seconds"]]
    return round(statistics.median(durations), 4) if durations else None


def utility_table() -> dict[str, Any]:
    """The whole utility table on a private, approved copy of the demo (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="sandbox-privacy-bench-") as tmp:
        demo = approved_demo_at(Path(tmp) / "demo")
        base = load_spec(demo.spec)
        shapes = site_shapes(base)
        rows = [utility_row(demo, Path(tmp) / "runs", shapes, base, eps) for eps in (*EPSILONS, None)]
    reaching = [
        r for r in rows if r["dp"] and r["all_runs_finished"] and (r["median_accuracy"] or 0.0) >= ACCURACY_TARGET
    ]
    dp_rounds = _median_round_seconds([run for r in rows if r["dp"] for run in r["runs"]])
    plain_rounds = _median_round_seconds([run for r in rows if not r["dp"] for run in r["runs"]])
    smallest = min(reaching, key=lambda r: r["epsilon"], default=None)
    return {
        "benchmark": "demo trial (governed, simulation) global test accuracy vs per-site epsilon of training alone "
        "and of everything released, median over seeds",
        "rounds": base.spec.rounds,
        "delta": base.spec.privacy.delta,
        "accountant": "rdp",
        "seeds": list(SEEDS),
        "sites": [
            {
                "site_id": s.site_id,
                "num_train": s.num_train,
                "epochs": s.epochs,
                "sample_rate": round(s.sample_rate, 6),
                "steps_per_round": s.steps_per_round,
            }
            for s in shapes
        ],
        "rows": rows,
        "accuracy_target": ACCURACY_TARGET,
        "federated_round_time": {
            "what": "median duration of one federated round (every site trains, then evaluates; report.json) over "
            "all DP rows' runs against the no-DP runs, same simulation",
            "dp_median_round_seconds": dp_rounds,
            "no_dp_median_round_seconds": plain_rounds,
            "dp_round_time_ratio": None if not (dp_rounds and plain_rounds) else round(dp_rounds / plain_rounds, 3),
            "target": DP_RATIO_TARGET,
        },
        "smallest_budget_reaching_0_93": None
        if smallest is None
        else {
            "epsilon": smallest["epsilon"],
            "epsilon_all_releases": smallest["max_epsilon_all_releases_planned"],
            "noise_multiplier": smallest["noise_multiplier"],
            "median_accuracy": smallest["median_accuracy"],
        },
    }


def pooled_standardised(sites: Mapping[str, LoadedSiteConfig], site_id: str) -> SiteData:
    """``site_id``'s data scaled by the pooled train mean and standard deviation of all ``sites`` (as ``pooled_feature_scaling``)."""
    parts = {s: load_site_data(site) for s, site in sites.items()}
    stacked = np.concatenate([p.x_train.astype(np.float64) for p in parts.values()])
    mean = stacked.mean(axis=0)
    std = np.sqrt(np.maximum((stacked * stacked).mean(axis=0) - mean * mean, 0.0))
    std[std == 0] = 1.0
    return parts[site_id].standardised(mean.tolist(), std.tolist())


def dp_round_timing() -> dict[str, Any]:
    """Median seconds of one local round at :data:`TIMING_SITE` with DP-SGD and without, ABBA (see the module docstring)."""
    base = load_spec(REPO / "examples" / "demo.yaml")
    spec = base.spec
    sites, policies = demo_policies(base)
    data = pooled_standardised(sites, TIMING_SITE)
    epochs, dp = site_floor(spec, policies[TIMING_SITE])
    if dp is None:
        raise RuntimeError(f"{TIMING_SITE} applies no DP to the demo spec; nothing to compare")
    settings = TrainSettings(
        epochs=epochs,
        batch_size=spec.local_training.batch_size,
        learning_rate=spec.local_training.learning_rate,
        seed=spec.seed,
    )

    def one_round(with_dp: bool) -> tuple[float, int]:
        model = build_model(
            spec.model.name, num_features=data.num_features, hidden_units=spec.model.hidden_units, seed=spec.seed
        )
        started = time.perf_counter()
        result = train_locally(model, data.x_train, data.y_train, settings, dp=dp if with_dp else None)
        return time.perf_counter() - started, result.steps

    threads_before = torch.get_num_threads()
    torch.set_num_threads(TIMING_TORCH_THREADS)
    try:
        for _ in range(TIMING_WARMUP):
            one_round(True)
            one_round(False)
        seconds: dict[bool, list[float]] = {True: [], False: []}
        steps: dict[bool, int] = {}
        for index in range(TIMING_REPEATS):
            for with_dp in (True, False) if index % 2 == 0 else (False, True):
                elapsed, steps[with_dp] = one_round(with_dp)
                seconds[with_dp].append(elapsed)
    finally:
        torch.set_num_threads(threads_before)
    median_dp = statistics.median(seconds[True])
    median_plain = statistics.median(seconds[False])
    return {
        "benchmark": f"one local training round at {TIMING_SITE} (train_locally), DP-SGD (Opacus) vs plain SGD, ABBA",
        "site": TIMING_SITE,
        "num_train": data.num_train,
        "epochs": epochs,
        "batch_size": settings.batch_size,
        "noise_multiplier": dp.noise_multiplier,
        "max_grad_norm": dp.max_grad_norm,
        "steps_dp": steps[True],
        "steps_plain": steps[False],
        "torch_threads": TIMING_TORCH_THREADS,
        "warmup": TIMING_WARMUP,
        "repeats": TIMING_REPEATS,
        "dp_seconds": [round(s, 6) for s in seconds[True]],
        "plain_seconds": [round(s, 6) for s in seconds[False]],
        "dp_median_seconds": round(median_dp, 6),
        "plain_median_seconds": round(median_plain, 6),
        "dp_round_time_ratio": round(median_dp / median_plain, 4),
        "dp_round_time_ratio_target": DP_RATIO_TARGET,
    }


def privacy_results() -> dict[str, Any]:
    """Both measurements, as ``run.py`` prints them under ``"privacy"``."""
    os.environ.update(FLOWER_ENVIRONMENT)
    return {"utility": utility_table(), "dp_round_time": dp_round_timing()}


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    logging.getLogger("flwr").setLevel(logging.ERROR)
    print(json.dumps(privacy_results(), indent=2))
