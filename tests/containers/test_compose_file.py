"""docker-compose.yml as docker-compose reads it, and the folders each of its services mounts.

``docker-compose config`` (Debian package ``docker-compose``, installed here when missing and run
as root; otherwise the test fails saying how to install it) validates the file and resolves it;
the tests then check the topology on what it resolved: one SuperLink serving TLS and admitting only
registered SuperNodes (no ``--insecure`` anywhere), one SuperNode per site (``participants join``
with its own node key and the CA certificate) mounting its own node config, policy, node key and
state and nothing of another site's, a SuperLink and a trial that mount no site's folder,
Prometheus with the shipped config, Grafana provisioned from the shipped dashboards, host
networking; and that the trial the stack runs is the demo's data contract on the demo's packaged
per-site shares. ``make compose-check`` runs the stack itself (minutes; not part of ``make test``).
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
from participants.site_config import EmbeddedSource, load_site_config  # noqa: E402
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


def sandbox_services(resolved: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the project's image (SuperLink, SuperNodes, trial)."""
    return {name: s for name, s in resolved["services"].items() if name not in {"prometheus", "grafana"}}


def option(service: dict[str, Any], name: str) -> str:
    """The value of the one ``--name=VALUE`` argument of the service's command."""
    values = [arg.split("=", 1)[1] for arg in service["command"] if arg.startswith(f"{name}=")]
    assert len(values) == 1, (name, service["command"])
    return values[0]


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


def test_nothing_in_the_stack_runs_without_tls(resolved: dict[str, Any]) -> None:
    """No service passes --insecure or an insecure connection; the SuperLink serves TLS and admits only registered nodes."""
    for name, service in resolved["services"].items():
        text = yaml.safe_dump({"command": service.get("command"), "environment": service.get("environment")})
        assert "insecure" not in text.lower(), f"{name} runs without TLS: {text}"
    superlink = resolved["services"]["superlink"]
    assert "--enable-supernode-auth" in superlink["command"]
    tls = sources(superlink)["/tls"]
    for flag, file in (
        ("--ssl-ca-certfile", "ca.pem"),
        ("--ssl-certfile", "server.pem"),
        ("--ssl-keyfile", "server.key"),
    ):
        assert option(superlink, flag) == f"/tls/{file}"
    trial = resolved["services"]["trial"]
    assert trial["command"][:2] == ["sandbox", "run"] and "--engine=deployment" in trial["command"]
    assert trial["environment"]["SANDBOX_ROOT_CERTIFICATES"] == "/tls/ca.pem"
    assert sources(trial)["/tls"] != tls, "the trial gets the CA certificate only, not the SuperLink's key"


def test_each_supernode_joins_with_its_own_key_and_mounts_only_its_own_site(
    resolved: dict[str, Any], stack: Path
) -> None:
    """A site's SuperNode mounts its own node config, policy, node key and state folder and nothing of another site's."""
    for site in SITES:
        service = resolved["services"][f"supernode-{site}"]
        mounts = sources(service)
        own = stack / "sites" / site
        assert mounts == {
            "/site/config": str(own / "config"),
            "/site/policy": str(own / "policy"),
            "/site/node": str(own / "node"),
            "/site/state": str(own / "state"),
        }, service["volumes"]
        for other in SITES:
            if other != site:
                assert not any(other in host for host in mounts.values()), (site, other, mounts)
        read_only = {volume.split(":")[1] for volume in service["volumes"] if volume.endswith(":ro")}
        assert read_only == {"/site/config", "/site/policy", "/site/node"}
        assert service["command"][:2] == ["participants", "join"]
        assert option(service, "--site-config") == "/site/config/site.yaml"
        assert option(service, "--root-certificates") == "/site/node/ca.pem"
        assert option(service, "--auth-key") == f"/site/node/{site}.node.key"
    ports = [option(resolved["services"][f"supernode-{s}"], "--port") for s in SITES]
    assert len(set(ports)) == len(SITES), "each SuperNode on one host needs its own Runtime API port"


def test_coordinator_services_mount_no_site_folder(resolved: dict[str, Any], stack: Path) -> None:
    """The SuperLink and the trial see the coordinator's folder and their TLS files; no site's folder or node key."""
    expected_tls = {"superlink": stack / "tls" / "superlink", "trial": stack / "tls" / "trial"}
    for name, tls in expected_tls.items():
        service = resolved["services"][name]
        assert sources(service) == {
            "/tls": str(tls),
            "/stack/coordinator/trial.yaml": str(stack / "coordinator" / "trial.yaml"),
            "/stack/coordinator/federation": str(stack / "coordinator" / "federation"),
            "/stack/coordinator/runs": str(stack / "coordinator" / "runs"),
        }, service["volumes"]
        writable = {volume.split(":")[1] for volume in service["volumes"] if not volume.endswith(":ro")}
        assert writable == {"/stack/coordinator/runs"}
    for name, service in sandbox_services(resolved).items():
        for host in sources(service).values():
            if not name.startswith("supernode-"):
                assert not Path(host).is_relative_to(stack / "sites"), (name, host)


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


def test_stack_runs_the_demo_contract_on_the_demos_packaged_shares(stack: Path) -> None:
    """The stack's trial is the demo's data contract (features, target) for three sites, on the demo's own per-site shares."""
    spec = load_spec(stack / "coordinator" / "trial.yaml")
    demo = load_spec(REPO / "examples" / "demo.yaml")
    assert spec.spec.site_ids == SITES
    assert spec.spec.rounds == 2
    assert spec.spec.data == demo.spec.data
    assert spec.spec.model == demo.spec.model
    demo_sites = REPO / "examples" / "demo-sites"
    for site in SITES:
        config = load_site_config(stack / "sites" / site / "config" / "site.yaml").config
        assert isinstance(config.data, EmbeddedSource)
        assert config.data == load_site_config(demo_sites / f"{site}.yaml").config.data


def test_stack_folders_keep_each_site_to_itself(stack: Path) -> None:
    """Each site's node config points only into its own folders; the coordinator's copy only into what the site published."""
    for site in SITES:
        own = (stack / "sites" / site).resolve()
        config = load_site_config(own / "config" / "site.yaml")
        assert config.config.simulated is False
        for relative in (config.config.policy, config.config.state_dir, config.config.trusted_keys):
            assert config.resolve(str(relative)).is_relative_to(own), relative
        published = (stack / "coordinator" / "federation" / site).resolve()
        copy = load_site_config(stack / "coordinator" / "federation" / f"{site}.yaml")
        for relative in (
            copy.config.policy,
            copy.config.state_dir,
            copy.config.trusted_keys,
            copy.config.approvals_dir,
        ):
            assert copy.resolve(str(relative)).is_relative_to(published), relative
        assert copy.config.model_dump(exclude={"policy", "state_dir", "approvals_dir", "trusted_keys"}) == (
            config.config.model_dump(exclude={"policy", "state_dir", "approvals_dir", "trusted_keys"})
        )
        for policy in (own / "policy", published / "policy"):
            assert "extends: country.yaml" in (policy / "institution.yaml").read_text(encoding="utf-8")
        assert (own / "policy" / "institution.yaml").read_bytes() == (
            published / "policy" / "institution.yaml"
        ).read_bytes()
