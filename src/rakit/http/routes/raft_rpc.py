"""Raft RPC endpoints: a peer's msgpack ``Batch`` in, our messages for it out.

The batch is stepped in its sender's sequence order; the answer (200, a
msgpack ``Batch``) carries what this node then has for the sender — acks and
votes, sent only after they are on disk.  A body that does not decode, or
whose sender is not a member, is refused with 422 and changes nothing.
"""

from __future__ import annotations

import asyncio

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rakit.errors import InvalidRequest
from rakit.http.json import read_body
from rakit.raft.messages import Batch, decode_batch, encode_batch

MAX_RPC_BYTES = 256 * 1024 * 1024
REPLY_TIMEOUT = 2.0


async def raft_messages(request: Request) -> Response:
    runtime = request.app.state.runtime
    body = await read_body(request, limit=MAX_RPC_BYTES)
    try:
        batch = decode_batch(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidRequest(f"malformed raft batch: {exc}") from None
    members = runtime.config.peers
    if batch.src not in members or batch.src == runtime.node_id:
        raise InvalidRequest(f"sender {batch.src!r} is not a peer of {runtime.node_id}")
    messages = [m for m in batch.messages if m.src == batch.src and m.dst == runtime.node_id]
    order = runtime.inbound_order
    await order.wait_turn(batch.src, batch.epoch, batch.seq)
    replies = runtime.driver.exchange(batch.src, messages)
    await order.done(batch.src, batch.epoch, batch.seq)
    try:
        answer = await asyncio.wait_for(replies, REPLY_TIMEOUT)
    except asyncio.TimeoutError:
        answer = []
    return Response(encode_batch(Batch(runtime.node_id, answer)), media_type="application/msgpack")


routes = [
    Route("/request_vote", raft_messages, methods=["POST"]),
    Route("/append_entries", raft_messages, methods=["POST"]),
    Route("/install_snapshot", raft_messages, methods=["POST"]),
]
