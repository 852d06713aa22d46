"""``/cache``: each node's LRU, kept coherent by write-invalidate (API.md "Cache").

``POST /cache/set {"key", "value", "ttl"?}`` -> ``{"key", "version"}`` once every peer dropped
    older copies (or was fenced out of serving);
``GET /cache/get/{key}`` -> ``{"key", "value", "version", "node", "source": "local"|"peer"}`` or 404;
``POST /cache/delete {"key"}`` -> ``{"deleted": bool}``;
``GET /cache/stats`` -> counters, occupancy, serving state and per-peer contact;
``POST /cache/invalidate {"src", "key", "version"}`` -> ``{"dropped", "held"}``: one invalidation,
    JSON (for tools; nodes batch theirs);
``/cache/stream`` (WebSocket): what nodes send each other, msgpack ``rakit.cache.messages.Batch``
    frames answered by ``BatchReply`` frames in order; ``POST /cache/internal/batch`` answers one
    batch per request, for tools.

A peer's batch (any of the three ways) is checked before it touches the cache (``check_batch``):
keys of the API's form, well-formed versions, and no clock or version counter more than
``MAX_CLOCK_AHEAD_US`` ahead of this node's wall clock.  A node observes every clock and version it
is sent (``rakit.cache.versions`` rule 4), so one hostile counter would otherwise push its clock out
of the range of msgpack's integers (every later batch it sends fails to encode) or years ahead.
"""

from __future__ import annotations

import re
import time
from typing import Annotated

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from rakit.cache.messages import (
    Batch,
    Fence,
    Invalidate,
    InvalidateResult,
    decode_batch,
    encode,
)
from rakit.cache.service import CacheService
from rakit.cache.versions import Version
from rakit.errors import InvalidRequest, NotFound
from rakit.http.json import (
    Key,
    Name,
    check_value_size,
    decode,
    json_response,
    path_key,
    read_body,
)
from rakit.security.tokens import require

MAX_TTL = 2_592_000
Ttl = Annotated[float, msgspec.Meta(gt=0, le=MAX_TTL)]
# A batch holds many invalidations and fetch answers carry values: allow a few values' worth.
MAX_BATCH_BODY = 16 * 1024 * 1024
# How far (microseconds) a peer's clock or version may run ahead of this node's wall clock: far
# beyond any skew between synchronised clocks, far below anything that could overflow.
MAX_CLOCK_AHEAD_US = 24 * 3600 * 1_000_000
_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,128}", re.ASCII)
MAX_VERSION_CHARS = 200  # "<counter>.<node id>": about 16 digits and an id of at most 64 characters


class SetBody(msgspec.Struct):
    key: Key
    value: msgspec.Raw
    ttl: Ttl | None = None


class KeyBody(msgspec.Struct):
    key: Key


class InvalidateBody(msgspec.Struct):
    src: Name
    key: Key
    version: str


class GetAnswer(msgspec.Struct):
    key: str
    value: msgspec.Raw
    version: str
    node: str
    source: str


_encoder = msgspec.json.Encoder()


def _service(request: Request) -> CacheService:
    return request.app.state.runtime.cache  # type: ignore[no-any-return]


async def cache_set(request: Request) -> Response:
    parsed = decode(await read_body(request), SetBody)
    require(request, "cache", "write", parsed.key)
    value = bytes(parsed.value)
    if not value:
        raise InvalidRequest("Object missing required field `value`", field="value")
    check_value_size(value)
    version = await _service(request).set(parsed.key, value, parsed.ttl)
    return json_response({"key": parsed.key, "version": version.encode()})


async def cache_get(request: Request) -> Response:
    service = _service(request)
    key = path_key(request.path_params["key"])
    entry, source = await service.get(key)
    if entry is None:
        raise NotFound(f"no node holds a current copy of {key!r}")
    answer = GetAnswer(key, msgspec.Raw(entry.value), entry.version.encode(), service.node_id, source)
    return Response(_encoder.encode(answer), media_type="application/json")


async def cache_delete(request: Request) -> Response:
    parsed = decode(await read_body(request), KeyBody)
    require(request, "cache", "write", parsed.key)
    return json_response({"deleted": await _service(request).delete(parsed.key)})


async def cache_stats(request: Request) -> Response:
    return json_response(_service(request).stats())


def check_batch(batch: Batch) -> Batch:
    """``batch`` if it is fit to handle (see the module docstring), else InvalidRequest."""
    limit = time.time_ns() // 1000 + MAX_CLOCK_AHEAD_US
    if not 0 <= batch.clock <= limit:
        raise InvalidRequest(f"cache batch clock {batch.clock} is out of range")
    for op in batch.ops:
        key = op.target if isinstance(op, Fence) else op.key
        if _KEY.fullmatch(key) is None:
            raise InvalidRequest(f"cache batch: {key[:140]!r} is not a key or node of the API's form")
        if isinstance(op, Invalidate):
            try:
                if len(op.version) > MAX_VERSION_CHARS:
                    raise ValueError(f"a version of {len(op.version)} characters")
                counter = Version.decode(op.version).counter
            except ValueError as exc:
                raise InvalidRequest(f"cache batch: {exc}") from None
            if counter > limit:
                raise InvalidRequest(f"cache batch: version {op.version[:60]!r} is too far ahead")
    return batch


async def cache_invalidate(request: Request) -> Response:
    parsed = decode(await read_body(request), InvalidateBody)
    reply = _service(request).handle_batch(
        check_batch(Batch(parsed.src, 0, [Invalidate(parsed.key, parsed.version)])))
    result = reply.results[0]
    assert isinstance(result, InvalidateResult)
    return json_response({"dropped": result.dropped, "held": result.held, "acked": reply.acked})


async def cache_batch(request: Request) -> Response:
    body = await read_body(request, MAX_BATCH_BODY)
    try:
        batch = decode_batch(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidRequest(f"malformed cache batch: {exc}") from None
    reply = _service(request).handle_batch(check_batch(batch))
    return Response(encode(reply), media_type="application/msgpack")


UNSUPPORTED_DATA = 1003


async def cache_stream(websocket: WebSocket) -> None:
    service: CacheService = websocket.app.state.runtime.cache
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            try:
                if data is None:
                    raise InvalidRequest("cache frames are binary")
                try:
                    batch = decode_batch(data)
                except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                    raise InvalidRequest(f"malformed cache batch: {exc}") from None
                reply = service.handle_batch(check_batch(batch))
            except InvalidRequest as exc:
                await websocket.close(UNSUPPORTED_DATA, exc.detail[:120])
                return
            await websocket.send_bytes(encode(reply))
    except WebSocketDisconnect:
        return


routes = [
    WebSocketRoute("/cache/stream", cache_stream),
    Route("/cache/internal/batch", cache_batch, methods=["POST"]),
    Route("/cache/get/{key:path}", cache_get, methods=["GET"]),
    Route("/cache/set", cache_set, methods=["POST"]),
    Route("/cache/delete", cache_delete, methods=["POST"]),
    Route("/cache/stats", cache_stats, methods=["GET"]),
    Route("/cache/invalidate", cache_invalidate, methods=["POST"]),
]

__all__ = ["NotFound", "routes"]
