"""Client limits of the HTTP stack: request heads, bodies, slow clients, concurrency.

Timers are armed only when a head or a body does not arrive whole: the tests
send them in pieces, byte by byte, or not at all.

A real uvicorn (the node's ``BoundedHttpToolsProtocol``) serves a tiny app in
a thread, with timeouts shrunk to fractions of a second; the tests talk raw
HTTP/1.1 over sockets, as a hostile client would.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

import rakit.http.json as rjson
import rawsock
from rakit.http.errors import HANDLERS
from rakit.server.http_protocol import MAX_HEAD_BYTES, MAX_HEADERS, BoundedHttpToolsProtocol
from rawsock import closed, read_answer, read_answer_open

HEAD_TIMEOUT = 0.5
BODY_TIMEOUT = 0.6
LIMIT = 1000  # read_body's size limit in this app


RATE = 1000  # bytes per second a body must keep up beyond BODY_TIMEOUT


class FastProtocol(BoundedHttpToolsProtocol):
    head_timeout = HEAD_TIMEOUT
    body_timeout = BODY_TIMEOUT
    min_body_rate = RATE


async def echo(request: Request) -> Response:
    body = await rjson.read_body(request, LIMIT)
    return rjson.json_response({"size": len(body)})


async def slow(request: Request) -> Response:
    await asyncio.sleep(float(request.query_params.get("s", "1")))
    return rjson.json_response({"slept": True})


async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        await websocket.send_text(await websocket.receive_text())


APP = Starlette(
    routes=[
        Route("/echo", echo, methods=["POST"]),
        Route("/slow", slow, methods=["GET"]),
        WebSocketRoute("/ws", ws_echo),
    ],
    exception_handlers=HANDLERS,
)  # type: ignore[arg-type]


class ServerThread(rawsock.ServerThread):
    def __init__(self, **config: Any) -> None:
        super().__init__(APP, FastProtocol, **config)


@pytest.fixture
def server() -> Iterator[ServerThread]:
    with ServerThread(limit_concurrency=3, timeout_keep_alive=5) as s:
        yield s


def request(path: str = "/echo", body: bytes = b"{}", extra: bytes = b"") -> bytes:
    return (
        (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        ).encode()
        + extra
        + b"\r\n"
        + body
    )


def assert_error_shape(body: Any, code: str) -> None:
    assert isinstance(body, dict) and body["error"] == code and isinstance(body["detail"], str), body


def trickle_until_cut(sock: socket.socket, chunk: bytes, limit: float = 5.0) -> float:
    """Send ``chunk`` every 50 ms until the server cuts the connection (or ``limit`` s); the seconds it took."""
    started = time.monotonic()
    try:
        while time.monotonic() - started < limit:
            sock.sendall(chunk)
            time.sleep(0.05)
    except (BrokenPipeError, ConnectionResetError):
        pass
    return time.monotonic() - started


def test_normal_requests_and_keep_alive_are_untouched(server: ServerThread) -> None:
    with server.connect() as sock:
        for n in range(3):  # several requests on one connection, a pause between them
            sock.sendall(request(body=b'{"n": %d}' % n))
            status, _, body = read_answer_open(sock)
            assert status == 200 and body == {"size": 8}
            time.sleep(HEAD_TIMEOUT * 1.5)  # idle between requests: keep-alive, not the head timeout
        # A handler slower than the head timeout is not cut off.
        sock.sendall(b"GET /slow?s=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = read_answer_open(sock)
        assert status == 200 and body == {"slept": True}
        assert not closed(sock, HEAD_TIMEOUT * 1.5)


def test_as_many_headers_as_allowed_are_served(server: ServerThread) -> None:
    extra = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(MAX_HEADERS - 3))
    with server.connect() as sock:
        sock.sendall(request(extra=extra))
        status, _, body = read_answer_open(sock)
        assert status == 200, body


def test_too_many_headers_is_431_and_closed(server: ServerThread) -> None:
    extra = b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADERS + 1))
    with server.connect() as sock:
        sock.sendall(request(extra=extra))
        status, headers, body, was_closed = read_answer(sock)
    assert status == 431 and headers["content-type"] == "application/json"
    assert_error_shape(body, "too_large")
    assert was_closed


@pytest.mark.parametrize("where", ["header", "url"])
def test_a_head_over_the_byte_limit_is_431_before_it_ends(server: ServerThread, where: str) -> None:
    with server.connect() as sock:
        if where == "header":
            sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Big: ")
        else:
            sock.sendall(b"GET /slow?q=")
        sent = 0
        try:
            while sent < 4 * MAX_HEAD_BYTES:
                sock.sendall(b"a" * 8192)
                sent += 8192
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, _, body, was_closed = read_answer(sock)  # the head never ended: refused on its own
    assert status == 431
    assert_error_shape(body, "too_large")
    assert was_closed


def test_an_idle_connection_is_closed_after_the_head_timeout(server: ServerThread) -> None:
    with server.connect() as sock:
        started = time.monotonic()
        status, headers, body, was_closed = read_answer(sock)
        elapsed = time.monotonic() - started
    assert status == 408 and headers["connection"] == "close"
    assert_error_shape(body, "request_timeout")
    assert was_closed
    assert HEAD_TIMEOUT * 0.9 <= elapsed < HEAD_TIMEOUT + 1.0


def test_a_head_trickled_byte_by_byte_is_cut_off(server: ServerThread) -> None:
    head = b"GET /slow?s=0 HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 1000
    with server.connect() as sock:
        started = time.monotonic()
        try:
            for byte in head:
                sock.sendall(bytes([byte]))
                time.sleep(0.02)
                if time.monotonic() - started > 5:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, _, body, was_closed = read_answer(sock)
        elapsed = time.monotonic() - started
    assert status == 408
    assert_error_shape(body, "request_timeout")
    assert was_closed and elapsed < HEAD_TIMEOUT + 1.0


def test_a_body_trickled_byte_by_byte_is_cut_off_with_408(server: ServerThread) -> None:
    body = b'{"x": "' + b"y" * 200 + b'"}'
    with server.connect() as sock:
        sock.sendall(request(body=b"")[:-2].replace(b"Content-Length: 0", b"Content-Length: %d" % len(body)) + b"\r\n")
        started = time.monotonic()
        try:
            for byte in body:
                sock.sendall(bytes([byte]))
                time.sleep(0.02)
                if time.monotonic() - started > 5:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, headers, answer, was_closed = read_answer(sock)
        elapsed = time.monotonic() - started
    assert status == 408 and headers["connection"] == "close"
    assert_error_shape(answer, "request_timeout")
    assert was_closed and elapsed < BODY_TIMEOUT + 1.0


def test_a_chunked_body_over_the_limit_is_413_before_it_ends(server: ServerThread) -> None:
    with server.connect() as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(3):  # 1,500 bytes of a body with no declared length, not finished
            sock.sendall(b"1f4\r\n" + b"a" * 500 + b"\r\n")
        status, _, body = read_answer_open(sock)
        assert status == 413
        assert_error_shape(body, "too_large")
        # The rest of the body nobody reads must come quickly: a trickle is cut off.
        assert trickle_until_cut(sock, b"1\r\na\r\n") < HEAD_TIMEOUT + 1.5


def test_a_declared_length_over_the_limit_is_413_at_once(server: ServerThread) -> None:
    with server.connect() as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
        status, _, body = read_answer_open(sock)
    assert status == 413
    assert_error_shape(body, "too_large")


def test_a_chunked_body_within_the_limit_is_read(server: ServerThread) -> None:
    with server.connect() as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'3\r\n{"a\r\n4\r\n": 1\r\n1\r\n}\r\n0\r\n\r\n'
        )
        status, _, body = read_answer_open(sock)
    assert status == 200 and body == {"size": 8}


def test_over_the_concurrency_limit_is_a_json_503(server: ServerThread) -> None:
    # limit_concurrency=3 counts open connections (this one included) and requests in progress.
    busy = [server.connect() for _ in range(2)]
    try:
        for sock in busy:
            sock.sendall(b"GET /slow?s=2 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
        with server.connect() as sock:
            sock.sendall(b"GET /slow?s=0 HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body, _ = read_answer(sock)
        assert status == 503 and headers["retry-after"] == "1"
        assert_error_shape(body, "unavailable")
        for sock in busy:  # the busy ones are still served
            assert read_answer_open(sock)[0] == 200
    finally:
        for sock in busy:
            sock.close()


def test_every_post_route_reads_its_body_through_read_body() -> None:
    # The size and time bounds live in read_body: a handler that read the body another way
    # (request.body(), request.stream()) would have neither.
    import inspect

    from rakit.http import prologue
    from rakit.http.endpoints import ALL_ENDPOINTS

    posts = [ep for ep in ALL_ENDPOINTS if ep.method == "POST"]
    assert len(posts) >= 20
    assert "read_body(request" in inspect.getsource(prologue.endpoint_route)  # every declared JSON body
    for ep in posts:
        if ep.body is not None:
            continue
        assert ep.handler is not None
        source = inspect.getsource(inspect.unwrap(ep.handler))
        assert "read_body(request" in source, ep.path
        assert "request.body()" not in source and "request.stream()" not in source, ep.path


def test_a_head_over_the_byte_limit_is_431_even_in_one_read(server: ServerThread) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /slow?s=0 HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEAD_BYTES + 10) + b"\r\n\r\n")
        status, _, body, was_closed = read_answer(sock)
    assert status == 431 and was_closed
    assert_error_shape(body, "too_large")


def test_pipelined_requests_with_big_bodies_are_not_mistaken_for_big_heads(server: ServerThread) -> None:
    # A read that carries the end of one request's body and the start of the next head is not "head":
    # here 200 KB of a body (refused: 413, read and dropped) then half a head, the other half later.
    big = request(body=b"x" * 200_000)
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
    with server.connect() as sock:
        sock.sendall(big + head[:30])
        time.sleep(0.3)
        sock.sendall(head[30:] + b"\r\n{}")
        assert read_answer_open(sock)[0] == 413
        status, _, answer = read_answer_open(sock)
        assert status == 200 and answer == {"size": 2}


def test_a_body_that_never_comes_is_408_while_the_handler_waits_for_it(server: ServerThread) -> None:
    with server.connect() as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        started = time.monotonic()
        status, headers, body, was_closed = read_answer(sock)
    assert status == 408 and headers["connection"] == "close"
    assert_error_shape(body, "request_timeout")
    assert was_closed and time.monotonic() - started < BODY_TIMEOUT + 100 / RATE + 1.0


def test_a_long_body_at_the_minimum_rate_gets_its_time(server: ServerThread) -> None:
    body = b'"' + b"z" * 898 + b'"'  # 900 bytes: BODY_TIMEOUT + 0.9 s at RATE
    with server.connect() as sock:
        sock.sendall(request(body=b"")[:-2].replace(b"Content-Length: 0", b"Content-Length: 900") + b"\r\n")
        for i in range(0, 900, 150):  # 900 bytes in ~1.2 s: slower than BODY_TIMEOUT alone allows
            sock.sendall(body[i : i + 150])
            time.sleep(0.2)
        status, _, answer = read_answer_open(sock)
    assert status == 200 and answer == {"size": 900}


def test_a_body_nobody_reads_is_cut_off_after_the_answer(server: ServerThread) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /slow?s=0 HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc")
        assert read_answer_open(sock)[0] == 200
        assert trickle_until_cut(sock, b"d") < BODY_TIMEOUT + 1.5


def test_the_next_request_on_a_connection_has_its_own_head_deadline(server: ServerThread) -> None:
    with server.connect() as sock:
        sock.sendall(request())
        assert read_answer_open(sock)[0] == 200
        sock.sendall(b"GET /slow?s=0 HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        started = time.monotonic()
        status, _, body, was_closed = read_answer(sock)
    assert status == 408 and was_closed
    assert_error_shape(body, "request_timeout")
    assert time.monotonic() - started < HEAD_TIMEOUT + 1.0


def test_a_websocket_outlives_the_head_and_body_deadlines(server: ServerThread) -> None:
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=5) as ws:
        time.sleep(HEAD_TIMEOUT + BODY_TIMEOUT + 0.5)
        ws.send("still here")
        assert ws.recv(timeout=5) == "still here"


# -- rule 5: one write per answer ------------------------------------------------------


class _Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


async def test_a_head_and_its_body_leave_in_one_write() -> None:
    from rakit.server.http_protocol import _CorkedTransport

    raw = _Recorder()
    corked = _CorkedTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    corked.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert raw.writes == []
    corked.write(memoryview(b"body"))
    assert raw.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    corked.write(b"head of a streamed answer")  # no body in this loop iteration: it goes out alone
    await asyncio.sleep(0)
    assert raw.writes[-1] == b"head of a streamed answer"
    corked.write(b"last words")
    corked.close()  # close flushes first
    assert raw.writes[-1] == b"last words" and raw.closed
    assert corked.get_extra_info("peername") == "info:peername"


def test_a_streamed_answer_sends_its_head_before_its_body() -> None:
    from starlette.responses import StreamingResponse

    async def chunks() -> Any:
        await asyncio.sleep(1.0)
        yield b"late"

    async def stream(request: Request) -> Response:
        return StreamingResponse(chunks(), media_type="text/plain")

    APP.router.routes.append(Route("/stream", stream, methods=["GET"]))
    try:
        with ServerThread() as s, s.connect() as sock:
            sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.settimeout(0.8)  # the head must come before the body's second
            data = b""
            while b"\r\n\r\n" not in data:
                data += sock.recv(65536)
            assert data.startswith(b"HTTP/1.1 200") and b"late" not in data
            sock.settimeout(5)
            while b"late" not in data:
                data += sock.recv(65536)
    finally:
        APP.router.routes.pop()
