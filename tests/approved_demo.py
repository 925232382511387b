"""A private, approved copy of the demo: what ``make demo`` prepares, in a test's own folder.

``examples/`` is copied to ``<root>/examples``; the demo sites' node configs point their
``approvals_dir`` and ``trusted_keys`` at ``../../runs/demo-state/``, which in the copy is
``<root>/runs/demo-state/``. Each demo site gets an approver key pair there, trusts its public
key, and approves the demo spec, through the same library calls ``sandbox certs new-key`` and
``sandbox approve`` make; so does the demo regulator, whose public key the demo's sandbox plan
names. No test writes into the repository.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from participants.approval_keys import load_private_key, new_key_pair
from participants.approvals import approval_path, sign_approval, site_policy_hash, write_approval
from participants.site_config import LoadedSiteConfig, load_site_config
from trialcore.spec_loading import load_spec

REPO = Path(__file__).resolve().parents[1]
DEMO_SITES = ("de-berlin", "fr-lyon", "gb-leeds", "ch-zurich")


@dataclass(frozen=True)
class DemoCopy:
    """A private copy of the demo: where its spec, site configs, keys and approvals live."""

    root: Path

    @property
    def examples(self) -> Path:
        return self.root / "examples"

    @property
    def spec(self) -> Path:
        return self.examples / "demo.yaml"

    @property
    def sites_dir(self) -> Path:
        return self.examples / "demo-sites"

    @property
    def keys_dir(self) -> Path:
        return self.root / "runs" / "demo-state" / "keys"

    def site_config(self, site_id: str) -> Path:
        return self.sites_dir / f"{site_id}.yaml"

    def site(self, site_id: str) -> LoadedSiteConfig:
        return load_site_config(self.site_config(site_id))

    @property
    def regulator_key(self) -> Path:
        """The demo regulator's private key (the demo's sandbox plan names its public key)."""
        return self.keys_dir / "regulator.key.pem"

    def key(self, site_id: str) -> Path:
        """The site's approver private key."""
        return self.keys_dir / f"{site_id}.key.pem"

    def approval(self, site_id: str, trial_id: str = "cancer-risk-demo") -> Path:
        """Where the site keeps its approval of ``trial_id``."""
        site = self.site(site_id)
        return approval_path(site.resolve(str(site.config.approvals_dir)), trial_id, site_id)

    def approve(self, spec: Path | None = None, sites: tuple[str, ...] = DEMO_SITES) -> None:
        """Each of ``sites`` signs its approval of ``spec`` (default: the demo) with its own approver key."""
        loaded = load_spec(spec or self.spec)
        for site_id in sites:
            site = self.site(site_id)
            policy_hash = site_policy_hash(site)
            assert policy_hash is not None
            approval = sign_approval(
                trial_id=loaded.spec.trial_id,
                site_id=site_id,
                spec_hash=loaded.spec_hash,
                policy_hash=policy_hash,
                key=load_private_key(self.key(site_id)),
                approved_at=datetime.now(UTC),
            )
            write_approval(self.approval(site_id, loaded.spec.trial_id), approval)


def copy_demo(root: Path) -> DemoCopy:
    """Copy ``examples/`` under ``root``; give each demo site an approver key it trusts; approve nothing yet."""
    shutil.copytree(REPO / "examples", root / "examples")
    demo = DemoCopy(root)
    for site_id in DEMO_SITES:
        pair = new_key_pair(demo.keys_dir, site_id)
        trusted = demo.site(site_id).config.trusted_keys
        assert trusted is not None, f"demo site {site_id} must set trusted_keys"
        shutil.copyfile(pair.public_key, demo.site(site_id).resolve(trusted))
    regulator = new_key_pair(demo.keys_dir, "regulator")
    shutil.copyfile(regulator.public_key, demo.keys_dir / "regulator.trusted.pem")
    return demo


def approved_demo_at(root: Path) -> DemoCopy:
    """A copy of the demo under ``root`` whose four sites have approved the demo spec."""
    demo = copy_demo(root)
    demo.approve()
    return demo
