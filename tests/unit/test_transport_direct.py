"""HttpTransport.send writes frames to an open stream before it returns, and falls back to its sender task.

A real aiohttp WebSocket server stands in for the peer's ``/raft/stream``.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiohttp import web

from rakit.metrics import NodeMetrics
from rakit.raft.messages import Batch, Heartbeat, decode_batch, encode_batch
from rakit.transport import http as transport_http
from rakit.transport.http import STREAM_PATH, HttpTransport

DEADLINE = 10.0


async def _until(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


@pytest.fixture
async def peer():
    """A WebSocket server that records every frame and answers each with an empty batch."""
    frames: list[Batch] = []

    async def stream(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        async for msg in ws:
            frames.append(decode_batch(msg.data))
            await ws.send_bytes(encode_batch(Batch("b", [])))
        return ws

    app = web.Application()
    app.router.add_get(STREAM_PATH, stream)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", frames
    await runner.cleanup()


async def _open_transport(url: str) -> tuple[HttpTransport, asyncio.Task[None], aiohttp.ClientSession]:
    session = aiohttp.ClientSession()
    transport = HttpTransport("a", {"a": "http://unused", "b": url}, session, NodeMetrics("a"), lambda m: None)
    task = asyncio.create_task(transport.run())
    return transport, task, session


def _beat(commit: int) -> Heartbeat:
    return Heartbeat(term=1, src="a", dst="b", commit=commit)


async def _close(task: asyncio.Task[None], session: aiohttp.ClientSession) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await session.close()


async def test_send_writes_to_an_open_stream_before_returning(peer) -> None:
    url, frames = peer
    transport, task, session = await _open_transport(url)
    try:
        sender = transport.senders["b"]
        await _until(lambda: sender._direct is not None, "the stream to open")
        transport.send([_beat(1), _beat(2)])
        assert not sender.queue and sender.seq == 1  # written, not merely queued for the task
        transport.send([_beat(3)])
        assert sender.seq == 2
        await _until(lambda: len(frames) == 2, "both frames at the peer")
        assert [[m.commit for m in f.messages] for f in frames] == [[1, 2], [3]]
        assert [f.seq for f in frames] == [1, 2]
    finally:
        await _close(task, session)


async def test_without_a_frame_writer_the_sender_task_writes(peer, monkeypatch: pytest.MonkeyPatch) -> None:
    url, frames = peer
    monkeypatch.setattr(transport_http._DirectWriter, "of", classmethod(lambda cls, ws: None))
    transport, task, session = await _open_transport(url)
    try:
        sender = transport.senders["b"]
        transport.send([_beat(7)])
        assert list(sender.queue) == [_beat(7)]  # queued: the task writes it at its turn
        await _until(lambda: len(frames) == 1, "the frame at the peer")
        assert [m.commit for m in frames[0].messages] == [7]
    finally:
        await _close(task, session)


async def test_a_backed_up_stream_leaves_writing_to_the_task(peer, monkeypatch: pytest.MonkeyPatch) -> None:
    url, frames = peer
    transport, task, session = await _open_transport(url)
    try:
        sender = transport.senders["b"]
        await _until(lambda: sender._direct is not None, "the stream to open")
        monkeypatch.setattr(transport_http, "DIRECT_WRITE_LIMIT", -1)  # any buffer counts as backed up
        transport.send([_beat(5)])
        assert list(sender.queue) == [_beat(5)]
        await _until(lambda: len(frames) == 1, "the frame at the peer")
        assert [m.commit for m in frames[0].messages] == [5]
    finally:
        await _close(task, session)
