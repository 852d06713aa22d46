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
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from rakit.http.json import read_body
from rakit.http.peer_stream import serve_peer_stream
from rakit.node.inbound import accept_batch
from rakit.raft.messages import AnyMessage, Batch, encode_batch

if TYPE_CHECKING:
    from rakit.node.runtime import NodeRuntime

MAX_RPC_BYTES = 256 * 1024 * 1024
REPLY_TIMEOUT = 2.0


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

    async def encoded_answer(future: asyncio.Future[list[AnyMessage]]) -> bytes:
        return encode_batch(Batch(runtime.node_id, await answer_of(future)))

    def handle(data: bytes) -> Callable[[], Awaitable[bytes]]:
        src, messages = accept_batch(runtime, data)
        return partial(encoded_answer, runtime.driver.exchange(src, messages))

    await serve_peer_stream(
        websocket,
        runtime.internal_auth.proof_headers(websocket.headers),
        handle,
        kind="raft",
        pipelined=True,
        answered=runtime.metrics.rpc_serve_seconds.observe,
    )


undeclared = [WebSocketRoute("/raft/stream", raft_stream)]
