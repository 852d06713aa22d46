"""A local cluster: its own Redis (or a given one) and N node processes on loopback, with a cluster secret."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rakit.local.node import NodeProcess, TlsFiles, node_url, peers_string
from rakit.local.procs import STOP_TIMEOUT, T, file_tail, free_ports, signal_process, wait_until
from rakit.local.redis import RedisProcess


def pick_leader(statuses: Mapping[str, Mapping[str, Any] | None]) -> str | None:
    """The leader a majority of the answering nodes agree on, or None.

    The leader must itself answer ``role == "leader"`` with the highest term
    seen, and more than half of the nodes that answered must name it.
    """
    answered = {i: s for i, s in statuses.items() if s}
    if not answered:
        return None
    top_term = max(int(s.get("term") or 0) for s in answered.values())
    for node_id, s in answered.items():
        if s.get("role") != "leader" or int(s.get("term") or 0) != top_term:
            continue
        agree = sum(1 for other_id, o in answered.items() if (o.get("leader_id") == node_id) or (other_id == node_id))
        if agree * 2 > len(answered):
            return node_id
    return None


SECRET_FLAGS = ("--cluster-secret", "--cluster-secret-file")


def _given_secret(extra_args: Sequence[str], env: Mapping[str, str]) -> tuple[bool, str | None]:
    """(whether a cluster secret is given already, the secret when it can be read).

    Looked for in the nodes' flags, then their ``env``, then this process's
    environment (which the nodes inherit).
    """
    args = list(extra_args)
    for k, arg in enumerate(args):
        name, eq, inline = arg.partition("=")
        if name not in SECRET_FLAGS:
            continue
        value = inline if eq else (args[k + 1] if k + 1 < len(args) else None)
        if value is not None and name == "--cluster-secret-file":
            with contextlib.suppress(OSError):
                return True, Path(value).read_text().strip()
            return True, None
        return True, value
    for source in (env, os.environ):
        if source.get("CLUSTER_SECRET"):
            return True, source["CLUSTER_SECRET"]
        if source.get("CLUSTER_SECRET_FILE"):
            with contextlib.suppress(OSError):
                return True, Path(source["CLUSTER_SECRET_FILE"]).read_text().strip()
            return True, None
    return False, None


def _cluster_secret(
    choice: str | bool | None, extra_args: Sequence[str], env: Mapping[str, str] | None
) -> tuple[dict[str, str], str | None, bool]:
    """The nodes' ``env`` with the cluster secret in it, that secret (None: unknown or none), and
    whether it was generated here.

    ``choice``: a secret to use; None or True: the one given in the flags or
    environment, else a fresh random one (``secrets.token_urlsafe(32)``);
    False: none generated (only what the flags or environment give).
    """
    node_env = dict(env or {})
    given, known = _given_secret(extra_args, node_env)
    if isinstance(choice, str):
        # Overrides a CLUSTER_SECRET in the environment; a flag or a secret file would clash.
        if any(a.partition("=")[0] in SECRET_FLAGS for a in extra_args) or any(
            source.get("CLUSTER_SECRET_FILE") for source in (node_env, os.environ)
        ):
            raise ValueError("cluster_secret is given twice: as an argument and in the flags or a secret file")
        node_env["CLUSTER_SECRET"] = choice
        return node_env, choice, False
    if given or choice is False:
        return node_env, known, False
    secret = secrets.token_urlsafe(32)
    node_env["CLUSTER_SECRET"] = secret  # in the environment, not the flags: ps does not show it
    return node_env, secret, True


class LocalCluster:
    """``size`` nodes (``node1``..``nodeN``) on this machine, plus a Redis if none is given.

    Layout under ``data_root``: ``nodeK/`` (each node's data dir), ``logs/``
    (``nodeK.log``, ``redis.log``), ``redis/`` (the Redis files, when this
    cluster starts its own).  Ports: ``base_port``, ``base_port+1``, ...; or
    free ports picked at construction when ``base_port`` is None.
    """

    def __init__(
        self,
        size: int,
        data_root: str | os.PathLike[str],
        host: str = "127.0.0.1",
        base_port: int | None = None,
        redis_url: str | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        *,
        redis_port: int | None = None,
        node_command: Sequence[str] | None = None,
        tls: TlsFiles | Mapping[str, TlsFiles] | None = None,
        cluster_secret: str | bool | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one node")
        env, self.cluster_secret, self.secret_generated = _cluster_secret(cluster_secret, extra_args, env)
        self.size = size
        self.host = host
        self.data_root = Path(data_root).absolute()
        self.log_dir = self.data_root / "logs"
        # Pick every free port in one go so none of them repeats.
        picked = free_ports(size + 1)
        ports = [base_port + i for i in range(size)] if base_port else picked[:size]
        ids = [f"node{k}" for k in range(1, size + 1)]
        if tls is None or isinstance(tls, TlsFiles):
            node_tls: dict[str, TlsFiles | None] = dict.fromkeys(ids, tls)
        else:
            missing = [i for i in ids if i not in tls]
            if missing:
                raise ValueError(f"tls gives no TlsFiles for {', '.join(missing)}")
            node_tls = {i: tls[i] for i in ids}
        self.tls = tls
        scheme = "http" if tls is None else "https"
        self.peers: dict[str, str] = {i: node_url(host, p, scheme) for i, p in zip(ids, ports, strict=True)}
        self.redis: RedisProcess | None = None
        if redis_url is None:
            self.redis = RedisProcess(
                redis_port or picked[size],
                self.data_root / "redis",
                appendonly=True,
                log_path=self.log_dir / "redis.log",
            )
            redis_url = self.redis.url
        self.redis_url = redis_url
        self.nodes: dict[str, NodeProcess] = {
            i: NodeProcess(
                i,
                p,
                self.peers,
                redis_url,
                self.data_root / i,
                host=host,
                log_path=self.log_dir / f"{i}.log",
                extra_args=extra_args,
                env=env,
                command=node_command,
                tls=node_tls[i],
            )
            for i, p in zip(ids, ports, strict=True)
        }
        self._pool = ThreadPoolExecutor(max_workers=max(2, size), thread_name_prefix="rakit-status")

    def __repr__(self) -> str:
        return f"LocalCluster(size={self.size}, ports={[n.port for n in self.nodes.values()]})"

    # -- lifecycle ---------------------------------------------------------

    @property
    def peers_string(self) -> str:
        return peers_string(self.peers)

    @property
    def urls(self) -> dict[str, str]:
        return {i: n.url for i, n in self.nodes.items()}

    def ports(self) -> list[int]:
        """Every port this cluster listens on (nodes, then its own Redis if any)."""
        ports = [n.port for n in self.nodes.values()]
        if self.redis is not None:
            ports.append(self.redis.port)
        return ports

    def start(self, wait: bool = True, timeout: float = 30.0) -> LocalCluster:
        """Start Redis (if owned) and every node; with ``wait``, until all answer /health.

        On failure everything started so far is stopped again.
        """
        try:
            if self.redis is not None and not self.redis.alive:
                self.redis.start(wait=True, timeout=min(timeout, 10.0))
            for node in self.nodes.values():
                if not node.alive:
                    node.start()
            if wait:
                self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_healthy(self, timeout: float = 30.0, ids: Iterable[str] | None = None) -> None:
        deadline = time.monotonic() + timeout
        for node_id in ids if ids is not None else self.nodes:
            self.nodes[node_id].wait_healthy(max(0.1, deadline - time.monotonic()))

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM every node at once, SIGKILL stragglers after ``timeout`` s, then stop Redis."""
        procs = [n for n in self.nodes.values() if n.proc is not None and n.proc.poll() is None]
        for node in procs:
            signal_process(node.proc, signal.SIGTERM)
            signal_process(node.proc, signal.SIGCONT)
        deadline = time.monotonic() + timeout
        for node in procs:
            node.stop(max(0.0, deadline - time.monotonic()))
        if self.redis is not None:
            self.redis.stop()

    def close(self) -> None:
        self.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- observation -------------------------------------------------------

    def statuses(self, timeout: float = 1.0) -> dict[str, dict[str, Any] | None]:
        """``GET /status`` of every node, in parallel; None for a node that does not answer."""
        futures = {
            i: self._pool.submit(n.status, timeout) if n.alive and not n.paused else None for i, n in self.nodes.items()
        }
        return {i: (f.result() if f is not None else None) for i, f in futures.items()}

    def leader(self, timeout: float = 1.0) -> str | None:
        """The id of the leader a majority of the answering nodes agree on now, else None."""
        return pick_leader(self.statuses(timeout))

    def followers(self, timeout: float = 1.0) -> list[str]:
        """Ids of the running nodes other than the current leader (all of them if none)."""
        leader = self.leader(timeout)
        return [i for i, n in self.nodes.items() if i != leader and n.alive and not n.paused]

    def wait_for_leader(self, timeout: float = 15.0, exclude: Iterable[str] = ()) -> str:
        """Poll until a leader is agreed on (and is not in ``exclude``); return its id."""
        excluded = set(exclude)

        def agreed() -> str | None:
            leader = self.leader(timeout=0.5)
            return leader if leader is not None and leader not in excluded else None

        what = "a leader" + (f" other than {', '.join(sorted(excluded))}" if excluded else "")
        leader = wait_until(agreed, timeout, what, interval=0.1)
        assert leader is not None  # wait_until returns only a truthy value
        return leader

    @staticmethod
    def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
        return wait_until(predicate, timeout, what, interval)

    def node(self, node_id: str) -> NodeProcess:
        return self.nodes[node_id]

    def log_tails(self, lines: int = 40) -> dict[str, str]:
        tails = {i: n.log_tail(lines) for i, n in self.nodes.items()}
        if self.redis is not None:
            tails["redis"] = file_tail(self.redis.log_path, min(lines, 15))
        return tails
