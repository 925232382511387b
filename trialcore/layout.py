"""Where a run and a site keep their evidence: the one map of the run and state folders.

A run folder (the coordinator's, one per run)::

    <runs-root>/<trial-id>/<run-id>/        run id: UTC start (sandbox run) or flwr-<Flower run id> (flwr run)
        report.json      the exit report
        report.json.sig  the coordinator's detached Ed25519 signature over report.json's canonical bytes
        report.html      the exit report for people (self-contained: no network)
        coordinator.pub.pem  the public key that signed report.json (pin it with --coordinator-key)
        spec.yaml        the trial spec as given (a byte copy)
        spec.canonical.json  the canonical JSON of the validated spec: its SHA-256 is the spec hash
        metrics-url      where the running trial serves its metrics (read by sandbox status)
        audit.jsonl      the coordinator's hash-chained audit log
        control.jsonl    suspend / resume / terminate requests from outside
        model.pt         the final global model
        metrics.prom     the final metrics (Prometheus text format)
        engine.log       Flower's and Ray's own log of the run (sandbox run)
        engine-unreachable.json  the SuperLink went away mid-run (sandbox run --engine deployment)
        checkpoint.json  where a running run stands (spec, last round, global model); removed at its end
        engine-processes.json  the coordinator's and the engine's processes (pid, start time), to end a killed run's leftovers
        sites/<site-id>/ a simulated site's stand-in for a state folder (demo only)

A site's state folder (``state_dir`` of its node config; a simulated site uses the stand-in)::

    <state_dir>/<trial-id>/audit.jsonl              the site's own chain for one trial
    <state_dir>/<trial-id>/questions/<kind>-<round>.json   each question it answered, with its reply
    <state_dir>/<trial-id>/feature-scaling.json     the feature scaling pinned for the trial
    <state_dir>/<trial-id>/min-cohort.json          the minimum cohort the trial asked, pinned
    <state_dir>/unverified-messages/audit.jsonl     refusals of messages that named no verifiable trial
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
ENGINE_UNREACHABLE_FILE = "engine-unreachable.json"
CHECKPOINT_FILE = "checkpoint.json"
ENGINE_CHOICE_FILE = "engine.json"
ENGINE_PROCESSES_FILE = "engine-processes.json"
SIGNATURE_FILE = "report.json.sig"
HTML_REPORT_FILE = "report.html"
COORDINATOR_PUBLIC_KEY_FILE = "coordinator.pub.pem"
SPEC_COPY_FILE = "spec.yaml"
CANONICAL_SPEC_FILE = "spec.canonical.json"
METRICS_URL_FILE = "metrics-url"
RUN_FILES = (REPORT_FILE, SIGNATURE_FILE, HTML_REPORT_FILE, AUDIT_FILE, MODEL_FILE, METRICS_FILE)
"""The files a finished run leaves, in the order the console lists them."""

SITES_DIR = "sites"
UNVERIFIED_DIR = "unverified-messages"
"""A site's folder for refusals of unverifiable messages; a site refuses a trial with this id (its
chain would share the folder)."""
QUESTIONS_DIR = "questions"
SCALING_FILE = "feature-scaling.json"
MIN_COHORT_FILE = "min-cohort.json"
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


def questions_dir(trial_folder: Path) -> Path:
    """``<trial folder>/questions``: a site's question book for one trial."""
    return trial_folder / QUESTIONS_DIR


def question_file(trial_folder: Path, kind: str, server_round: int) -> Path:
    """``<trial folder>/questions/<kind>-<round>.json``: one question a site answered."""
    return questions_dir(trial_folder) / f"{kind}-{server_round}.json"


def scaling_file(trial_folder: Path) -> Path:
    """``<trial folder>/feature-scaling.json``: the feature scaling a site pinned for the trial."""
    return trial_folder / SCALING_FILE


def unverified_chain(site_folder: Path) -> Path:
    """``<state folder>/unverified-messages/audit.jsonl``: a site's refusals of unverifiable messages."""
    return site_folder / UNVERIFIED_DIR / AUDIT_FILE


def min_cohort_file(trial_folder: Path) -> Path:
    """``<trial folder>/min-cohort.json``: the minimum cohort a trial asked of a site, pinned on first use."""
    return trial_folder / MIN_COHORT_FILE
