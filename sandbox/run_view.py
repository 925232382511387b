"""What ``sandbox run`` shows: a progress bar per round and a closing summary table."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sandbox.release_noise import pooled_accuracy_noise_std
from sandbox.round_outcome import RoundOutcome
from sandbox.run_resume import ResumePoint, end_interrupted_leftovers
from sandbox.trial_run import RunResult
from trialcore import layout


class RoundProgress:
    """A rich progress bar on stderr: rounds done and the global test accuracy after each.

    The sites release their test accuracy through the Gaussian mechanism, so the pooled figure is
    shown with its approximate noise (one standard deviation, :mod:`sandbox.release_noise`) when
    ``evaluation_noise_multiplier`` is given: on small test parts the figure is mostly noise, and
    the console says so rather than presenting it as the model's accuracy.
    """

    def __init__(self, rounds: int, *, enabled: bool = True, evaluation_noise_multiplier: float | None = None) -> None:
        self._noise_multiplier = evaluation_noise_multiplier
        self._progress = Progress(
            TextColumn("[bold]round"),
            MofNCompleteColumn(),
            BarColumn(),
            TextColumn("{task.fields[accuracy]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            disable=not enabled,
        )
        self._task = self._progress.add_task("rounds", total=rounds, accuracy="")
        self._console = Console(stderr=True)

    def __enter__(self) -> RoundProgress:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._progress.stop()

    def update(self, outcome: RoundOutcome) -> None:
        """Advance one round and print its global accuracy on its own line."""
        g = outcome.global_metrics
        text = f"global test accuracy {g.test_accuracy:.3f}" if g is not None else "no evaluation"
        if g is not None and self._noise_multiplier is not None:
            std = pooled_accuracy_noise_std(
                num_test=g.num_test,
                num_sites=len(outcome.sites),
                accuracy=g.test_accuracy,
                noise_multiplier=self._noise_multiplier,
            )
            text += f" (released with noise, ± {std:.2f})"
        self._progress.update(self._task, completed=outcome.server_round, accuracy=text)
        refused = f", {len(outcome.refusals)} refused" if outcome.refusals else ""
        self._progress.console.print(
            f"round {outcome.server_round}: {text}, {len(outcome.trained_sites)} sites trained{refused} ({outcome.duration_seconds:.1f} s)"
        )


def run_summary(result: RunResult) -> dict[str, Any]:
    """The JSON-ready summary of a finished run."""
    report = result.report
    final = report["final"]["global"] or {}
    return {
        "run_dir": str(result.run_dir),
        "trial_id": report["trial_id"],
        "run_id": report["run_id"],
        "spec_hash": report["spec_hash"],
        "state": report["state"],
        "rounds_completed": report["rounds_completed"],
        "global_test_accuracy": final.get("test_accuracy"),
        "global_test_auroc": final.get("test_auroc"),
        "global_test_auroc_sites": final.get("auroc_sites"),
        "global_test_auroc_num_test": final.get("auroc_num_test"),
        "global_num_test": final.get("num_test"),
        "fairness_accuracy_gap": report["final"]["fairness_accuracy_gap"],
        "sites": [
            {
                "site_id": s["site_id"],
                "jurisdiction": s["jurisdiction"],
                "num_train": s["num_train"],
                "num_test": s["num_test"],
                "test_accuracy": (s["final"] or {}).get("test_accuracy"),
                "suppressed": s["suppressed"],
                "trial_epsilon": s["privacy"]["trial_epsilon"],
                "trial_epsilon_budget": s["privacy"]["trial_epsilon_budget"],
                "epsilon_spent": s["privacy"]["epsilon_spent"],
                "epsilon_budget": s["privacy"]["epsilon_budget"],
            }
            for s in report["sites"]
        ],
        "budget_exhausted_sites": {
            s["site_id"]: s["privacy"]["budget_exhausted_at_round"]
            for s in report["sites"]
            if s["privacy"]["budget_exhausted_at_round"] is not None
        },
        "failure": report["failure"],
        "metrics_url": result.metrics_url,
        "files": {name: str(result.run_dir / name) for name in layout.RUN_FILES if (result.run_dir / name).exists()},
        "engine_log": str(result.run_dir / layout.ENGINE_LOG_FILE),
    }


def print_run_summary(console: Console, summary: dict[str, Any]) -> None:
    """A table per site and the global result, then where the evidence is."""
    table = Table(
        title=f"Trial {summary['trial_id']}: {summary['state']} after {summary['rounds_completed']} rounds",
        title_justify="left",
    )
    columns = (
        "site",
        "jurisdiction",
        "train records",
        "test records",
        "test accuracy",
        "epsilon: trial / budget",
        "epsilon: dataset / budget",
    )
    for column in columns:
        table.add_column(column)
    for site in summary["sites"]:
        accuracy = "suppressed (small cohort)" if site["suppressed"] else _fmt(site["test_accuracy"])
        trial = f"{_fmt(site['trial_epsilon'])} / {site['trial_epsilon_budget']:g}"
        dataset = f"{_fmt(site['epsilon_spent'])} / {_fmt(site['epsilon_budget'])}"
        table.add_row(
            site["site_id"],
            site["jurisdiction"],
            str(site["num_train"]),
            str(site["num_test"]),
            accuracy,
            trial,
            dataset,
        )
    table.add_row("[bold]global (pooled)", "", "", "", f"[bold]{_fmt(summary['global_test_accuracy'])}", "", "")
    console.print(table)
    coverage = (
        f" (over {summary['global_test_auroc_sites']} site(s), {summary['global_test_auroc_num_test']} of "
        f"{summary['global_num_test']} test records)"
        if summary.get("global_test_auroc") is not None
        else ""
    )
    console.print(
        f"AUROC {_fmt(summary['global_test_auroc'])}{coverage}, "
        f"fairness gap (max - min site accuracy) {_fmt(summary['fairness_accuracy_gap'])}"
    )
    noise = summary.get("evaluation_noise_multiplier")
    if noise is not None:
        console.print(
            f"Test accuracies, AUROC and the fairness gap are computed from sums each site released with Gaussian "
            f"noise (evaluation noise multiplier {noise:g}, charged to its privacy ledger): on test parts of a few "
            "dozen records they are mostly noise. README, section Privacy, says how to read them."
        )
    console.print(f"Run folder: [bold]{summary['run_dir']}[/bold]")
    for name, path in summary["files"].items():
        console.print(f"  {name:<16} {path}")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def print_leftovers(console: Console, resume: ResumePoint | None, trial_runs: Path) -> None:
    """End what interrupted runs of the trial left running, naming them; say a resumed run was interrupted."""
    for run_dir, processes in end_interrupted_leftovers(trial_runs).items():
        names = ", ".join(sorted({p.name for p in processes}))
        console.print(
            f"Ended {len(processes)} process(es) left running by interrupted run {escape(str(run_dir))}: {escape(names)}",
            soft_wrap=True,
        )
    if resume is not None:
        done = resume.last_completed_round
        console.print(
            f"Run {escape(str(resume.run_dir))} was [bold]interrupted[/bold] after round {done}; "
            f"resuming at round {done + 1} with the global model of round {done}.",
            soft_wrap=True,
        )


def print_failure(console: Console, summary: dict[str, Any]) -> None:
    """Why a failed trial failed: each distinct site error once, then where the engine's log is."""
    failure = summary["failure"]
    console.print(f"[bold red]The trial failed:[/bold red] {escape(failure['summary'])}.")
    for error in failure["site_errors"]:
        console.print(f"  site {escape(error['site_id'])}: {escape(error['cause'])}", soft_wrap=True)
    console.print(f"Flower's and Ray's log of the run: {escape(summary['engine_log'])}", soft_wrap=True)
