"""``/queue``: topic queues in Redis, each topic served by its ring owner (docs/api.md "Queue").

``POST /queue/push {"topic", "message", "message_id"?}`` -> ``{"topic", "message_id", "node"}``;
``GET /queue/pop/{topic}/{consumer_id}?visibility_timeout=30&wait=0``
    -> ``{"topic", "message_id", "message", "delivery_count"}`` or 204; 429 ``too_many_in_flight``
    (nothing changed) when the consumer already holds ``MAX_IN_FLIGHT`` (1000) messages of the topic;
``POST /queue/ack|nack {"topic", "consumer_id", "message_id"}`` -> ``{"acked"|"nacked": true}``
    or 404 ``not_in_flight``;
``POST /queue/extend {"topic", "consumer_id", "message_id", "visibility_timeout"}`` -> ``{"extended": true}``;
``GET /queue/stats/{topic}`` -> ``{"topic", "ready", "in_flight", "dead", "owner"}``;
``GET /queue/dead/{topic}?limit=100`` -> ``{"topic", "messages": [{"message_id", "message", "delivery_count"}]}``;
``POST /queue/redrive {"topic", "limit"?}`` -> ``{"redriven": n}``;
``POST /queue/internal/{push,pop,ack,nack,extend}``: relayed calls, served where they land.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rakit.errors import InvalidRequest
from rakit.hops import HOPS_HEADER, answer_within, hops_in
from rakit.http.identity import require
from rakit.http.json import (
    Key,
    Name,
    check_value_size,
    decode,
    json_response,
    path_name,
    query_number,
    read_body,
)
from rakit.queue.service import Popped, QueueService

VisibilityTimeout = Annotated[float, msgspec.Meta(ge=0.1, le=43200)]
Wait = Annotated[float, msgspec.Meta(ge=0, le=20)]
DEFAULT_VISIBILITY = 30.0
MAX_DEAD_LIMIT = 1000
MAX_REDRIVE_LIMIT = 10_000


class PushBody(msgspec.Struct):
    topic: Name
    message: msgspec.Raw
    message_id: Key | None = None


class InternalPushBody(msgspec.Struct):
    topic: Name
    message: msgspec.Raw
    message_id: Key


class PopBody(msgspec.Struct):
    topic: Name
    consumer_id: Name
    visibility_timeout: VisibilityTimeout = DEFAULT_VISIBILITY
    wait: Wait = 0.0


class MessageBody(msgspec.Struct):
    topic: Name
    consumer_id: Name
    message_id: Key


class ExtendBody(msgspec.Struct):
    topic: Name
    consumer_id: Name
    message_id: Key
    visibility_timeout: VisibilityTimeout


class RedriveBody(msgspec.Struct):
    topic: Name
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_REDRIVE_LIMIT)] = 100


def _service(request: Request) -> QueueService:
    return request.app.state.runtime.queue  # type: ignore[no-any-return]


def _hops(request: Request) -> int:
    return hops_in(request.headers.get(HOPS_HEADER))


def _delivered(popped: Popped | None) -> Response:
    return Response(status_code=204) if popped is None else json_response(popped)


def _query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer, got {text!r}", field=name) from None
    if not low <= value <= high:
        raise InvalidRequest(f"{name} must be between {low} and {high}, got {text!r}", field=name)
    return value


def _message_bytes(raw: msgspec.Raw) -> bytes:
    message = bytes(raw)
    if not message:
        raise InvalidRequest("Object missing required field `message`", field="message")
    check_value_size(message, "message")
    return message


# -- public endpoints ------------------------------------------------------------


async def push(request: Request) -> Response:
    service = _service(request)
    p = decode(await read_body(request), PushBody)
    require(request, "queue", "write", p.topic)
    message = _message_bytes(p.message)
    return json_response(await service.push(p.topic, p.message_id or uuid.uuid4().hex, message, hops=_hops(request)))


async def pop(request: Request) -> Response:
    service = _service(request)
    topic = path_name(request.path_params["topic"], "topic")
    consumer_id = path_name(request.path_params["consumer_id"], "consumer_id")
    vt = query_number(request, "visibility_timeout", DEFAULT_VISIBILITY, 0.1, 43200)
    wait = query_number(request, "wait", 0.0, 0.0, 20.0)
    return _delivered(await service.pop(topic, consumer_id, vt, wait, hops=_hops(request)))


async def ack(request: Request) -> Response:
    service = _service(request)
    m = decode(await read_body(request), MessageBody)
    require(request, "queue", "write", m.topic)
    await service.ack(m.topic, m.consumer_id, m.message_id, hops=_hops(request))
    return json_response({"acked": True})


async def nack(request: Request) -> Response:
    service = _service(request)
    m = decode(await read_body(request), MessageBody)
    require(request, "queue", "write", m.topic)
    await service.nack(m.topic, m.consumer_id, m.message_id, hops=_hops(request))
    return json_response({"nacked": True})


async def extend(request: Request) -> Response:
    service = _service(request)
    e = decode(await read_body(request), ExtendBody)
    require(request, "queue", "write", e.topic)
    await service.extend(e.topic, e.consumer_id, e.message_id, e.visibility_timeout, hops=_hops(request))
    return json_response({"extended": True})


async def stats(request: Request) -> Response:
    service = _service(request)
    topic = path_name(request.path_params["topic"], "topic")
    counts = await service.stats(topic)
    return json_response({"topic": topic, **counts, "owner": service.owner(topic)})


async def dead(request: Request) -> Response:
    service = _service(request)
    topic = path_name(request.path_params["topic"], "topic")
    limit = _query_int(request, "limit", 100, 1, MAX_DEAD_LIMIT)
    letters = await service.dead_letters(topic, limit)
    return json_response(
        {
            "topic": topic,
            "messages": [
                {"message_id": d.message_id, "message": msgspec.Raw(d.body), "delivery_count": d.delivery_count}
                for d in letters
            ],
        }
    )


async def redrive(request: Request) -> Response:
    service = _service(request)
    r = decode(await read_body(request), RedriveBody)
    require(request, "queue", "write", r.topic)
    return json_response({"redriven": await service.redrive(r.topic, r.limit)})


# -- internal endpoints (relayed calls, served here) --------------------------------


async def internal_push(request: Request) -> Response:
    service = _service(request)
    p = decode(await read_body(request), InternalPushBody)
    return json_response(await service.push_here(p.topic, p.message_id, _message_bytes(p.message)))


async def internal_pop(request: Request) -> Response:
    service = _service(request)
    p = decode(await read_body(request), PopBody)
    return _delivered(
        await answer_within(p.wait, service.pop_here(p.topic, p.consumer_id, p.visibility_timeout, p.wait))
    )


async def internal_ack(request: Request) -> Response:
    m = decode(await read_body(request), MessageBody)
    await _service(request).ack_here(m.topic, m.consumer_id, m.message_id)
    return json_response({"acked": True})


async def internal_nack(request: Request) -> Response:
    m = decode(await read_body(request), MessageBody)
    await _service(request).nack_here(m.topic, m.consumer_id, m.message_id)
    return json_response({"nacked": True})


async def internal_extend(request: Request) -> Response:
    e = decode(await read_body(request), ExtendBody)
    await _service(request).extend_here(e.topic, e.consumer_id, e.message_id, e.visibility_timeout)
    return json_response({"extended": True})


routes = [
    Route("/queue/push", push, methods=["POST"]),
    Route("/queue/pop/{topic}/{consumer_id}", pop, methods=["GET"]),
    Route("/queue/ack", ack, methods=["POST"]),
    Route("/queue/nack", nack, methods=["POST"]),
    Route("/queue/extend", extend, methods=["POST"]),
    Route("/queue/stats/{topic}", stats, methods=["GET"]),
    Route("/queue/dead/{topic}", dead, methods=["GET"]),
    Route("/queue/redrive", redrive, methods=["POST"]),
    Route("/queue/internal/push", internal_push, methods=["POST"]),
    Route("/queue/internal/pop", internal_pop, methods=["POST"]),
    Route("/queue/internal/ack", internal_ack, methods=["POST"]),
    Route("/queue/internal/nack", internal_nack, methods=["POST"]),
    Route("/queue/internal/extend", internal_extend, methods=["POST"]),
]
