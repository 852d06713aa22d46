"""Raft RPC endpoints: a peer's msgpack ``Batch`` goes to the driver's inbox.

The answer is 204 as soon as the batch is queued; Raft's responses travel as
messages of their own.  A body that does not decode, or whose sender is not
a member, is refused with 422 and changes nothing.
"""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rakit.errors import InvalidRequest
from rakit.http.json import read_body
from rakit.raft.messages import decode_batch

MAX_RPC_BYTES = 256 * 1024 * 1024


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
    runtime.driver.receive(messages)
    return Response(status_code=204)


routes = [
    Route("/request_vote", raft_messages, methods=["POST"]),
    Route("/append_entries", raft_messages, methods=["POST"]),
    Route("/install_snapshot", raft_messages, methods=["POST"]),
]
