"""The TLS port's gate (rakit.server.tls_gate): HTTPS served, plain HTTP a 400 "use https", nothing leaks.

A real uvicorn serves the tiny app of test_http_budget through
``tls_gate.gated(...)`` under a connection budget, on uvloop (the node's
loop) and on asyncio's: the gate builds the loop's private SSL protocol
class, and these tests pin what it relies on (HTTPS requests and
WebSockets work, ``scope["scheme"]`` is https, a failed handshake closes the
connection, every ticket comes back).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvloop
import uvloop.loop
from test_http_budget import LIMITS, Node, Quick

from rakit.launcher import wait_until
from rakit.node.connection_budget import Limits
from rakit.server import tls_gate
from rawsock import closed, read_answer
from tlscerts import make_ca

LOOPS = ["uvloop", "asyncio"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("gate-pki")
    ca = make_ca(folder)
    cert, key = ca.issue(folder, "node1")
    return {"ca": ca.path, "cert": cert, "key": key}


def server_context(pki: dict[str, Path]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(pki["cert"]), str(pki["key"]))
    return ctx


def client_context(pki: dict[str, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki["ca"]))


@pytest.fixture(params=LOOPS)
def node(request: pytest.FixtureRequest, pki: dict[str, Path]) -> Iterator[Node]:
    with Node(Quick, keep_alive=5, limits=LIMITS, context=server_context(pki), loop=request.param) as n:
        yield n
        n.settled()


# -- the pure parts --------------------------------------------------------------------------------------


def test_the_https_address_is_the_requests_host_else_the_address_reached() -> None:
    head = b"GET / HTTP/1.1\r\nHost: node1.example:7000\r\n\r\n"
    assert tls_gate.https_address(head, ("127.0.0.1", 7000)) == "node1.example:7000"
    assert tls_gate.https_address(b"GET / HTTP/1.1\r\nhost: [::1]:7001\r\n\r\n", None) == "[::1]:7001"
    assert tls_gate.https_address(b"GET / HTTP/1.1\r\nHost: <script>\r\n\r\n", ("10.0.0.5", 7000)) == "10.0.0.5:7000"
    assert tls_gate.https_address(b"GET / HTTP/1.1\r\n", ("::1", 7002, 0, 0)) == "[::1]:7002"


def test_the_plain_http_answer_is_a_json_400() -> None:
    answer = tls_gate.plain_http_answer(b"GET / HTTP/1.1\r\nHost: n1:7000\r\n\r\n", None)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"content-type: application/json" in head and b"connection: close" in head
    assert json.loads(body) == {"error": "invalid_request", "detail": "this node serves HTTPS: use https://n1:7000"}


def test_the_ssl_protocol_is_the_loops_own() -> None:
    assert tls_gate._ssl_protocol_class(uvloop.new_event_loop()) is uvloop.loop.SSLProtocol
    loop = asyncio.new_event_loop()
    try:
        assert tls_gate._ssl_protocol_class(loop) is asyncio.sslproto.SSLProtocol
    finally:
        loop.close()


# -- a served gate ---------------------------------------------------------------------------------------


def test_https_requests_keep_alive_and_are_https_to_the_app(node: Node, pki: dict[str, Path]) -> None:
    with httpx.Client(verify=client_context(pki), timeout=5) as client:
        for _ in range(20):
            answer = client.get(f"https://127.0.0.1:{node.port}/whoami")
            assert answer.status_code == 200 and answer.json() == {"scheme": "https", "client": "127.0.0.1"}
        assert node.budget.open == 1  # one connection, kept alive
        posted = client.post(f"https://127.0.0.1:{node.port}/echo", content=b'{"a": 1}')
        assert posted.json() == {"size": 8}


def test_plain_http_gets_a_400_saying_use_https(node: Node) -> None:
    answer = httpx.get(f"http://127.0.0.1:{node.port}/status", timeout=5)
    assert answer.status_code == 400 and answer.headers["content-type"] == "application/json"
    assert answer.json() == {
        "error": "invalid_request",
        "detail": f"this node serves HTTPS: use https://127.0.0.1:{node.port}",
    }
    posted = httpx.post(
        f"http://127.0.0.1:{node.port}/echo", content=b"x" * 300_000, timeout=5
    )  # a body it never reads
    assert posted.status_code == 400


def test_a_byte_that_is_neither_tls_nor_http_is_closed_without_an_answer(node: Node) -> None:
    with node.connect() as sock:
        sock.sendall(b"\x00\x01\x02")
        assert closed(sock, 2.0)


def test_a_silent_connection_is_closed_at_the_head_timeout(node: Node) -> None:
    with node.connect() as sock:
        started = time.monotonic()
        wait_until(lambda: node.budget.open == 1, 5, "the connection counted")
        assert closed(sock, 3.0)
        assert time.monotonic() - started < Quick.head_timeout + 1.0


def test_a_failed_handshake_closes_the_connection(node: Node, pki: dict[str, Path]) -> None:
    with node.connect() as sock:
        sock.sendall(b"\x16\x03\x01\x00\x05hello")  # a handshake record that is no ClientHello
        assert closed(sock, 3.0)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"https://127.0.0.1:{node.port}/whoami", timeout=5)  # a client that trusts another CA


def test_a_handshake_that_never_completes_is_cut_at_the_head_timeout(node: Node) -> None:
    hello = ssl.create_default_context()
    hello.check_hostname, hello.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = hello.wrap_bio(incoming, outgoing)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    with node.connect() as sock:
        started = time.monotonic()
        sock.sendall(outgoing.read())  # the ClientHello, and then nothing
        assert closed(sock, 3.0)
        assert time.monotonic() - started < Quick.head_timeout + 1.0


def test_a_websocket_over_tls(node: Node, pki: dict[str, Path]) -> None:
    from websockets.sync.client import connect

    with connect(f"wss://127.0.0.1:{node.port}/ws", ssl=client_context(pki), open_timeout=5) as ws:
        ws.send("over tls")
        assert ws.recv(timeout=5) == "over tls"
        assert node.budget.open == 1


def test_over_the_caps_a_tls_connection_is_closed_before_its_handshake(pki: dict[str, Path]) -> None:
    tiny = Limits.of(2, 2)  # no reserve; one shed connection closing at most
    with Node(limits=tiny, context=server_context(pki)) as node:
        held = [node.connect(), node.connect()]
        wait_until(lambda: node.budget.open == 2, 5, "both connections counted")
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"https://127.0.0.1:{node.port}/whoami", verify=client_context(pki), timeout=5)
        assert node.budget.shedding == 0
        for sock in held:
            sock.close()
        with httpx.Client(verify=client_context(pki), timeout=5) as client:
            assert client.get(f"https://127.0.0.1:{node.port}/whoami").status_code == 200
        node.settled()


def test_a_raw_plain_http_request_reads_its_400_and_then_the_close(node: Node) -> None:
    with node.connect() as sock:
        sock.sendall(b"GET /status HTTP/1.1\r\nHost: x.example:1\r\n\r\n")
        status, headers, body, was_closed = read_answer(sock)
    assert (status, body["detail"], was_closed) == (400, "this node serves HTTPS: use https://x.example:1", True)
    assert headers["connection"] == "close"
