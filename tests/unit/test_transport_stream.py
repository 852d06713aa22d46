"""The shared client loop of both node-to-node channels (``rakit.transport.stream.PeerStream``).

A real aiohttp WebSocket server stands in for the peer: it echoes each frame,
hangs up after ``hang_up_after`` frames on one socket, and stays silent for
frames starting with ``b"mute"``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from driver_stubs import until

from rakit.transport.stream import BACKOFF_FIRST, BACKOFF_MAX, PeerStream, backoff

PATH = "/test/stream"
DEADLINE = 10.0


class Peer:
    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.connections = 0
        self.hang_up_after = 0  # 0: never
        self.url = ""


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    state = Peer()

    async def stream(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        state.connections += 1
        count = 0
        async for msg in ws:
            state.frames.append(msg.data)
            count += 1
            if not msg.data.startswith(b"mute"):
                await ws.send_bytes(msg.data)
            if state.hang_up_after and count >= state.hang_up_after:
                await ws.close()
        return ws

    app = web.Application()
    app.router.add_get(PATH, stream)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield state
    await runner.cleanup()


class Lines(PeerStream):
    """A channel of byte strings: one per frame, answers recorded in order; ``refuse`` breaks on an answer."""

    name = "test"

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        super().__init__("b", PATH, None)
        self.url, self.session = url, session
        self.queue: deque[bytes] = deque()
        self.answers: list[bytes] = []
        self.refuse = b"\x00"
        self.opens = self.breaks = 0
        self.unanswered = 0

    async def connect(self, headers: dict[str, str] | None) -> aiohttp.ClientWebSocketResponse:
        return await self.session.ws_connect(self.url + PATH, headers=headers)

    def opened(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.opens += 1

    def broken(self) -> None:
        self.breaks += 1
        self.queue.clear()
        self.unanswered = 0

    def check(self) -> None:
        if self.unanswered > 0 and self.poll is not None:
            raise TimeoutError("unanswered")

    def ready(self) -> bool:
        return bool(self.queue)

    def next_frame(self) -> bytes:
        frame = self.queue.popleft()
        self.unanswered += frame.startswith(b"mute")
        return frame

    def answer(self, data: bytes) -> bool:
        self.answers.append(data)
        return data != self.refuse

    def push(self, *frames: bytes) -> None:
        self.queue.extend(frames)
        self.wake.set()


@pytest.fixture
async def lines(peer: Peer) -> AsyncIterator[Lines]:
    async with aiohttp.ClientSession() as session:
        channel = Lines(peer.url, session)
        task = asyncio.create_task(channel.run())
        try:
            yield channel
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def test_the_back_off_doubles_up_to_its_cap() -> None:
    assert backoff(1) == BACKOFF_FIRST
    assert backoff(2) == 2 * BACKOFF_FIRST
    assert backoff(100) == BACKOFF_MAX


async def test_frames_go_out_and_answers_come_back_in_order(lines: Lines) -> None:
    lines.push(*(b"%d" % i for i in range(20)))
    await until(lambda: len(lines.answers) == 20, DEADLINE, "every answer")
    assert lines.answers == [b"%d" % i for i in range(20)]
    assert lines.frames_sent == 20 and lines.opens == 1 and lines.failures == 0


async def test_a_hung_up_stream_reconnects_and_goes_on(peer: Peer, lines: Lines) -> None:
    peer.hang_up_after = 2
    lines.push(b"1", b"2")
    await until(lambda: lines.breaks == 1, DEADLINE, "the stream to break")
    await until(lambda: lines.opens == 2, DEADLINE, "the stream to reopen")
    peer.hang_up_after = 0
    lines.push(b"3")
    await until(lambda: b"3" in lines.answers, DEADLINE, "an answer on the new stream")
    assert peer.connections == 2 and lines.failures == 0  # reset once open again


async def test_an_answer_refused_breaks_the_stream(lines: Lines) -> None:
    lines.refuse = b"bad"
    lines.push(b"bad")
    await until(lambda: lines.opens == 2, DEADLINE, "the stream to reopen after the refused answer")
    assert lines.breaks == 1


async def test_an_overdue_answer_breaks_the_stream(lines: Lines) -> None:
    lines.poll = 0.01  # check() runs while idle too
    lines.push(b"mute")
    await until(lambda: lines.breaks == 1, DEADLINE, "the silent peer to break the stream")
    await until(lambda: lines.opens == 2, DEADLINE, "the stream to reopen")
