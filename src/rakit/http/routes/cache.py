"""``/cache``: each node's LRU, kept coherent by write-invalidate (docs/api.md "Cache").

``POST /cache/set {"key", "value", "ttl"?}`` -> ``{"key", "version"}`` once every peer dropped
    older copies (or was fenced out of serving);
``GET /cache/get/{key}`` -> ``{"key", "value", "version", "node", "source": "local"|"peer"}`` or 404;
``POST /cache/delete {"key"}`` -> ``{"deleted": bool}``;
``GET /cache/stats`` -> counters, occupancy, serving state and per-peer contact;
``POST /cache/invalidate {"src", "key", "version"}`` -> ``{"dropped", "held"}``: one invalidation,
    JSON (for tools; nodes batch theirs);
``/cache/stream`` (WebSocket): what nodes send each other, msgpack ``rakit.cache.rules.messages.Batch``
    frames answered by ``BatchReply`` frames in order; ``POST /cache/internal/batch`` answers one
    batch per request, for tools.

A peer's batch (any of the three ways) is checked before it touches the cache
(``rakit.cache.rules.checks.check_batch``); the replies to this node's own frames are checked the same way
(``check_reply``, in ``rakit.cache.peers``).
"""

from __future__ import annotations

import time

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from rakit.cache.rules.checks import check_batch
from rakit.cache.rules.messages import (
    Batch,
    Invalidate,
    InvalidateResult,
    decode_batch,
    encode,
)
from rakit.cache.service import CacheService
from rakit.errors import InvalidRequest, NotFound
from rakit.http.bodies import CacheKeyBody, GetAnswer, InvalidateBody, SetBody
from rakit.http.json import check_value_size, json_response, read_body
from rakit.http.peer_stream import serve_peer_stream
from rakit.http.prologue import Call

# A batch holds many invalidations and fetch answers carry values: allow a few values' worth.
MAX_BATCH_BODY = 16 * 1024 * 1024

_encoder = msgspec.json.Encoder()


def checked_value(call: Call[SetBody]) -> None:
    """Before anything is sent to a peer: a value is present and not too large."""
    value = call.body.value
    if not value:
        raise InvalidRequest("Object missing required field `value`", field="value")
    check_value_size(bytes(value))


async def cache_set(call: Call[SetBody]) -> Response:
    req = call.body
    version = await call.runtime.cache.set(req.key, bytes(req.value), req.ttl)
    return json_response({"key": req.key, "version": version.encode()})


async def cache_get(call: Call[None]) -> Response:
    service: CacheService = call.runtime.cache
    key = call.names["key"]
    entry, source = await service.get(key)
    if entry is None:
        raise NotFound(f"no node holds a current copy of {key!r}")
    answer = GetAnswer(key, msgspec.Raw(entry.value), entry.version.encode(), service.node_id, source)
    return Response(_encoder.encode(answer), media_type="application/json")


async def cache_delete(call: Call[CacheKeyBody]) -> Response:
    return json_response({"deleted": await call.runtime.cache.delete(call.body.key)})


async def cache_stats(call: Call[None]) -> Response:
    return json_response(call.runtime.cache.stats())


def _checked(batch: Batch) -> Batch:
    return check_batch(batch, time.time_ns() // 1000)


async def cache_invalidate(call: Call[InvalidateBody]) -> Response:
    parsed = call.body
    reply = call.runtime.cache.handle_batch(_checked(Batch(parsed.src, 0, [Invalidate(parsed.key, parsed.version)])))
    result = reply.results[0]
    assert isinstance(result, InvalidateResult)
    return json_response({"dropped": result.dropped, "held": result.held, "acked": reply.acked})


async def cache_batch(request: Request) -> Response:
    body = await read_body(request, MAX_BATCH_BODY)
    try:
        batch = decode_batch(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidRequest(f"malformed cache batch: {exc}") from None
    reply = request.app.state.runtime.cache.handle_batch(_checked(batch))
    return Response(encode(reply), media_type="application/msgpack")


async def cache_stream(websocket: WebSocket) -> None:
    runtime = websocket.app.state.runtime
    service: CacheService = runtime.cache

    def handle(data: bytes) -> bytes:
        try:
            batch = decode_batch(data)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise InvalidRequest(f"malformed cache batch: {exc}") from None
        return encode(service.handle_batch(_checked(batch)))

    await serve_peer_stream(
        websocket, runtime.internal_auth.proof_headers(websocket.headers), handle, kind="cache", pipelined=False
    )


undeclared = [WebSocketRoute("/cache/stream", cache_stream)]
