"""Raw HTTP/1.1 over sockets, as a hostile client speaks it, and a uvicorn in a thread to speak it to.

``ServerThread(app, protocol, **uvicorn config)`` serves ``app`` with the
protocol class given (the node's ``BoundedHttpToolsProtocol``, a governed
or TLS-gated one) on a free loopback port; ``connect(host, port, source)``
opens a socket (from another loopback address with ``source``: Linux
routes 127.0.0.0/8 to ``lo``).  ``read_answer`` reads one answer and
whether the server then closed the connection, ``read_answer_open`` the
next answer on a connection that stays open, ``closed`` waits (bounded)
for the server to close.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import weakref
from typing import Any

import uvicorn

from rakit.launcher import free_port


class ServerThread:
    def __init__(self, app: Any, protocol: Any, host: str = "127.0.0.1", **config: Any) -> None:
        self.host = host
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host=host, port=self.port, http=protocol, lifespan="off", log_level="critical", **config
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def connect(self, source: str | None = None) -> socket.socket:
        return connect(self.host, self.port, source)


def connect(host: str, port: int, source: str | None = None) -> socket.socket:
    """A socket connected to ``host:port`` (from the local address ``source``, if given: e.g. 127.0.0.2)."""
    sock = socket.create_connection((host, port), timeout=5, source_address=(source, 0) if source else None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


# What was read past an answer on a connection that stays open (answers may arrive together).
_PENDING: weakref.WeakKeyDictionary[socket.socket, bytearray] = weakref.WeakKeyDictionary()


def _next_answer(sock: socket.socket, buffer: bytearray) -> tuple[int, dict[str, str], bytes]:
    """Read one answer from ``sock`` into ``buffer`` and take it out: (status, headers, body)."""

    def more() -> bool:
        chunk = sock.recv(65536)
        buffer.extend(chunk)
        return bool(chunk)

    while b"\r\n\r\n" not in buffer:
        if not more():
            raise ConnectionError(f"closed without an answer; got {bytes(buffer)!r}")
    head, _, _ = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    end = len(head) + 4 + int(headers.get("content-length", "0"))
    while len(buffer) < end and more():
        pass
    body = bytes(buffer[len(head) + 4 : end])
    del buffer[:end]
    return status, headers, body


def read_answer(sock: socket.socket, timeout: float = 5.0) -> tuple[int, dict[str, str], Any, bool]:
    """(status, headers, JSON body, whether the server closed the connection after it)."""
    sock.settimeout(timeout)
    status, headers, body = _next_answer(sock, _PENDING.pop(sock, bytearray()))
    return status, headers, json.loads(body) if body else None, closed(sock, 2.0)


def closed(sock: socket.socket, within: float) -> bool:
    """True if the server closes the connection within ``within`` seconds."""
    sock.settimeout(within)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def read_answer_open(sock: socket.socket) -> tuple[int, dict[str, str], Any]:
    """The next answer on a connection that stays open."""
    sock.settimeout(5)
    buffer = _PENDING.get(sock)
    if buffer is None:
        buffer = _PENDING[sock] = bytearray()
    status, headers, body = _next_answer(sock, buffer)
    return status, headers, json.loads(body)
