"""The coordinator's side of a SuperLink's Control API: reach it, register node keys, list nodes and runs.

Flower 1.42 serves the Control and Fleet APIs on one HTTPS port (``flower-superlink --host --port``).
This module is the only place that uses Flower's Control API client
(:class:`flwr.supercore.control.ControlHttpClient`, the client ``flwr supernode register`` and
``flwr ls`` use; flwr is pinned). Every call is bounded: a SuperLink that does not answer within
``wait_seconds`` is :class:`~trialcore.errors.ServiceUnavailable` (exit 6), never an endless retry.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from trialcore.errors import BadInputError, Problem, ServiceUnavailable, show_value

logger = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["RegisteredNode", "RunStatus", "SuperLinkAddress", "SuperLinkClient", "parse_address"]


@dataclass(frozen=True)
class SuperLinkAddress:
    """Where a SuperLink is, and the CA its TLS certificate is checked against (None: --insecure)."""

    host: str
    port: int
    root_certificates: Path | None

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_address(value: str, *, root_certificates: Path | None, option: str = "--superlink") -> SuperLinkAddress:
    """``HOST:PORT`` (IPv6 as ``[::1]:PORT``) checked; the CA file must exist when given.

    Raises
    ------
    BadInputError
        A malformed address or a missing CA file.
    """
    host, _, port_text = value.rpartition(":")
    host = host.strip("[]")
    problems: list[Problem] = []
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        problems.append(Problem(option, "", show_value(value), "HOST:PORT, e.g. superlink.example.org:9093"))
    if root_certificates is not None and not root_certificates.is_file():
        problems.append(
            Problem("--root-certificates", "", show_value(str(root_certificates)), "the CA certificate file (ca.pem)")
        )
    if problems:
        raise BadInputError("Cannot reach the SuperLink with these settings", problems)
    return SuperLinkAddress(host, int(port_text), root_certificates)


def wait_reachable(address: SuperLinkAddress, *, wait_seconds: float, poll_seconds: float = 0.5) -> None:
    """Return once a TCP connection to the SuperLink opens; :class:`ServiceUnavailable` after ``wait_seconds``."""
    deadline = time.monotonic() + wait_seconds
    last = "no answer"
    while True:
        try:
            with socket.create_connection((address.host, address.port), timeout=min(poll_seconds * 4, 5.0)):
                return
        except OSError as err:
            last = err.strerror or type(err).__name__
        if time.monotonic() >= deadline:
            raise unreachable(address, f"{last} for {wait_seconds:.0f} s")
        time.sleep(poll_seconds)


def unreachable(address: SuperLinkAddress, found: str) -> ServiceUnavailable:
    """The exit-6 error for a SuperLink that does not answer."""
    return ServiceUnavailable(
        f"The SuperLink at {address.address} is unreachable",
        [Problem("--superlink", "", show_value(found), f"a running flower-superlink at {address.address}")],
    )


@dataclass(frozen=True)
class RegisteredNode:
    """A node the SuperLink knows: its id, the public key it was registered with (PEM), its status."""

    node_id: int
    public_key: bytes
    status: str
    name: str


@dataclass(frozen=True)
class RunStatus:
    """A Flower run's status (``pending``, ``starting``, ``running``, ``finished``) and sub-status."""

    run_id: int
    status: str
    sub_status: str
    details: str

    @property
    def finished(self) -> bool:
        return self.status == "finished"


class SuperLinkClient:
    """A bounded Control API client for one SuperLink.

    Parameters
    ----------
    address:
        The SuperLink and the CA of its TLS certificate (None only for ``--insecure`` tests).
    wait_seconds:
        How long each call may keep failing to connect before :class:`ServiceUnavailable`.
    """

    def __init__(self, address: SuperLinkAddress, *, wait_seconds: float = 30.0) -> None:
        self.address = address
        self.wait_seconds = wait_seconds
        self._stub: Any = None

    def _client(self) -> Any:
        if self._stub is None:
            from flwr.cli.typing import SuperLinkConnection
            from flwr.cli.utils import init_http_client_from_connection

            connection = SuperLinkConnection(
                name="sandbox",
                address=self.address.address,
                root_certificates=str(self.address.root_certificates) if self.address.root_certificates else None,
                insecure=self.address.root_certificates is None,
            )
            with (
                open(os.devnull, "w") as quiet,
                contextlib.redirect_stdout(quiet),
            ):  # Flower prints "Using SuperLink: ..."
                self._stub = init_http_client_from_connection(connection)
        return self._stub

    def close(self) -> None:
        if self._stub is not None:
            self._stub.close()
            self._stub = None

    def _call(self, action: Callable[[Any], T]) -> T:
        deadline = time.monotonic() + self.wait_seconds
        while True:
            try:
                return action(self._client())
            except (OSError, ConnectionError) as err:
                failure = str(err) or type(err).__name__
            except Exception as err:  # the HTTP client's own transport errors (httpx); not a bug of ours
                if not _is_transport_error(err):
                    raise
                failure = str(err) or type(err).__name__
            self.close()
            if time.monotonic() >= deadline:
                raise unreachable(self.address, failure[:200])
            time.sleep(0.5)

    def nodes(self) -> list[RegisteredNode]:
        """Every node registered with the SuperLink (with its public key)."""
        from flwr.proto.control_pb2 import ListNodesRequest

        response = self._call(lambda stub: stub.ListNodes(ListNodesRequest()))
        return [
            RegisteredNode(int(info.node_id), bytes(info.public_key), str(info.status), str(info.name))
            for info in response.nodes_info
        ]

    def register(self, public_key_pem: bytes, *, name: str) -> int:
        """Register a node key (SubjectPublicKeyInfo PEM) under ``name``; its node id."""
        from flwr.proto.control_pb2 import RegisterNodeRequest

        response = self._call(lambda stub: stub.RegisterNode(RegisterNodeRequest(public_key=public_key_pem, name=name)))
        return int(response.node_id)

    def run_status(self, run_id: int) -> RunStatus:
        """The status of Flower run ``run_id``."""
        from flwr.common.serde import run_from_proto
        from flwr.proto.control_pb2 import ListRunsRequest

        response = self._call(lambda stub: stub.ListRuns(ListRunsRequest(run_id=run_id)))
        for proto in response.run_dict.values():
            run = run_from_proto(proto)
            return RunStatus(run.run_id, run.status.status, run.status.sub_status, run.status.details)
        raise BadInputError("No such run", [Problem("run", "", str(run_id), "a run of this SuperLink")])


def _is_transport_error(err: Exception) -> bool:
    """True for a connection-level failure of the HTTP client (refused, reset, timed out, TLS)."""
    names = {cls.__name__ for cls in type(err).__mro__}
    return bool(
        names & {"TransportError", "ConnectError", "ReadError", "WriteError", "TimeoutException", "RemoteProtocolError"}
    )
