"""The server half of the node-to-node streams: one for Raft's ``/raft/stream`` and the cache's ``/cache/stream``.

The client half is ``rakit.transport.stream.PeerStream``; frames are opaque
bytes here, the wire is each channel's.

Rules:
1. The handshake is accepted with this node's proof
   (``InternalAuth.proof_headers``; the caller's signature was checked by
   the internal-auth middleware before the route ran).
2. Each binary frame goes to ``handle`` in arrival order, and its answer
   frame goes back in the same order.
3. A frame that is not binary, or that ``handle`` refuses with
   ``InvalidRequest``, closes the stream with 1003 and the reason (at most
   120 characters), logged; ``handle`` changed nothing for it.
4. Flow control is the channel's choice (``pipelined``):
   - not pipelined (the cache): ``handle`` answers at once and the answer is
     written before the next frame is read, so a peer that stops reading
     its answers stops being read (back-pressure through TCP);
   - pipelined (Raft): ``handle`` may return a coroutine function for the
     answer (the driver answers once what the batch implies is on disk);
     frames keep being read meanwhile, so one peer's batches share the
     driver's turns and fsyncs, and a writer task awaits and writes the
     answers in frame order.  (A function, not a coroutine: one never
     awaited because the stream closed first leaves no warning behind.)
5. ``answered(seconds)``, if given, hears for each frame the time from its
   hand-over to ``handle`` returning until its answer is written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from starlette.websockets import WebSocket, WebSocketDisconnect

from rakit.errors import InvalidRequest

log = logging.getLogger(__name__)

UNSUPPORTED_DATA = 1003

Answer = bytes | Callable[[], Awaitable[bytes]]


async def serve_peer_stream(
    websocket: WebSocket,
    proof_headers: list[tuple[bytes, bytes]],
    handle: Callable[[bytes], Answer],
    *,
    kind: str,
    pipelined: bool,
    answered: Callable[[float], None] | None = None,
) -> None:
    """Serve one peer's stream until it closes (rules 1-5); ``kind`` names it in reasons and logs."""
    await websocket.accept(headers=proof_headers)

    async def write(started: float, answer: Answer) -> None:
        await websocket.send_bytes(answer if isinstance(answer, bytes) else await answer())
        if answered is not None:
            answered(time.perf_counter() - started)

    answers: asyncio.Queue[tuple[float, Answer]] = asyncio.Queue()

    async def write_answers() -> None:
        while True:
            await write(*(await answers.get()))

    writer = asyncio.create_task(write_answers(), name=f"{kind}-stream-writer") if pipelined else None
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            try:
                if data is None:
                    raise InvalidRequest(f"{kind} frames are binary")
                answer = handle(data)
            except InvalidRequest as exc:
                log.warning("closing a %s stream: %s", kind, exc.detail)
                await websocket.close(UNSUPPORTED_DATA, exc.detail[:120])
                return
            started = time.perf_counter() if answered is not None else 0.0
            if writer is not None:
                answers.put_nowait((started, answer))
            else:
                await write(started, answer)
    except WebSocketDisconnect:
        return
    finally:
        if writer is not None:
            writer.cancel()


__all__ = ["UNSUPPORTED_DATA", "serve_peer_stream"]
