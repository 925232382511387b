"""A loopback deployment: one SuperLink (TLS, SuperNode authentication) and one SuperNode per site, as processes.

Everything is made the way an operator makes it, through the project's own commands:
``sandbox certs ca|server|node-key``, ``sandbox nodes register`` and ``participants join``. The
trial is a 3-site, 2-round copy of the demo (``pilot-deploy``, ``min_participants: 2``); each
site has its own state folder and node key and publishes only its public key in the federation.
Every process started here is stopped by :meth:`Topology.close`, which also ends any Flower
process left behind that names one of the topology's ports or folders.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.approved_demo import DemoCopy, copy_demo
from tests.integration.conftest import sandbox_env
from tests.prometheus_server import free_port

BIN = Path(sys.executable).parent
SANDBOX = str(BIN / "sandbox")
PARTICIPANTS = str(BIN / "participants")
SITES = ("de-berlin", "fr-lyon", "gb-leeds")
TRIAL_ID = "pilot-deploy"
RESUMED_TRIAL_ID = "pilot-resume"
"""The same pilot under another id (its own site state): the trial that is killed in round 2 and resumed."""
JOIN_WAIT_SECONDS = 10


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run one project command to completion (text output)."""
    return subprocess.run(list(args), env=deployment_env(), capture_output=True, text=True, timeout=timeout)


def deployment_env() -> dict[str, str]:
    env = sandbox_env()
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def make_pilot(root: Path) -> DemoCopy:
    """A 3-site, 2-round copy of the demo; each site with its own state folder; approved by every site."""
    demo = copy_demo(root)
    spec = yaml.safe_load(demo.spec.read_text())
    spec.update({"trial_id": TRIAL_ID, "rounds": 2, "min_participants": 2})
    spec["participants"] = [p for p in spec["participants"] if p["site_id"] in SITES]
    pilot = demo.examples / "pilot.yaml"
    pilot.write_text(yaml.safe_dump(spec, sort_keys=False))
    resumed = demo.examples / "pilot-resume.yaml"
    resumed.write_text(yaml.safe_dump({**spec, "trial_id": RESUMED_TRIAL_ID}, sort_keys=False))
    for site_id in SITES:
        path = demo.site_config(site_id)
        config = yaml.safe_load(path.read_text())
        config.update({"simulated": False, "state_dir": f"../../site-state/{site_id}"})
        path.write_text(yaml.safe_dump(config, sort_keys=False))
    demo.approve(pilot, sites=SITES)
    demo.approve(resumed, sites=SITES)
    return demo


