"""Run one node: open its data dir, bind its port, serve until SIGTERM/SIGINT."""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import socket
import sys
from collections.abc import Mapping
from types import FrameType

import uvicorn

from rakit.config import ConfigError, NodeConfig, is_loopback
from rakit.node.connection_budget import ConnectionBudget, Limits
from rakit.security import tls
from rakit.server import tls_gate
from rakit.server.http_protocol import BoundedHttpToolsProtocol
from rakit.storage.datadir import DataDirError, open_data_dir

log = logging.getLogger(__name__)


class ServeError(Exception):
    """The node could not start; the message is one line for the operator."""


# Client limits.  Request heads: rakit.server.http_protocol (size, header count,
# time); bodies: rakit.http.json.read_body (size, time).  Idle keep-alive
# connections close after KEEP_ALIVE_SECONDS (1 s under pressure).  Connections:
# rakit.node.connection_budget (at most MAX_CONNECTIONS, MAX_CONNECTIONS_PER_CLIENT
# of them per client address, a tenth kept for peers and /health; a new connection
# over the caps is shed, the admitted ones keep being served), sized by the
# environment variables below (the benchmarks run at most 64 clients; peers hold
# a few hundred connections at most; tests on loopback, one address, lower them).
KEEP_ALIVE_SECONDS = 30
MAX_CONNECTIONS = 2048
MAX_CONNECTIONS_PER_CLIENT = 256
MAX_CONNECTIONS_ENV = "RAKIT_MAX_CONNECTIONS"
MAX_CONNECTIONS_PER_CLIENT_ENV = "RAKIT_MAX_CONNECTIONS_PER_CLIENT"
FD_MARGIN = 256  # descriptors beyond the connection cap: the data dir, Redis, peers' clients

# The disk thread (fsync) needs the GIL back the moment its write returns;
# Python's default 5 ms switch interval would hold it up behind the event loop.
SWITCH_INTERVAL = 0.0005


class NodeServer(uvicorn.Server):
    """Uvicorn, except that SIGTERM/SIGINT end the process with exit 0 (docs/api.md, "Starting a node").

    Uvicorn re-raises a caught signal after its graceful shutdown, so the
    process would die *by* the signal (exit 143); forgetting it avoids that.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def connection_limits(env: Mapping[str, str] = os.environ) -> Limits:
    """The connection budget's limits from ``RAKIT_MAX_CONNECTIONS`` and ``RAKIT_MAX_CONNECTIONS_PER_CLIENT``."""
    caps = []
    for name, default in (
        (MAX_CONNECTIONS_ENV, MAX_CONNECTIONS),
        (MAX_CONNECTIONS_PER_CLIENT_ENV, MAX_CONNECTIONS_PER_CLIENT),
    ):
        text = env.get(name, "").strip()
        if not text:
            caps.append(default)
        elif text.isdigit() and int(text) > 0:
            caps.append(int(text))
        else:
            raise ServeError(f"{name}={text!r}: expected a positive whole number of connections")
    return Limits.of(*caps)


def check_descriptors(limits: Limits) -> None:
    """Warn when the process may open fewer files than the connection cap needs."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < limits.total + FD_MARGIN:
        log.warning(
            "the open-file limit (%d, ulimit -n) is below %s=%d plus %d: new connections may fail before "
            "the caps shed them",
            soft,
            MAX_CONNECTIONS_ENV,
            limits.total,
            FD_MARGIN,
        )


def check_tls(config: NodeConfig) -> None:
    """Refuse a TLS setup that cannot work as a configuration error: one line, exit 2."""
    try:
        tls.check(config)
    except ConfigError as exc:
        print(f"rakit: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def serve(config: NodeConfig) -> None:
    check_tls(config)  # before anything is opened or bound
    limits = connection_limits()
    if config.join is not None:
        from rakit.server.join import JoinError, join_cluster

        try:
            config = join_cluster(config)
        except JoinError as exc:
            raise ServeError(str(exc)) from None

    from rakit.http.app import create_app

    logging.basicConfig(
        level=config.log_level.upper(), format=f"%(asctime)s {config.node_id} %(levelname)s %(name)s: %(message)s"
    )
    if not is_loopback(config.host):
        if config.cluster_secret is None:
            log.warning(
                "SECURITY: %s serves %s with no cluster secret (--insecure): anyone who reaches it can "
                "speak Raft, read the log and change the membership",
                config.node_id,
                config.host,
            )
        if config.auth_tokens is None:
            log.warning(
                "SECURITY: %s serves %s with no client tokens (--auth-tokens): anyone who reaches it "
                "can take and release locks, read and write the queue, the cache and the kv",
                config.node_id,
                config.host,
            )
    os.umask(0o077)  # the data dir (0700) and every file in it (0600) are the node's alone
    try:
        data_dir = open_data_dir(config.data_dir, repair_log=config.repair_log)
        with contextlib.suppress(OSError):
            os.chmod(config.data_dir, 0o700)  # also one made before this version
        data_dir.log_store()  # an unreadable log is a one-line error here, not a crash in the lifespan
    except DataDirError as exc:
        raise ServeError(str(exc)) from None
    check_descriptors(limits)
    http = BoundedHttpToolsProtocol.governed(ConnectionBudget(limits))
    if tls.enabled(config):  # HTTPS; plain HTTP is answered 400 "use https"
        protocol: type = tls_gate.gated(http, tls.server_context(config))
    else:
        protocol = http
    sock = bind(config.host, config.port)
    sys.setswitchinterval(SWITCH_INTERVAL)
    app = create_app(config, data_dir)
    server = NodeServer(
        uvicorn.Config(
            app,
            loop="uvloop",
            http=protocol,
            lifespan="on",
            access_log=False,
            log_level=config.log_level,
            timeout_graceful_shutdown=2,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            limit_concurrency=None,  # the connection budget decides (uvicorn's would refuse every request)
            proxy_headers=False,
            server_header=False,
            date_header=False,
            ws="websockets-sansio",
            ws_max_size=256 * 1024 * 1024,
            ws_ping_interval=None,
        )
    )
    server.run(sockets=[sock])
