"""Raft RPC endpoints: a peer's msgpack ``Batch`` in, our messages for it out.

``/raft/stream`` is the WebSocket the peers' senders keep open: each binary
frame is a batch, stepped in arrival order; for each, once this node has
persisted what it implies, a frame goes back with what this node then has
for the sender (acks, votes) — answers in the order of the frames.
``POST /append_entries``, ``/request_vote`` and ``/install_snapshot`` do the
same exchange one request at a time.

Every batch goes through ``rakit.node.inbound.accept_batch`` (the same checks
as the answers on this node's own streams): one that does not decode, whose
sender is not a member, or that carries a message no Raft peer can send, is
refused (422, or the stream is closed) and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from rakit.errors import InvalidRequest
from rakit.http.json import read_body
from rakit.node.inbound import accept_batch
from rakit.raft.messages import AnyMessage, Batch, encode_batch

if TYPE_CHECKING:
    from rakit.node.runtime import NodeRuntime

log = logging.getLogger(__name__)

MAX_RPC_BYTES = 256 * 1024 * 1024
REPLY_TIMEOUT = 2.0
UNSUPPORTED_DATA = 1003


async def answer_of(future: asyncio.Future[list[AnyMessage]]) -> list[AnyMessage]:
    # Awaited directly under a deadline: wait_for would add a callback hop (one more loop
    # iteration) between the driver's answer and the frame that carries it.
    if future.done():
        return future.result()
    try:
        async with asyncio.timeout(REPLY_TIMEOUT):
            return await future
    except TimeoutError:
        return []


async def raft_messages(request: Request) -> Response:
    runtime = request.app.state.runtime
    src, messages = accept_batch(runtime, await read_body(request, limit=MAX_RPC_BYTES))
    answer = await answer_of(runtime.driver.exchange(src, messages))
    return Response(encode_batch(Batch(runtime.node_id, answer)), media_type="application/msgpack")


async def raft_stream(websocket: WebSocket) -> None:
    runtime: NodeRuntime = websocket.app.state.runtime
    await websocket.accept(headers=runtime.internal_auth.proof_headers(websocket.headers))
    answers: asyncio.Queue[tuple[float, asyncio.Future[list[AnyMessage]]]] = asyncio.Queue()

    async def write_answers() -> None:
        while True:
            started, future = await answers.get()
            reply = await answer_of(future)
            await websocket.send_bytes(encode_batch(Batch(runtime.node_id, reply)))
            runtime.metrics.rpc_serve_seconds.observe(time.perf_counter() - started)

    writer = asyncio.create_task(write_answers(), name="raft-stream-writer")
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            try:
                if data is None:
                    raise InvalidRequest("raft frames are binary")
                src, messages = accept_batch(runtime, data)
            except InvalidRequest as exc:
                log.warning("closing a raft stream: %s", exc.detail)
                await websocket.close(UNSUPPORTED_DATA, exc.detail[:120])
                return
            answers.put_nowait((time.perf_counter(), runtime.driver.exchange(src, messages)))
    except WebSocketDisconnect:
        return
    finally:
        writer.cancel()


undeclared = [WebSocketRoute("/raft/stream", raft_stream)]
