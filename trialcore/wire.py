"""The wire protocol between the coordinator and a site: every key a message carries, once.

A Flower message is a ``RecordDict`` of named records. The coordinator sends one ConfigRecord
(:data:`CONFIG_RECORD`) and, for training and evaluation, the global model (:data:`ARRAYS_RECORD`);
a site replies with its aggregate metrics (:data:`METRICS_RECORD`), its update (train only) and
a ConfigRecord naming itself and its newest audit entry (:data:`SITE_RECORD`), or with a Flower
error whose reason starts with one of the ``*_PREFIX`` values below.

Invariants
----------
- A site derives every trial setting from the spec in :data:`SPEC_JSON` after checking it
  against :data:`SPEC_HASH`; no other config key may loosen what the spec and the site's own
  policy allow.
- Every statistic a site replies with is one of the metric keys below; nothing else leaves.
- Keys are kebab-case, as Flower's own (``server-round``, ``num-examples``).
"""

from __future__ import annotations

from typing import Final

# --- records of a message (RecordDict keys) -------------------------------------------------
CONFIG_RECORD: Final = "config"
"""The ConfigRecord the coordinator sends with every message."""
ARRAYS_RECORD: Final = "arrays"
"""The ArrayRecord holding a model: the global model sent, the site's update returned."""
METRICS_RECORD: Final = "metrics"
"""The MetricRecord a site replies with (aggregates only)."""
SITE_RECORD: Final = "site"
"""The ConfigRecord in every site reply naming the site and its newest audit entry."""
PROFILE_RECORD: Final = "profile"
"""The ConfigRecord of a data-contract query reply carrying the site's data profile, if it publishes it."""

# --- message types a site serves ------------------------------------------------------------
SERVED_MESSAGE_TYPES: Final = {
    "train": "train",
    "train.default": "train",
    "evaluate": "evaluate",
    "evaluate.default": "evaluate",
    "query": "query",
    "query.default": "query",
}
"""Every full message type a site's ClientApp serves, and the kind it is (the allowlist of its guard).

Flower routes ``<category>`` and ``<category>.default`` to the same handler; a site refuses every
other type, before any handler runs."""

# --- config keys the coordinator sends -------------------------------------------------------
TRIAL_ID: Final = "trial-id"
"""The trial's id, as in the spec."""
SPEC_HASH: Final = "spec-hash"
"""Hex SHA-256 of the canonical JSON of the spec (what sites approve and audit)."""
SPEC_JSON: Final = "trial-spec-json"
"""The whole trial spec as canonical JSON; a site checks it against :data:`SPEC_HASH`."""
SERVER_ROUND: Final = "server-round"
"""The round number (Flower's strategies write it)."""
MIN_COHORT_SIZE: Final = "min-cohort-size"
"""The composed policy's minimum cohort; a site applies the larger of this and its own."""
FEATURE_MEAN: Final = "feature-mean"
"""Federation-wide feature means, one per feature, for standardisation."""
FEATURE_STD: Final = "feature-std"
"""Federation-wide feature standard deviations, one per feature."""
FEATURE_MEDIAN: Final = "feature-median"
"""Federation-wide medians, one per numeric feature of the data contract (imputation of impute-median features)."""
COORDINATOR_ENTRY: Final = "coordinator-entry"
"""Hash of the coordinator's audit entry for this round; the site's entry names it."""

# --- metric keys a site replies with ---------------------------------------------------------
NUM_EXAMPLES: Final = "num-examples"
"""Records behind a reply (Flower's aggregation weight): train part (train), test part (evaluate)."""
NUM_TRAIN_EXAMPLES: Final = "num-train-examples"
"""The train part's count, rounded as committed before round 1 (no metric of the train part is released)."""
TEST_LOSS: Final = "test-loss"
TEST_ACCURACY: Final = "test-accuracy"
TEST_AUROC: Final = "test-auroc"
TEST_AUROC_DEFINED: Final = "test-auroc-defined"
"""1 when the site released its AUROC, 0 when a class cell was below the minimum cohort."""
EPSILON_SPENT: Final = "epsilon-spent"
"""The site's ledger after this round: epsilon spent on the dataset across trials."""
EPSILON_BUDGET: Final = "epsilon-budget"
TRIAL_EPSILON: Final = "trial-epsilon"
TRIAL_EPSILON_BUDGET: Final = "trial-epsilon-budget"
PRIVACY_DELTA: Final = "privacy-delta"
TRIAL_EPSILON_BY_RELEASE: Final = {
    "dp-sgd": "trial-epsilon-dp-sgd",
    "feature-statistics": "trial-epsilon-feature-statistics",
    "evaluation": "trial-epsilon-evaluation",
}
"""Release kind -> key of the trial's epsilon of that kind alone (the kinds compose into trial-epsilon)."""
FEATURE_SUM: Final = "feature-sum"
"""The pre-round-1 query: sums over the train part of the rows the data contract's release layout defines
(values clipped to the contract's ranges and scaled to [-1, 1], and what its rules need; trialcore.feature_statistics),
with Gaussian noise (empty when the trial scales per site)."""

