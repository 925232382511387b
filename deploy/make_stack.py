"""Write the folders the docker-compose stack mounts: one coordinator, three sites, each its own.

``python deploy/make_stack.py --out deploy/stack`` (``make compose-check`` does it) writes::

    <out>/coordinator/trial.yaml            the trial the stack runs (3 sites, 2 rounds, the demo's model and DP)
    <out>/coordinator/federation/<id>.yaml  the sites' node configs as the coordinator's pre-flight reads them
    <out>/coordinator/runs/                 run folders (audit chain, report.json, model, metrics)
    <out>/sites/<id>/config/site.yaml       the site's node config (its SuperNode's --node-config site-config=)
    <out>/sites/<id>/config/approvals/      its signed approvals; config/keys/trusted.pem: whose it accepts
    <out>/sites/<id>/policy/                its institution policy and the country layer it extends
    <out>/sites/<id>/data/records.csv       its records (the demo's simulated share, as a CSV file)
    <out>/sites/<id>/state/                 its audit chain and privacy ledger (the only folder it writes)

Each ``supernode-<id>`` service mounts its own four folders and nothing of another site's. The
records are the demo's simulated shares of scikit-learn's breast-cancer set, not patient data.
Approver keys and approvals are made by ``sandbox certs new-key`` and ``sandbox approve`` after
this script (see ``deploy/compose-check.sh``). Today's pre-flight reads the sites' node configs,
policies and approvals through the federation folder, so the coordinator mounts ``sites/`` read-only.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from participants.embedded_data import embedded_partition

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
SITES = ("de-berlin", "fr-lyon", "gb-leeds")
"""The stack's sites: the demo's first three simulated institutions (partitions 0, 1, 2)."""
ROUNDS = 2
TRIAL_ID = "compose-pilot"


def _yaml(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def write_site(out: Path, site_id: str, partition: int) -> dict[str, Any]:
    """Write one site's folders; return its node config as the coordinator's federation copy holds it."""
    demo = yaml.safe_load((EXAMPLES / "demo-sites" / f"{site_id}.yaml").read_text(encoding="utf-8"))
    root = out / "sites" / site_id
    for folder in ("config/approvals", "config/keys", "policy", "data", "state"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    institution = EXAMPLES / "policies" / "institutions" / f"{site_id}.yaml"
    policy = yaml.safe_load(institution.read_text(encoding="utf-8"))
    country = (institution.parent / policy["extends"]).resolve()
    shutil.copyfile(country, root / "policy" / "country.yaml")
    text = institution.read_text(encoding="utf-8").replace(f"extends: {policy['extends']}", "extends: country.yaml")
    (root / "policy" / "institution.yaml").write_text(text, encoding="utf-8")
    features, labels = embedded_partition(partition)
    header = ",".join([*(f"f{column}" for column in range(features.shape[1])), "target"])
    table = np.column_stack([features, labels])
    np.savetxt(root / "data" / "records.csv", table, delimiter=",", header=header, comments="", fmt="%.10g")
    config = {
        "site_id": site_id,
        "jurisdiction": demo["jurisdiction"],
        "institution": demo["institution"],
        "simulated": True,
        "data": {"kind": "csv", "path": "../data/records.csv", "target_column": "target"},
        "test_fraction": demo.get("test_fraction", 0.25),
        "policy": "../policy/institution.yaml",
        "state_dir": "../state",
        "approvals_dir": "approvals",
        "trusted_keys": "keys/trusted.pem",
    }
    _yaml(root / "config" / "site.yaml", config)
    seen_from_coordinator = f"../../sites/{site_id}/config/"
    return {
        **config,
        "data": {**config["data"], "path": seen_from_coordinator + config["data"]["path"]},
        **{
            key: seen_from_coordinator + config[key] for key in ("policy", "state_dir", "approvals_dir", "trusted_keys")
        },
    }


def write_stack(out: Path, *, rounds: int = ROUNDS) -> Path:
    """Write the coordinator's and the sites' folders under ``out``; return the trial spec's path."""
    spec = yaml.safe_load((EXAMPLES / "demo.yaml").read_text(encoding="utf-8"))
    demo_sites = {p["site_id"]: p for p in spec["participants"]}
    coordinator = out / "coordinator"
    (coordinator / "runs").mkdir(parents=True, exist_ok=True)
    for partition, site_id in enumerate(SITES):
        _yaml(coordinator / "federation" / f"{site_id}.yaml", write_site(out, site_id, partition))
    spec.update(
        trial_id=TRIAL_ID,
        title="Cross-border pilot on the docker-compose stack (simulated sites)",
        federation="federation",
        participants=[demo_sites[site_id] for site_id in SITES],
        rounds=rounds,
        min_participants=2,
    )
    path = coordinator / "trial.yaml"
    _yaml(path, spec)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write (the stack's volumes)")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()
    print(write_stack(args.out, rounds=args.rounds))


if __name__ == "__main__":
    main()
