"""The connection budget in the node's HTTP protocol (rule 6 of rakit.server.http_protocol).

A real uvicorn with ``BoundedHttpToolsProtocol.governed(budget)`` serves a
tiny app in a thread with small caps (20 connections, 5 per client: a
reserve of 2, one per client; 2 shed connections closing at most; pressure
over 15) and shorter pressure timeouts; the tests talk raw HTTP/1.1 from
several loopback addresses (Linux routes 127.0.0.0/8 to ``lo``), and read
the budget's counts directly: every way a connection ends must give its
ticket back.
"""

from __future__ import annotations

import dataclasses
import socket
import ssl
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from test_http_limits import echo, request, slow, ws_echo

import rakit.http.json as rjson
import rawsock
from rakit.http.errors import HANDLERS
from rakit.launcher import wait_until
from rakit.node.connection_budget import ConnectionBudget, Limits
from rakit.server import tls_gate
from rakit.server.http_protocol import BoundedHttpToolsProtocol
from rawsock import closed, read_answer, read_answer_open

LIMITS = dataclasses.replace(Limits.of(20, 5), pressure_head_timeout=0.5, pressure_idle_timeout=1.0)
ROOMY = dataclasses.replace(LIMITS, pressure_head_timeout=5.0, pressure_idle_timeout=10.0)  # no race with a test
KEEP_ALIVE = 5
HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
SLOW0 = b"GET /slow?s=0 HTTP/1.1\r\nHost: x\r\n\r\n"
SIGNED = (
    b"GET /whoami HTTP/1.1\r\nHost: x\r\nX-Rakit-Node: node2\r\nX-Rakit-Ts: 1718000000.123\r\n"
    b"X-Rakit-Nonce: " + b"n" * 22 + b"\r\nX-Rakit-Sig: " + b"0" * 64 + b"\r\n\r\n"
)


class Protocol(BoundedHttpToolsProtocol):
    head_timeout = 5.0
    body_timeout = 5.0


class Quick(BoundedHttpToolsProtocol):
    head_timeout = 0.5
    body_timeout = 0.5
    min_body_rate = 1000


async def health(request: Request) -> Response:
    return rjson.json_response({"status": "ok"})


async def whoami(request: Request) -> Response:
    assert request.client is not None
    return rjson.json_response({"scheme": request.url.scheme, "client": request.client.host})


