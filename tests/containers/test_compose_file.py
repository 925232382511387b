"""docker-compose.yml as docker-compose reads it, and the folders each of its services mounts.

``docker-compose config`` (Debian package ``docker-compose``, installed here when missing and run
as root; otherwise the test fails saying how to install it) validates the file and resolves it;
the tests then check the topology on what it resolved: one SuperLink, one SuperNode per site
mounting its own node config, policy, data and state and nothing of another site's, Prometheus
with the shipped config, Grafana provisioned from the shipped dashboards, host networking.
``make compose-check`` runs the stack itself (minutes; not part of ``make test``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from deploy.make_stack import SITES, write_stack  # noqa: E402
from participants.site_config import load_site_config  # noqa: E402
from trialcore.spec_loading import load_spec  # noqa: E402

COMPOSE_FILE = REPO / "docker-compose.yml"
_INSTALL_HINT = "install it with: sudo apt-get install docker-compose"


def require_docker_compose() -> str:
    """Path of ``docker-compose``; apt-get installs it as root when missing; else the test fails with a hint."""
    found = shutil.which("docker-compose")
    if found is None and os.name == "posix" and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "docker-compose"],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=900,
        )
        found = shutil.which("docker-compose")
    if found is None:
        pytest.fail(f"`docker-compose` (Debian package docker-compose) validates docker-compose.yml; {_INSTALL_HINT}")
    return found


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folders the stack mounts, written by deploy/make_stack.py."""
    root = tmp_path_factory.mktemp("stack")
    write_stack(root)
    return root


@pytest.fixture(scope="module")
def resolved(stack: Path) -> dict[str, Any]:
    """``docker-compose config`` of the shipped file with SANDBOX_STACK at ``stack``."""
    compose = require_docker_compose()
    done = subprocess.run(
        [compose, "-f", str(COMPOSE_FILE), "config"],
        env={**os.environ, "SANDBOX_STACK": str(stack)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    loaded: dict[str, Any] = yaml.safe_load(done.stdout)
    return loaded


def sources(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path of every bind mount of ``service``."""
    found = {}
    for volume in service.get("volumes", []):
        host, container = volume.split(":")[:2] if isinstance(volume, str) else (volume["source"], volume["target"])
        found[container] = host
    return found


def test_missing_docker_compose_fails_with_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without docker-compose (and no root to install it) the validation fails saying how to install it, never skips."""
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(pytest.fail.Exception, match="sudo apt-get install docker-compose"):
        require_docker_compose()


def test_compose_file_names_the_pilot_topology(resolved: dict[str, Any]) -> None:
    """docker-compose accepts the file: a SuperLink, one SuperNode per site, the trial, Prometheus and Grafana."""
    services = resolved["services"]
    assert set(services) == {
        "superlink",
        *(f"supernode-{site}" for site in SITES),
        "trial",
        "prometheus",
        "grafana",
    }
    assert all(service["network_mode"] == "host" for service in services.values())
    assert services["superlink"]["command"][0] == "flower-superlink"
    assert services["prometheus"]["image"] == "prom/prometheus"
    assert services["grafana"]["image"] == "grafana/grafana"


def test_each_supernode_mounts_only_its_own_site(resolved: dict[str, Any], stack: Path) -> None:
    """A site's SuperNode sees its own node config, policy and data (read-only) and state, never another site's."""
    for site in SITES:
        service = resolved["services"][f"supernode-{site}"]
        mounts = sources(service)
        own = stack / "sites" / site
        assert mounts == {
            "/site/config": str(own / "config"),
            "/site/policy": str(own / "policy"),
            "/site/data": str(own / "data"),
            "/site/state": str(own / "state"),
        }, service["volumes"]
        read_only = {volume.split(":")[1] for volume in service["volumes"] if volume.endswith(":ro")}
        assert read_only == {"/site/config", "/site/policy", "/site/data"}
        assert "--node-config=site-config='/site/config/site.yaml'" in service["command"]
        ports = {arg for arg in service["command"] if arg.startswith("--port=")}
        assert len(ports) == 1
    ports = [
        next(a for a in resolved["services"][f"supernode-{s}"]["command"] if a.startswith("--port=")) for s in SITES
    ]
    assert len(set(ports)) == len(SITES), "each SuperNode on one host needs its own Runtime API port"


def test_monitoring_services_use_the_shipped_configuration(resolved: dict[str, Any]) -> None:
    """Prometheus runs monitoring/prometheus/ (config and alert rules); Grafana is provisioned from monitoring/grafana/."""
    prometheus = resolved["services"]["prometheus"]
    assert sources(prometheus) == {"/etc/prometheus": str(REPO / "monitoring" / "prometheus")}
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    provisioning = yaml.safe_load(
        (REPO / "monitoring" / "grafana" / "provisioning" / "dashboards" / "sandbox.yml").read_text(encoding="utf-8")
    )
    dashboards_path = provisioning["providers"][0]["options"]["path"]
    assert sources(resolved["services"]["grafana"]) == {
        "/etc/grafana/provisioning": str(REPO / "monitoring" / "grafana" / "provisioning"),
        dashboards_path: str(REPO / "monitoring" / "grafana" / "dashboards"),
    }


def test_stack_folders_keep_each_site_to_itself(stack: Path) -> None:
    """Each site's node config loads and points only into its own folders; the coordinator sees the same files."""
    spec = load_spec(stack / "coordinator" / "trial.yaml")
    assert spec.spec.site_ids == SITES
    assert spec.spec.rounds == 2
    for site in SITES:
        own = (stack / "sites" / site).resolve()
        config = load_site_config(own / "config" / "site.yaml")
        coordinator_copy = load_site_config(stack / "coordinator" / "federation" / f"{site}.yaml")
        named = [config.config.data.path, config.config.policy, config.config.state_dir, config.config.trusted_keys]  # type: ignore[union-attr]
        for relative in named:
            assert config.resolve(str(relative)).resolve().is_relative_to(own), relative
        assert (
            config.resolve(config.config.data.path).resolve()
            == coordinator_copy.resolve(  # type: ignore[union-attr]
                coordinator_copy.config.data.path  # type: ignore[union-attr]
            ).resolve()
        )
        policy_text = (own / "policy" / "institution.yaml").read_text(encoding="utf-8")
        assert "extends: country.yaml" in policy_text
