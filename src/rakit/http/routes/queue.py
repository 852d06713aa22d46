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
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from rakit.errors import InvalidRequest
from rakit.hops import HOPS_HEADER, answer_within, hops_in
from rakit.http.bodies import (
    DEFAULT_VISIBILITY,
    MAX_DEAD_LIMIT,
    ExtendBody,
    InternalPushBody,
    MessageBody,
    PopBody,
    PushBody,
    RedriveBody,
)
from rakit.http.json import check_value_size, json_response, query_number
from rakit.http.prologue import Call
from rakit.queue.service import Popped


def _hops(call: Call[Any]) -> int:
    return hops_in(call.request.headers.get(HOPS_HEADER))


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


async def push(call: Call[PushBody]) -> Response:
    p, message = call.body, _message_bytes(call.body.message)
    pushed = await call.runtime.queue.push(p.topic, p.message_id or uuid.uuid4().hex, message, hops=_hops(call))
    return json_response(pushed)


async def pop(call: Call[None]) -> Response:
    request, names = call.request, call.names
    vt = query_number(request, "visibility_timeout", DEFAULT_VISIBILITY, 0.1, 43200)
    wait = query_number(request, "wait", 0.0, 0.0, 20.0)
    return _delivered(await call.runtime.queue.pop(names["topic"], names["consumer_id"], vt, wait, hops=_hops(call)))


async def ack(call: Call[MessageBody]) -> Response:
    m = call.body
    await call.runtime.queue.ack(m.topic, m.consumer_id, m.message_id, hops=_hops(call))
    return json_response({"acked": True})


async def nack(call: Call[MessageBody]) -> Response:
    m = call.body
    await call.runtime.queue.nack(m.topic, m.consumer_id, m.message_id, hops=_hops(call))
    return json_response({"nacked": True})


async def extend(call: Call[ExtendBody]) -> Response:
    e = call.body
    await call.runtime.queue.extend(e.topic, e.consumer_id, e.message_id, e.visibility_timeout, hops=_hops(call))
    return json_response({"extended": True})


async def stats(call: Call[None]) -> Response:
    service, topic = call.runtime.queue, call.names["topic"]
    counts = await service.stats(topic)
    return json_response({"topic": topic, **counts, "owner": service.owner(topic)})


async def dead(call: Call[None]) -> Response:
    topic = call.names["topic"]
    limit = _query_int(call.request, "limit", 100, 1, MAX_DEAD_LIMIT)
    letters = await call.runtime.queue.dead_letters(topic, limit)
    return json_response(
        {
            "topic": topic,
            "messages": [
                {"message_id": d.message_id, "message": msgspec.Raw(d.body), "delivery_count": d.delivery_count}
                for d in letters
            ],
        }
    )


async def redrive(call: Call[RedriveBody]) -> Response:
    r = call.body
    return json_response({"redriven": await call.runtime.queue.redrive(r.topic, r.limit)})


# -- internal endpoints (relayed calls, served here) --------------------------------


async def internal_push(call: Call[InternalPushBody]) -> Response:
    p = call.body
    return json_response(await call.runtime.queue.push_here(p.topic, p.message_id, _message_bytes(p.message)))


async def internal_pop(call: Call[PopBody]) -> Response:
    p, service = call.body, call.runtime.queue
    return _delivered(
        await answer_within(p.wait, service.pop_here(p.topic, p.consumer_id, p.visibility_timeout, p.wait))
    )


async def internal_ack(call: Call[MessageBody]) -> Response:
    m = call.body
    await call.runtime.queue.ack_here(m.topic, m.consumer_id, m.message_id)
    return json_response({"acked": True})


async def internal_nack(call: Call[MessageBody]) -> Response:
    m = call.body
    await call.runtime.queue.nack_here(m.topic, m.consumer_id, m.message_id)
    return json_response({"nacked": True})


async def internal_extend(call: Call[ExtendBody]) -> Response:
    e = call.body
    await call.runtime.queue.extend_here(e.topic, e.consumer_id, e.message_id, e.visibility_timeout)
    return json_response({"extended": True})