DATA_PROFILE_JSON: Final = "data-profile-json"
"""The site's published data profile (counts rounded down, null below the minimum cohort), as JSON text."""

# --- keys of the site record -----------------------------------------------------------------
SITE_ID: Final = "site-id"
JURISDICTION: Final = "jurisdiction"
AUDIT_HASH: Final = "audit-hash"
AUDIT_LENGTH: Final = "audit-length"

# --- how a site's refusal reason starts ------------------------------------------------------
SMALL_CELL_PREFIX: Final = "small-cell:"
"""The site withholds statistics below the minimum cohort."""
BUDGET_EXHAUSTED_PREFIX: Final = "privacy-budget-exhausted:"
"""The site refuses a round its privacy budget cannot pay for."""
LEDGER_ERROR_PREFIX: Final = "privacy-ledger-error:"
"""The site cannot charge its privacy ledger (damaged, unwritable, no state folder)."""
GUARD_REFUSAL_PREFIX: Final = "refused by site"
"""The site's guard refuses a message (``refused by site <id>: <clause>: ...``)."""
QUESTION_BUDGET_CLAUSE: Final = "question-budget"
"""The clause a guard names when a message asks a question the site already answered (trial, kind, round)."""
MESSAGE_TYPE_CLAUSE: Final = "message-type"
"""The clause a guard names when a message's type is not one the site serves."""
FEATURE_SCALING_CLAUSE: Final = "feature-scaling"
"""The clause a site names when a message's feature scaling differs from the one it pinned for the trial."""
PARTICIPANTS_CLAUSE: Final = "participants"
"""The clause a guard names when the spec does not list the site under its own id and jurisdiction."""
SITE_INTERNAL_ERROR_PREFIX: Final = "site-internal-error:"
"""The site cannot take part at all: it cannot read its node config or data, its data does not fit the
trial's model, or its code failed. Not a refusal: the coordinator fails the trial (exit 1)."""

# --- node config keys (a site's own settings, from its SuperNode) ----------------------------
SITE_CONFIG: Final = "site-config"
"""Path of the site's node config file (deployment)."""
PARTITION_ID: Final = "partition-id"
"""The simulated node's index (simulation only)."""

# --- run config keys (``flwr run --run-config`` and ``sandbox run``) -------------------------
TRIAL_SPEC: Final = "trial-spec"
RUNS_ROOT: Final = "runs-root"
RUN_DIR: Final = "run-dir"
METRICS_PORT: Final = "metrics-port"
COORDINATOR_KEY: Final = "coordinator-key"
"""Path of the coordinator's Ed25519 private key that signs report.json (``sandbox certs new-key``)."""
FEDERATION_DIR: Final = "federation-dir"
FEDERATION_SITES: Final = "federation-sites"
NODE_BINDINGS: Final = "node-bindings"
"""Deployment: each site's authenticated node, ``site-id=node-id,...`` (the node its registered key got)."""
RESUME_RUN: Final = "resume-run"
"""Deployment: ``1`` if the ServerApp goes on with the interrupted run in ``run-dir`` from its checkpoint."""
LINGER_SECONDS: Final = "linger-seconds"
"""Deployment: how long the ServerApp keeps serving the final metrics after the trial ends."""
WITHDRAWN_PREFIX: Final = "withdrawn:"
"""The site has withdrawn from the trial (``participants withdraw``): it refuses every message of it."""
