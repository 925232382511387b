"""Where a run and a site keep their evidence: the one map of the run and state folders.

A run folder (the coordinator's, one per run)::

    <runs-root>/<trial-id>/<run-id>/        run id: UTC start (sandbox run) or flwr-<Flower run id> (flwr run)
        report.json      the exit report
        audit.jsonl      the coordinator's hash-chained audit log
        control.jsonl    suspend / resume / terminate requests from outside
        model.pt         the final global model
        metrics.prom     the final metrics (Prometheus text format)
        engine.log       Flower's and Ray's own log of the run (sandbox run)
        sites/<site-id>/ a simulated site's stand-in for a state folder (demo only)

A site's state folder (``state_dir`` of its node config; a simulated site uses the stand-in)::

    <state_dir>/<trial-id>/audit.jsonl              the site's own chain for one trial
    <state_dir>/privacy/<dataset>.ledger.jsonl      its privacy ledger: one per dataset, across trials

Invariant: every path of either layout is built here and nowhere else, so the coordinator, the
site and a regulator's tools agree on where evidence lives.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_RUNS_ROOT = Path("runs")
"""Where runs go unless ``--runs-root`` (or the run config's ``runs-root``) says otherwise."""

REPORT_FILE = "report.json"
AUDIT_FILE = "audit.jsonl"
CONTROL_FILE = "control.jsonl"
MODEL_FILE = "model.pt"
METRICS_FILE = "metrics.prom"
ENGINE_LOG_FILE = "engine.log"
RUN_FILES = (REPORT_FILE, AUDIT_FILE, MODEL_FILE, METRICS_FILE)
"""The files a finished run leaves, in the order the console lists them."""

SITES_DIR = "sites"
PRIVACY_DIR = "privacy"
LEDGER_SUFFIX = ".ledger.jsonl"


def run_dir(runs_root: Path, trial_id: str, run_name: str) -> Path:
    """``<runs-root>/<trial-id>/<run-name>``: the folder of one run of one trial."""
    return Path(runs_root) / trial_id / run_name


def flwr_run_name(flower_run_id: int) -> str:
    """The run folder name under ``flwr run``: ``flwr-<Flower run id>``, which the sites know too."""
    return f"flwr-{flower_run_id}"


def simulated_site_dir(run_folder: Path, site_id: str) -> Path:
    """``<run-dir>/sites/<site-id>``: the stand-in state folder of a simulated site."""
    return run_folder / SITES_DIR / site_id


def site_trial_dir(state_dir: Path, trial_id: str) -> Path:
    """``<state_dir>/<trial-id>``: where a site keeps its chain for one trial."""
    return state_dir / trial_id


def ledger_file(state_dir: Path, dataset: str) -> Path:
    """``<state_dir>/privacy/<dataset>.ledger.jsonl``: a site's privacy ledger for one dataset."""
    return state_dir / PRIVACY_DIR / f"{dataset}{LEDGER_SUFFIX}"
