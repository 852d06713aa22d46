"""Small helpers for local processes: ports, polling with a deadline, JSON over HTTP, signals."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: How long ``stop()`` waits after SIGTERM before it sends SIGKILL.
STOP_TIMEOUT = 5.0


class LaunchError(Exception):
    """A process could not be started (port taken, binary missing, Redis down...).

    The message is one line meant for the operator.
    """


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


def file_tail(path: Path, lines: int = 40) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def signal_process(proc: subprocess.Popen[bytes] | None, sig: int) -> None:
    if proc is not None and proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)


def terminate(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """SIGTERM (and SIGCONT, in case it is paused), wait ≤ timeout, then SIGKILL."""
    if proc.poll() is None:
        signal_process(proc, signal.SIGTERM)
        signal_process(proc, signal.SIGCONT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            signal_process(proc, signal.SIGKILL)
            proc.wait(5)
    return proc.returncode
