"""Expose a metrics registry to Prometheus: over HTTP while a trial runs, as a textfile after.

:func:`serve` starts prometheus-client's HTTP server in a daemon thread on loopback
by default (a regulator's Prometheus scrapes it, see ``monitoring/prometheus``).
:func:`write_textfile` writes the final state in the Prometheus text exposition
format for node-exporter's textfile collector (name the file ``*.prom``), atomically:
temp file in the same directory, fsync, ``os.replace``, fsync of the directory.

Neither changes trial state.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
from pathlib import Path
from types import TracebackType
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, generate_latest, start_http_server

from trialcore.atomic_file import write_bytes_atomic
from trialcore.errors import BadInputError, Problem, show_value

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9464
DEFAULT_LINGER_SECONDS = 15.0
"""How long ``sandbox run`` keeps serving the final values after a trial ends (seconds): three
scrape intervals of the shipped ``prometheus/prometheus.yml`` (5 s), so its Prometheus records the
final state (and the alerts on it) before the endpoint goes away; a test pins the relation."""
_PORT_ALLOWED = "a free TCP port, or 0 for any free port"


class MetricsServer:
    """A running metrics HTTP endpoint; close it, or use it as a context manager.

    Attributes
    ----------
    host:
        Address it listens on.
    port:
        TCP port actually bound (the free port chosen when 0 was asked for).
    """

    def __init__(self, server: WSGIServer, thread: threading.Thread, host: str) -> None:
        self._server = server
        self._thread = thread
        self.host = host
        self.port: int = server.server_port
        self._closed = False

    @property
    def url(self) -> str:
        """``http://host:port/metrics`` (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port; calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)
        logger.info("Stopped serving metrics on %s", self.url)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def serve(registry: CollectorRegistry, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> MetricsServer:
    """Serve ``registry`` at ``http://host:port/metrics`` from a daemon thread.

    Parameters
    ----------
    registry:
        The registry holding the trial's :class:`~monitoring.metrics.SandboxMetrics`.
    host:
        Address to listen on; loopback by default, so only local scrapers see it.
    port:
        TCP port (0-65535); 0 picks any free port, read it back from ``.port``.

    Raises
    ------
    BadInputError
        The port is out of range, in use or not permitted (names ``--metrics-port``),
        or the host cannot be bound (names ``--metrics-host``).
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise BadInputError(
            f"Cannot serve metrics on port {port!r}",
            [Problem("--metrics-port", "", show_value(port), f"{_PORT_ALLOWED} (0-65535)")],
        )
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as err:
        if isinstance(err, socket.gaierror) or err.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            problem = Problem("--metrics-host", "", show_value(host), "an address of this machine, e.g. 127.0.0.1")
        else:
            reason = "in use" if err.errno == errno.EADDRINUSE else (err.strerror or str(err))
            problem = Problem("--metrics-port", "", show_value(port), f"{_PORT_ALLOWED} (port {port}: {reason})")
        raise BadInputError(f"Cannot serve metrics on {host}:{port}: {err.strerror or err}", [problem]) from err
    metrics_server = MetricsServer(server, thread, host)
    logger.info("Serving metrics on %s", metrics_server.url)
    return metrics_server


def write_textfile(registry: CollectorRegistry, path: str | os.PathLike[str]) -> Path:
    """Write ``registry`` in Prometheus text format to ``path``, atomically.

    Readers see either the previous file or the complete new one, also after a
    crash: the text goes to a temp file in the same directory, is fsynced, then
    replaces ``path``; the directory is fsynced so the rename is durable.

    Parameters
    ----------
    registry:
        The registry to export.
    path:
        Target file; node-exporter's textfile collector reads only ``*.prom``.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    BadInputError
        The directory does not exist or cannot be written, or ``path`` is a directory.
    """
    target = Path(path)
    payload = generate_latest(registry)
    try:
        write_bytes_atomic(target, payload, create_parents=False)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as err:
        raise BadInputError(
            f"Cannot write metrics to {str(path)!r}",
            [Problem(str(path), "", "", f"a writable file path in an existing directory ({err.strerror or err})")],
        ) from err
    logger.info("Wrote final metrics to %s", target)
    return target
