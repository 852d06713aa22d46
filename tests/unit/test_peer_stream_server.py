"""The server half both node-to-node streams share (``rakit.http.peer_stream``): one test per rule.

A Starlette app serves ``serve_peer_stream`` with a test ``handle``; the
test client is the peer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from rakit.errors import InvalidRequest
from rakit.http.peer_stream import UNSUPPORTED_DATA, Answer, serve_peer_stream

PROOF = [(b"x-test-proof", b"proven")]


def client(handle: Callable[[bytes], Answer], *, pipelined: bool, answered: list[float] | None = None) -> TestClient:
    async def route(websocket: WebSocket) -> None:
        await serve_peer_stream(
            websocket,
            PROOF,
            handle,
            kind="test",
            pipelined=pipelined,
            answered=answered.append if answered is not None else None,
        )

    return TestClient(Starlette(routes=[WebSocketRoute("/s", route)]))


def upper(data: bytes) -> bytes:
    if data == b"bad":
        raise InvalidRequest("a bad frame")
    return data.upper()


def test_rule_1_the_handshake_carries_the_proof() -> None:
    with client(upper, pipelined=False).websocket_connect("/s") as ws:
        assert ws.extra_headers == PROOF


@pytest.mark.parametrize("pipelined", [False, True])
def test_rule_2_answers_come_back_in_frame_order(pipelined: bool) -> None:
    with client(upper, pipelined=pipelined).websocket_connect("/s") as ws:
        for frame in (b"a", b"b", b"c"):
            ws.send_bytes(frame)
        assert [ws.receive_bytes() for _ in range(3)] == [b"A", b"B", b"C"]


@pytest.mark.parametrize("pipelined", [False, True])
@pytest.mark.parametrize("frame", ["text", b"bad"])
def test_rule_3_a_text_or_refused_frame_closes_the_stream_with_1003(pipelined: bool, frame: str | bytes) -> None:
    handled: list[bytes] = []

    def handle(data: bytes) -> bytes:
        handled.append(data)
        return upper(data)

    with client(handle, pipelined=pipelined).websocket_connect("/s") as ws:
        ws.send_bytes(b"ok")
        assert ws.receive_bytes() == b"OK"
        if isinstance(frame, str):
            ws.send_text(frame)
        else:
            ws.send_bytes(frame)
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_bytes()
    assert closed.value.code == UNSUPPORTED_DATA
    assert closed.value.reason in ("test frames are binary", "a bad frame")
    assert handled == [b"ok"] + ([b"bad"] if frame == b"bad" else [])


def test_rule_4_pipelined_frames_are_read_while_an_answer_waits() -> None:
    second_handled: list[asyncio.Event] = []

    def handle(data: bytes) -> Callable[[], Awaitable[bytes]]:
        if not second_handled:
            second_handled.append(asyncio.Event())

            async def first() -> bytes:
                await second_handled[0].wait()  # only a server that reads on gets here
                return b"first"

            return first
        second_handled[0].set()

        async def second() -> bytes:
            return b"second"

        return second

    with client(handle, pipelined=True).websocket_connect("/s") as ws:
        ws.send_bytes(b"1")
        ws.send_bytes(b"2")
        assert [ws.receive_bytes(), ws.receive_bytes()] == [b"first", b"second"]


def test_rule_4_not_pipelined_the_answer_is_written_before_the_next_frame_is_read() -> None:
    handled: list[bytes] = []

    def handle(data: bytes) -> Callable[[], Awaitable[bytes]]:
        handled.append(data)

        async def answer() -> bytes:
            return b",".join(handled)  # what was read by the time this answer is written

        return answer

    with client(handle, pipelined=False).websocket_connect("/s") as ws:
        ws.send_bytes(b"1")
        ws.send_bytes(b"2")
        assert [ws.receive_bytes(), ws.receive_bytes()] == [b"1", b"1,2"]


def test_rule_5_answered_hears_each_answer() -> None:
    answered: list[float] = []
    with client(upper, pipelined=True, answered=answered).websocket_connect("/s") as ws:
        ws.send_bytes(b"a")
        ws.send_bytes(b"b")
        assert [ws.receive_bytes(), ws.receive_bytes()] == [b"A", b"B"]
    assert len(answered) == 2 and all(seconds >= 0 for seconds in answered)
