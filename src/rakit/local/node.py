"""One local rakit node process (``rakit node``): start, stop, kill, pause, health and status."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rakit.local.procs import (
    STOP_TIMEOUT,
    LaunchError,
    file_tail,
    http_get_json,
    port_is_free,
    signal_process,
    terminate,
    wait_until,
)


def peers_string(peers: Mapping[str, str] | str) -> str:
    if isinstance(peers, str):
        return peers
    return ",".join(f"{i}={u}" for i, u in peers.items())


def _client_host(host: str) -> str:
    """The address a client on this machine uses to reach a server bound to ``host``."""
    return "127.0.0.1" if host in ("", "0.0.0.0") else ("::1" if host == "::" else host)


def node_url(host: str, port: int, scheme: str = "http") -> str:
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
        self.peers = peers_string(peers)
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
        return node_url(self.host, self.port, "https" if self.tls is not None else "http")

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
        code = terminate(self.proc, timeout)
        self.paused = False
        return code

    def kill(self) -> None:
        """SIGKILL (a crash: nothing is flushed beyond what was fsynced)."""
        if self.proc is not None and self.proc.poll() is None:
            signal_process(self.proc, signal.SIGKILL)
            self.proc.wait(5)
        self.paused = False

    def pause(self) -> None:
        """SIGSTOP: the process freezes; its sockets stay open but nothing answers."""
        signal_process(self.proc, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT after ``pause``."""
        signal_process(self.proc, signal.SIGCONT)
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
        return file_tail(self.log_path, lines)

    def last_log_line(self) -> str:
        lines = [ln for ln in self.log_tail(10).splitlines() if ln.strip()]
        return lines[-1].strip() if lines else "(empty)"