async def ws_close(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.close()


APP = Starlette(
    routes=[
        Route("/health", health, methods=["GET"]),
        Route("/whoami", whoami, methods=["GET"]),
        Route("/echo", echo, methods=["POST"]),
        Route("/slow", slow, methods=["GET"]),
        WebSocketRoute("/ws", ws_echo),
        WebSocketRoute("/ws-close", ws_close),
    ],
    exception_handlers=HANDLERS,
)  # type: ignore[arg-type]


class Node(rawsock.ServerThread):
    """APP served with ``protocol`` under a budget of ``limits`` (over TLS with ``context``: the TLS gate)."""

    def __init__(
        self,
        protocol: type[BoundedHttpToolsProtocol] = Protocol,
        keep_alive: float = KEEP_ALIVE,
        limits: Limits = ROOMY,
        context: ssl.SSLContext | None = None,
        loop: str = "auto",
    ) -> None:
        self.budget = ConnectionBudget(limits)
        self.keep_alive = keep_alive
        governed = protocol.governed(self.budget)
        served = governed if context is None else tls_gate.gated(governed, context)
        super().__init__(APP, served, timeout_keep_alive=keep_alive, loop=loop)

    def settled(self, timeout: float = 5.0) -> None:
        """Every connection is gone: no ticket held, none shedding, uvicorn tracks none."""
        wait_until(
            lambda: (self.budget.in_use, self.budget.shedding, len(self.server.server_state.connections)) == (0, 0, 0),
            timeout,
            f"every ticket back (in use {self.budget.in_use}, shedding {self.budget.shedding})",
        )
        assert self.budget.clients() == 0


@pytest.fixture
def node() -> Iterator[Node]:
    with Node() as n:
        yield n
        n.settled()


def served(sock: socket.socket, raw: bytes = SLOW0) -> int:
    sock.sendall(raw)
    return read_answer_open(sock)[0]


def open_idle(node: Node, source: str, n: int) -> list[socket.socket]:
    """``n`` keep-alive connections from ``source``, each after one served request."""
    socks = [node.connect(source) for _ in range(n)]
    assert [served(s) for s in socks] == [200] * n
    return socks


def close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        s.close()


def test_admitted_connections_are_served_and_counted(node: Node) -> None:
    socks = open_idle(node, "127.0.0.1", 5)
    assert (node.budget.open, node.budget.held("127.0.0.1")) == (5, (5, 0))
    assert [served(s) for s in socks] == [200] * 5  # again, on the same connections
    close_all(socks)


def test_a_client_over_its_cap_gets_the_reserve_only_for_health_and_peers(node: Node) -> None:
    mine = open_idle(node, "127.0.0.1", 5)
    with node.connect("127.0.0.1") as trial:  # the sixth from this address: on trial
        assert served(trial, HEALTH) == 200
        assert served(trial, SIGNED) == 200  # a peer's call (its signature headers)
        assert node.budget.held("127.0.0.1") == (5, 1)
        with node.connect("127.0.0.1") as shed:  # one trial connection per client: shed
            status, headers, body, was_closed = read_answer(shed)
            assert (status, headers["retry-after"], body["error"], was_closed) == (503, "1", "unavailable", True)
        trial.sendall(SLOW0)  # not a reserved request
        status, headers, body, was_closed = read_answer(trial)
        assert (status, headers["retry-after"], body["error"], was_closed) == (503, "1", "unavailable", True)
    with node.connect("127.0.0.2") as other:  # another client is served as ever
        assert served(other) == 200
    assert [served(s) for s in mine] == [200] * 5
    close_all(mine)


def test_over_every_cap_new_connections_are_shed_and_admitted_ones_still_served(node: Node) -> None:
    admitted = [*open_idle(node, "127.0.0.1", 5), *open_idle(node, "127.0.0.2", 5)]
    admitted += [*open_idle(node, "127.0.0.3", 5), *open_idle(node, "127.0.0.4", 3)]
    health_checks = [node.connect(f"127.0.0.{k}") for k in (5, 6)]  # the reserve, one each
    assert [served(s, HEALTH) for s in health_checks] == [200, 200]
    assert (node.budget.open, node.budget.trial) == (18, 2)
    shed = [node.connect("127.0.0.7"), node.connect("127.0.0.8")]
    for s in shed:  # answered, and held open by the client: both still closing
        status, headers, body = read_answer_open(s)
        assert (status, headers["retry-after"], body["error"]) == (503, "1", "unavailable")
    assert node.budget.shedding == 2
    with node.connect("127.0.0.9") as late:  # beyond: closed without an answer
        late.settimeout(5)
        try:
            assert late.recv(100) == b""
        except ConnectionResetError:
            pass
    assert [served(s) for s in admitted] == [200] * 18  # the admitted are served as ever
    assert [served(s, HEALTH) for s in health_checks] == [200, 200]
    close_all(admitted + health_checks + shed)


def test_silent_connections_cannot_hold_the_reserve_against_health_checks(node: Node) -> None:
    admitted = [*open_idle(node, "127.0.0.1", 5), *open_idle(node, "127.0.0.2", 5)]
    admitted += [*open_idle(node, "127.0.0.3", 5), *open_idle(node, "127.0.0.4", 3)]
    squatters = [node.connect("127.0.0.5"), node.connect("127.0.0.6")]  # the whole reserve, silent
    wait_until(lambda: node.budget.trial == 2, 5, "the reserve taken")

    def health() -> bool:  # shed while the squatters are within their grace, then one of them is evicted
        with node.connect("127.0.0.7") as sock:
            sock.sendall(HEALTH)
            try:
                return read_answer_open(sock)[0] == 200
            except (ConnectionError, OSError):
                return False

    wait_until(health, 5, "a /health in the reserve")
    assert sum(closed(sock, 2.0) for sock in squatters) >= 1  # evicted: the oldest first
    close_all(admitted + squatters)


def test_under_pressure_idle_and_silent_connections_are_reclaimed_quickly() -> None:
    with Node(limits=LIMITS) as node:
        under_pressure(node)
        node.settled()


def under_pressure(node: Node) -> None:
    idle = [*open_idle(node, "127.0.0.1", 5), *open_idle(node, "127.0.0.2", 5)]  # keep-alive: 5 s
    silent = [node.connect("127.0.0.3") for _ in range(5)]  # first byte: 5 s
    wait_until(lambda: node.budget.in_use == 15, 5, "15 connections in use")
    assert not node.budget.pressed
    started = time.monotonic()
    with node.connect("127.0.0.4") as sixteenth:  # over 15: pressure begins
        sixteenth.sendall(SLOW0)
        for s in silent:
            status, _, body, was_closed = read_answer(s)  # a silent one: 408 within 0.5 s
            assert (status, body["error"], was_closed) == (408, "request_timeout", True)
        assert all(closed(s, 3.0) for s in idle)  # an idle one: within 1 s, not 5
        assert time.monotonic() - started < 3.0
        assert read_answer_open(sixteenth)[0] == 200
    close_all(idle + silent)


# -- every way a connection ends ------------------------------------------------------------------
# Each ending runs on a fresh node with short timeouts (Quick); 127.0.0.1 already holds its 5 open
# connections, so a new one from it is on trial (or shed once the one trial slot is taken).


def raw_exchange(node: Node, sent: bytes) -> bytes:
    """Send ``sent`` on a new connection; all the node answers until it closes."""
    with node.connect("127.0.0.2") as sock:
        sock.sendall(sent)
        sock.settimeout(5)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def ends_by_client_close(node: Node) -> None:
    with node.connect("127.0.0.2") as sock:
        assert served(sock) == 200


def ends_by_client_reset(node: Node) -> None:
    sock = node.connect("127.0.0.2")
    sock.sendall(b"GET /slow?s=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_until(lambda: len(node.server.server_state.tasks) == 1, 5, "the request to start")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # an RST while the handler runs


def ends_by_keep_alive_timeout(node: Node) -> None:
    with node.connect("127.0.0.2") as sock:
        assert served(sock) == 200
        assert closed(sock, node.keep_alive + 2)


def ends_by_refusal(sent: bytes, status: bytes) -> Any:
    def end(node: Node) -> None:
        assert raw_exchange(node, sent).startswith(b"HTTP/1.1 " + status)

    return end


def ends_by_websocket(path: str) -> Any:
    def end(node: Node) -> None:
        from websockets.sync.client import connect

        with connect(f"ws://127.0.0.1:{node.port}{path}", sock=node.connect("127.0.0.2"), open_timeout=5) as ws:
            if path == "/ws":
                ws.send("hi")
                assert ws.recv(timeout=5) == "hi"  # then the client closes
            else:
                wait_until(lambda: ws.state.name == "CLOSED", 5, "the server to close the WebSocket")

    return end


def ends_as_a_signed_websocket_on_trial(node: Node) -> None:
    from websockets.sync.client import connect

    lines = SIGNED.decode().split("\r\n")[2:6]
    headers = dict(line.split(": ", 1) for line in lines)
    with connect(f"ws://127.0.0.1:{node.port}/ws", additional_headers=headers, open_timeout=5) as ws:
        assert node.budget.trial == 1
        ws.send("hi")
        assert ws.recv(timeout=5) == "hi"


def ends_refused_on_trial(node: Node) -> None:
    with node.connect("127.0.0.1") as sock:
        sock.sendall(SLOW0)
        assert read_answer(sock)[0] == 503


def ends_shed(node: Node) -> None:
    with node.connect("127.0.0.1"):  # the one trial slot
        wait_until(lambda: node.budget.trial == 1, 5, "the trial slot taken")
        with node.connect("127.0.0.1") as sock:
            assert read_answer(sock)[0] == 503


ENDINGS = {
    "client_closes": ends_by_client_close,
    "client_resets": ends_by_client_reset,
    "keep_alive_timeout": ends_by_keep_alive_timeout,
    "head_timeout": ends_by_refusal(b"GET /slow HTTP/1.1\r\n", b"408"),
    "head_too_large": ends_by_refusal(b"GET /slow HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", b"431"),
    "not_http": ends_by_refusal(b"\x00\x01 nothing like HTTP\r\n\r\n", b"400"),
    "body_timeout": ends_by_refusal(
        request(body=b"").replace(b"Content-Length: 0", b"Content-Length: 9") + b"{", b"408"
    ),
    "websocket_client_closes": ends_by_websocket("/ws"),
    "websocket_server_closes": ends_by_websocket("/ws-close"),
    "signed_websocket_on_trial": ends_as_a_signed_websocket_on_trial,
    "refused_on_trial": ends_refused_on_trial,
    "shed": ends_shed,
}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_every_way_a_connection_ends_gives_its_ticket_back(ending: str) -> None:
    with Node(Quick, keep_alive=0.5, limits=LIMITS) as node:
        full = open_idle(node, "127.0.0.1", 5)
        ENDINGS[ending](node)
        close_all(full)
        node.settled()


def test_the_environment_sizes_the_nodes_budget() -> None:
    from rakit.server.serve import ServeError, connection_limits

    assert connection_limits({}) == Limits.of(2048, 256)
    assert connection_limits({"RAKIT_MAX_CONNECTIONS": "200", "RAKIT_MAX_CONNECTIONS_PER_CLIENT": " 50 "}) == Limits.of(
        200, 50
    )
    for bad in ("0", "-5", "lots", "1e3"):
        with pytest.raises(ServeError, match="RAKIT_MAX_CONNECTIONS="):
            connection_limits({"RAKIT_MAX_CONNECTIONS": bad})