@dataclass
class Topology:
    """The running processes and where their files are."""

    root: Path
    demo: DemoCopy
    superlink_port: int
    pki: Path
    keys: Path
    site_ports: dict[str, int]
    superlink: subprocess.Popen[bytes] | None = None
    joins: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def spec(self) -> Path:
        return self.demo.examples / "pilot.yaml"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.superlink_port}"

    @property
    def ca(self) -> Path:
        return self.pki / "ca.pem"

    def state_dir(self, site_id: str) -> Path:
        """The site's own state folder (``state_dir: ../../site-state/<site>`` in its node config)."""
        return self.demo.root / "site-state" / site_id

    # --- processes ---------------------------------------------------------------------------
    def start_superlink(self) -> None:
        log = open(self.root / "superlink.log", "ab")  # noqa: SIM115 - closed with the process
        self.superlink = subprocess.Popen(
            [
                str(BIN / "flower-superlink"),
                "--ssl-ca-certfile",
                str(self.ca),
                "--ssl-certfile",
                str(self.pki / "server.pem"),
                "--ssl-keyfile",
                str(self.pki / "server.key"),
                "--enable-supernode-auth",
                "--disable-runtime-dependency-installation",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.superlink_port),
            ],
            env={**deployment_env(), "FLWR_HOME": str(self.root / "superlink-home")},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def join(self, site_id: str, *, key: str | None = None, port: int | None = None) -> subprocess.Popen[bytes]:
        """``participants join`` for ``site_id`` (with another site's or a rogue ``key`` if given)."""
        log = open(self.root / f"join-{key or site_id}.log", "ab")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            [
                PARTICIPANTS,
                "join",
                "--superlink",
                self.address,
                "--site-config",
                str(self.demo.site_config(site_id)),
                "--root-certificates",
                str(self.ca),
                "--auth-key",
                str(self.keys / f"{key or site_id}.node.key"),
                "--port",
                str(port or self.site_ports[site_id]),
                "--wait-seconds",
                str(JOIN_WAIT_SECONDS),
            ],
            env=deployment_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        if key is None:
            self.joins[site_id] = process
        return process

    def online_sites(self) -> set[str]:
        """The sites whose SuperNodes the SuperLink sees online (via the Control API)."""
        from sandbox.node_bindings import bound_nodes
        from sandbox.superlink_control import SuperLinkClient, parse_address
        from trialcore.spec_loading import load_spec

        client = SuperLinkClient(parse_address(self.address, root_certificates=self.ca), wait_seconds=10)
        try:
            nodes = client.nodes()
        finally:
            client.close()
        online = {n.node_id for n in nodes if n.status == "online"}
        return {site for site, node in bound_nodes(load_spec(self.spec), nodes).items() if node in online}

    def wait_online(self, sites: tuple[str, ...] = SITES, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not set(sites) <= self.online_sites():
            if time.monotonic() > deadline:
                raise AssertionError(f"SuperNodes not online within {timeout} s: {self.logs()}")
            time.sleep(1)

    def kill_site(self, site_id: str) -> None:
        """SIGKILL a site's ``participants join`` and its SuperNode (its whole process group): a crash."""
        process = self.joins.pop(site_id)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        for pid in self.flower_pids(str(self.site_ports[site_id])):
            _kill(pid, signal.SIGKILL)

    def kill_superlink(self) -> None:
        """SIGKILL the SuperLink and the ServerApp processes it started (the coordinator's machine went away)."""
        assert self.superlink is not None
        os.killpg(self.superlink.pid, signal.SIGKILL)
        self.superlink.wait(timeout=10)
        for _ in range(20):
            started = [
                pid
                for pid in self.flower_pids(f":{self.superlink_port}")
                if any(name in _cmdline(pid) for name in ("flower-superexec", "flwr-serverapp"))
            ]
            if not started:
                return
            for pid in started:
                _kill(pid, signal.SIGKILL)
            time.sleep(0.5)
        raise AssertionError("the SuperLink's ServerApp processes survived SIGKILL")

    def restart(self) -> None:
        """Start the SuperLink again (it kept no state), register the sites' keys again and rejoin every site."""
        self.start_superlink()
        self.register_and_join()

    def register_and_join(self) -> None:
        """``sandbox nodes register`` every published key, then ``participants join`` every site; wait until online."""
        registered = run_cli(
            SANDBOX,
            "nodes",
            "register",
            str(self.spec),
            "--superlink",
            self.address,
            "--root-certificates",
            str(self.ca),
            "--format",
            "json",
        )
        assert registered.returncode == 0, registered.stderr + self.logs()
        assert {n["site_id"] for n in json.loads(registered.stdout)["nodes"]} == set(SITES)
        for site_id in SITES:
            self.join(site_id)
        self.wait_online()

    def start_run(
        self,
        runs_root: Path,
        *extra: str,
        spec: Path | None = None,
        metrics_port: int | None = None,
        resume: Path | None = None,
        engine_flags: bool = True,
    ) -> subprocess.Popen[str]:
        """``sandbox run pilot.yaml --engine deployment ...`` (or ``--resume RUN_DIR``) in the background (JSON on stdout).

        Without ``engine_flags`` no engine, SuperLink or CA is given (a resumed run finds them in its folder).
        """
        what = ["--resume", str(resume)] if resume is not None else [str(spec or self.spec)]
        engine = ["--engine", "deployment", "--superlink", self.address, "--root-certificates", str(self.ca)]
        return subprocess.Popen(
            [
                SANDBOX,
                "run",
                *what,
                *(engine if engine_flags else []),
                "--runs-root",
                str(runs_root),
                "--metrics-port",
                str(metrics_port or free_port()),
                "--linger-seconds",
                "0",
                "--format",
                "json",
                *extra,
            ],
            env=deployment_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}" for p in sorted(self.root.glob("*.log"))
        )

    # --- clean-up ----------------------------------------------------------------------------
    def flower_pids(self, marker: str) -> list[int]:
        """Pids of Flower processes of this machine whose command line names ``marker``."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline and ("flower-" in cmdline or "flwr" in cmdline or "participants" in cmdline):
                found.append(int(entry.name))
        return found

    def leftovers(self) -> list[int]:
        markers = [str(self.root), f":{self.superlink_port}", *(f":{p}" for p in self.site_ports.values())]
        return sorted({pid for marker in markers for pid in self.flower_pids(marker)})

    def close(self) -> None:
        """Stop every process of the topology: joins and SuperLink first, then anything left over."""
        for process in [*self.joins.values(), *([self.superlink] if self.superlink else [])]:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in [*self.joins.values(), *([self.superlink] if self.superlink else [])]:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        for _ in range(20):
            left = self.leftovers()
            if not left:
                return
            for pid in left:
                _kill(pid, signal.SIGKILL)
            time.sleep(0.5)


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def build_topology(root: Path) -> Topology:
    """Make the certificates, keys and pilot; start the SuperLink; register the keys; join the three sites."""
    demo = make_pilot(root / "pilot")
    topology = Topology(
        root=root,
        demo=demo,
        superlink_port=free_port(),
        pki=root / "pki",
        keys=root / "node-keys",
        site_ports={site: free_port() for site in SITES},
    )
    for args in (
        ("certs", "ca", "--out", str(topology.pki)),
        ("certs", "server", "--ca", str(topology.pki), "--out", str(topology.pki), "--host", "127.0.0.1"),
        ("certs", "node-key", "--out", str(topology.keys), *(f"--name={s}" for s in (*SITES, "rogue"))),
    ):
        completed = run_cli(SANDBOX, *args)
        assert completed.returncode == 0, completed.stderr
    for site_id in SITES:  # each site publishes its public key in the federation, nothing else
        (demo.sites_dir / f"{site_id}.node.pub").write_bytes((topology.keys / f"{site_id}.node.pub").read_bytes())
    topology.start_superlink()
    try:
        topology.register_and_join()
    except BaseException:
        topology.close()
        raise
    return topology
