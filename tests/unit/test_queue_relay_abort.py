"""A queue relay to an owner that stops answering gives up once the failure detector marks it down.

Found by the chaos suite: with the owner cut off (or paused), connections to
it hang instead of failing, and every relay waited its whole timeout (6 s)
although the probes had marked the owner down within a second.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from rakit.errors import Unavailable
from rakit.metrics import NodeMetrics
from rakit.queue.ring import ConsistentHashRing
from rakit.queue.service import QueueService
from rakit.relay import HttpRelay


async def _silent_server() -> tuple[asyncio.AbstractServer, str]:
    """Accepts connections and reads requests, never answers (a paused or cut-off peer)."""

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read(1 << 20)
            await asyncio.sleep(30)
        finally:
            writer.close()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("op", ["push", "pop", "ack"])
async def test_relay_gives_up_when_the_owner_is_marked_down(op: str) -> None:
    server, url = await _silent_server()
    async with aiohttp.ClientSession() as session:
        peers = {"a": "http://127.0.0.1:1", "b": url}
        service = QueueService(
            "a",
            peers,
            ConsistentHashRing(sorted(peers)),
            store=None,  # type: ignore[arg-type]
            session=session,
            metrics=NodeMetrics("a"),
            relay=HttpRelay(session),
        )
        payload = {"topic": "t", "consumer_id": "c", "message_id": "m1", "message": 1}
        relay = asyncio.ensure_future(service._relay(op, "b", payload, 0, 0.0))
        await asyncio.sleep(0.3)
        assert not relay.done()  # the owner is silent: the relay waits ...
        started = time.monotonic()
        service.health.mark_down("b")  # ... until the probes mark the owner down
        if op in ("push", "pop"):
            assert await asyncio.wait_for(relay, 1.0) is None  # the caller tries the next node
        else:
            with pytest.raises(Unavailable, match="stopped answering"):
                await asyncio.wait_for(relay, 1.0)
        assert time.monotonic() - started < 0.5
        # A relay to an owner already marked down does not wait at all.
        again = await asyncio.wait_for(service._relay("push", "b", payload, 0, 0.0), 1.0)
        assert again is None
    server.close()
