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
from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from rakit.errors import InvalidRequest, NotInFlight
from rakit.hops import HOPS_HEADER, answer_within, hops_in
from rakit.http.identity import require
from rakit.http.json import (
    Key,
    Name,
    check_value_size,
    decode,
    dumps,
    json_response,
    path_name,
    query_number,
    read_body,
)
from rakit.queue.service import Answer, QueueService

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


def _response(answer: Answer) -> Response:
    status, content = answer
    if status == 204:
        return Response(status_code=204)
    return Response(content, status_code=status, media_type="application/json")


def _not_in_flight(m: MessageBody) -> NotInFlight:
    return NotInFlight(f"message {m.message_id!r} is not in flight for {m.consumer_id!r} on topic {m.topic!r}")


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


# -- local handlers (what the owner does) -------------------------------------------


def _push_local(service: QueueService, topic: str, message_id: str, message: bytes):  # type: ignore[no-untyped-def]
    async def run() -> Answer:
        await service.push(topic, message_id, message)
        return 200, dumps({"topic": topic, "message_id": message_id, "node": service.node_id})

    return run


def _pop_local(service: QueueService, p: PopBody):  # type: ignore[no-untyped-def]
    async def run() -> Answer:
        d = await service.pop(p.topic, p.consumer_id, p.visibility_timeout, p.wait)
        if d is None:
            return 204, b""
        return 200, dumps(
            {
                "topic": p.topic,
                "message_id": d.message_id,
                "message": msgspec.Raw(d.body),
                "delivery_count": d.delivery_count,
            }
        )

    return run


def _ack_local(service: QueueService, m: MessageBody):  # type: ignore[no-untyped-def]
    async def run() -> Answer:
        if await service.ack(m.topic, m.consumer_id, m.message_id):
            return 200, dumps({"acked": True})
        raise _not_in_flight(m)

    return run


def _nack_local(service: QueueService, m: MessageBody):  # type: ignore[no-untyped-def]
    async def run() -> Answer:
        if await service.nack(m.topic, m.consumer_id, m.message_id):
            return 200, dumps({"nacked": True})
        raise _not_in_flight(m)

    return run


def _extend_local(service: QueueService, e: ExtendBody):  # type: ignore[no-untyped-def]
    async def run() -> Answer:
        if await service.extend(e.topic, e.consumer_id, e.message_id, e.visibility_timeout):
            return 200, dumps({"extended": True})
        raise _not_in_flight(MessageBody(e.topic, e.consumer_id, e.message_id))

    return run


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
    message_id = p.message_id or uuid.uuid4().hex
    payload: dict[str, Any] = {"topic": p.topic, "message": msgspec.Raw(message), "message_id": message_id}
    return _response(
        await service.serve("push", payload, _hops(request), _push_local(service, p.topic, message_id, message))
    )


async def pop(request: Request) -> Response:
    service = _service(request)
    topic = path_name(request.path_params["topic"], "topic")
    consumer_id = path_name(request.path_params["consumer_id"], "consumer_id")
    vt = query_number(request, "visibility_timeout", DEFAULT_VISIBILITY, 0.1, 43200)
    wait = query_number(request, "wait", 0.0, 0.0, 20.0)
    p = PopBody(topic, consumer_id, vt, wait)
    payload = {"topic": topic, "consumer_id": consumer_id, "visibility_timeout": vt}
    return _response(await service.serve("pop", payload, _hops(request), _pop_local(service, p), wait=wait))


async def ack(request: Request) -> Response:
    service = _service(request)
    m = decode(await read_body(request), MessageBody)
    require(request, "queue", "write", m.topic)
    return _response(await service.serve("ack", msgspec.structs.asdict(m), _hops(request), _ack_local(service, m)))


async def nack(request: Request) -> Response:
    service = _service(request)
    m = decode(await read_body(request), MessageBody)
    require(request, "queue", "write", m.topic)
    return _response(await service.serve("nack", msgspec.structs.asdict(m), _hops(request), _nack_local(service, m)))


async def extend(request: Request) -> Response:
    service = _service(request)
    e = decode(await read_body(request), ExtendBody)
    require(request, "queue", "write", e.topic)
    return _response(
        await service.serve("extend", msgspec.structs.asdict(e), _hops(request), _extend_local(service, e))
    )


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
    return _response(await _push_local(service, p.topic, p.message_id, _message_bytes(p.message))())


async def internal_pop(request: Request) -> Response:
    service = _service(request)
    p = decode(await read_body(request), PopBody)
    return _response(await answer_within(p.wait, _pop_local(service, p)()))


async def internal_ack(request: Request) -> Response:
    service = _service(request)
    return _response(await _ack_local(service, decode(await read_body(request), MessageBody))())


async def internal_nack(request: Request) -> Response:
    service = _service(request)
    return _response(await _nack_local(service, decode(await read_body(request), MessageBody))())


async def internal_extend(request: Request) -> Response:
    service = _service(request)
    return _response(await _extend_local(service, decode(await read_body(request), ExtendBody))())
