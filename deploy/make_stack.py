"""Write the folders the docker-compose stack mounts: one coordinator, three sites, each its own.

``python deploy/make_stack.py --out deploy/stack`` (``make compose-check`` does it) writes::

    <out>/coordinator/trial.yaml              the trial the stack runs: the demo spec (its data contract,
                                              model and DP) for 3 sites and 2 rounds
    <out>/coordinator/federation/<id>.yaml    what each site publishes to the coordinator: its node config,
    <out>/coordinator/federation/<id>/        its policy files, approver key and signed approval (copies)
    <out>/coordinator/runs/                   run folders (audit chain, report.json, model, metrics)
    <out>/sites/<id>/config/site.yaml         the site's node config (``participants join --site-config``)
    <out>/sites/<id>/config/approvals/        its signed approvals; config/keys/trusted.pem: whose it accepts
    <out>/sites/<id>/policy/                  its institution policy and the country layer it extends
    <out>/sites/<id>/state/                   its audit chain, privacy ledger and Flower home (the only
                                              folder it writes)
    <out>/sites/<id>/node/                    its SuperNode's TLS and authentication material (see below)
    <out>/tls/superlink/, <out>/tls/trial/    the SuperLink's and the trial's TLS material (see below)

Each site's records are its share of the demo's packaged data (``embedded-breast-cancer``, the
same seeded, non-IID split of scikit-learn's breast-cancer set the demo uses, partitions 0, 1, 2):
the trial's data contract (30 features, target ``diagnosis``) is the demo's own, so the stack needs
no data folder. A real site names its own extract instead (``data: {kind: csv, ...}``) and mounts it.

Not written here, never committed: the key material. ``deploy/compose-check.sh`` makes it with the
project's own commands before ``docker-compose up``, the way each party would: ``sandbox certs ca``
(the CA key stays outside the stack) and ``sandbox certs server --host 127.0.0.1`` into
``tls/superlink/`` (with ``ca.pem``), ``ca.pem`` alone into ``tls/trial/``; each site's ``sandbox
certs node-key`` into ``sites/<id>/node/`` (with ``ca.pem``), whose public half it publishes as
``coordinator/federation/<id>.node.pub``; approver keys (``sandbox certs new-key``) and approvals
(``sandbox approve``), each site's approval copied into its own ``config/approvals/``.

The coordinator's copy of a site's node config points into ``federation/<id>/`` only; its
``state_dir`` there is an empty folder (the coordinator never sees a site's ledger: its pre-flight
dry run starts from nothing spent, and each site enforces its own ledger).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
SITES = ("de-berlin", "fr-lyon", "gb-leeds")
"""The stack's sites: the demo's first three simulated institutions (partitions 0, 1, 2)."""
ROUNDS = 2
TRIAL_ID = "compose-pilot"
SITE_FOLDERS = ("config/approvals", "config/keys", "policy", "state", "node")


def _yaml(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def _write_policy(site_id: str, folder: Path) -> None:
    """The institution's policy and the country layer it extends, side by side in ``folder``."""
    institution = EXAMPLES / "policies" / "institutions" / f"{site_id}.yaml"
    policy = yaml.safe_load(institution.read_text(encoding="utf-8"))
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile((institution.parent / policy["extends"]).resolve(), folder / "country.yaml")
    text = institution.read_text(encoding="utf-8").replace(f"extends: {policy['extends']}", "extends: country.yaml")
    (folder / "institution.yaml").write_text(text, encoding="utf-8")


def write_site(out: Path, site_id: str) -> dict[str, Any]:
    """Write one site's folders; return its node config as it publishes it to the coordinator."""
    demo = yaml.safe_load((EXAMPLES / "demo-sites" / f"{site_id}.yaml").read_text(encoding="utf-8"))
    root = out / "sites" / site_id
    for folder in SITE_FOLDERS:
        (root / folder).mkdir(parents=True, exist_ok=True)
    _write_policy(site_id, root / "policy")
    config = {
        "site_id": site_id,
        "jurisdiction": demo["jurisdiction"],
        "institution": demo["institution"],
        "simulated": False,  # a SuperNode of its own: secret DP randomness, its own state folder
        "data": demo["data"],  # the demo's packaged share (embedded-breast-cancer, its partition)
        "test_fraction": demo.get("test_fraction", 0.25),
        "policy": "../policy/institution.yaml",
        "state_dir": "../state",
        "approvals_dir": "approvals",
        "trusted_keys": "keys/trusted.pem",
    }
    _yaml(root / "config" / "site.yaml", config)
    published = out / "coordinator" / "federation" / site_id
    _write_policy(site_id, published / "policy")
    for folder in ("approvals", "state"):
        (published / folder).mkdir(parents=True, exist_ok=True)
    return {
        **config,
        "policy": f"{site_id}/policy/institution.yaml",
        "state_dir": f"{site_id}/state",
        "approvals_dir": f"{site_id}/approvals",
        "trusted_keys": f"{site_id}/trusted.pem",
    }


def write_stack(out: Path, *, rounds: int = ROUNDS) -> Path:
    """Write the coordinator's and the sites' folders under ``out``; return the trial spec's path."""
    spec = yaml.safe_load((EXAMPLES / "demo.yaml").read_text(encoding="utf-8"))
    demo_sites = {p["site_id"]: p for p in spec["participants"]}
    coordinator = out / "coordinator"
    (coordinator / "runs").mkdir(parents=True, exist_ok=True)
    for folder in ("superlink", "trial"):
        (out / "tls" / folder).mkdir(parents=True, exist_ok=True)
    for site_id in SITES:
        _yaml(coordinator / "federation" / f"{site_id}.yaml", write_site(out, site_id))
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
