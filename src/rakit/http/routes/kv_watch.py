"""``GET /kv/watch``: a key's or a prefix's changes, as SSE or as a long poll (docs/api.md v2 "KV").

Rules
-----
1.  Events come from this node's KV history: every change with revision >=
    ``from_revision`` (default: this node's revision + 1) whose key is
    ``key`` or starts with ``prefix``, in revision order, none skipped, none
    twice.  A batch always ends with a whole revision.
2.  ``from_revision`` older than the history: one ``compacted`` event (with
    ``compact_revision``, the oldest revision one may watch from) and the
    stream ends.
3.  The stream sends a comment (``: ping``) every ``PING_SECONDS``, so a
    client whose read times out after ~2 pings knows the connection is dead.
4.  ``format=json``: a long poll answered as soon as there is an event (or a
    ``compacted``), or with no event after ``wait`` seconds; ``revision`` is
    this node's revision then.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response

from rakit.errors import InvalidRequest
from rakit.http.identity import require
from rakit.http.json import json_response, path_key
from rakit.http.kv_bodies import MAX_WATCH_WAIT
from rakit.http.prologue import Call
from rakit.http.routes.kv import query_int, query_prefix
from rakit.node.kv_watch import KvWatchHub
from rakit.statemachines.kv import KvEvent, KvStore

PING_SECONDS = 2.0
BATCH = 1000
MAX_REVISION = 2**63 - 1
_encode = msgspec.json.Encoder().encode


def event_answer(event: KvEvent) -> dict[str, Any]:
    answer: dict[str, Any] = {"type": event.type, "key": event.key}
    if event.value is not None:
        answer["value"] = msgspec.Raw(event.value)
    answer.update(
        mod_revision=event.revision,
        create_revision=event.create_revision,
        version=event.version,
        revision=event.revision,
    )
    return answer


def compacted_answer(store: KvStore) -> dict[str, Any]:
    return {"type": "compacted", "compact_revision": store.history.compact_revision, "revision": store.revision}


def _selector(request: Request) -> Callable[[str], bool]:
    key_text = request.query_params.get("key")
    has_prefix = "prefix" in request.query_params
    if (key_text is None) == (not has_prefix):
        raise InvalidRequest("give exactly one of key and prefix", field="key")
    if key_text is not None:
        key = path_key(key_text, "key")
        require(request, "kv", "read", key)
        return key.__eq__
    prefix = query_prefix(request)
    require(request, "kv", "read", prefix + "*")
    return lambda k: k.startswith(prefix)


async def watch(call: Call[None]) -> Response:
    request = call.request
    runtime = call.runtime
    hub: KvWatchHub = runtime.kv_watch
    match = _selector(request)
    fmt = request.query_params.get("format", "sse")
    if fmt not in ("sse", "json"):
        raise InvalidRequest(f"format must be sse or json, got {fmt!r}", field="format")
    store: KvStore = runtime.kv
    start = query_int(request, "from_revision", store.revision + 1, 0, MAX_REVISION)
    if fmt == "json":
        return await _long_poll(hub, match, start, call.wait)
    return EventSourceResponse(_stream(hub, match, start), ping=PING_SECONDS, send_timeout=30.0)


async def _long_poll(hub: KvWatchHub, match: Callable[[str], bool], start: int, wait: float) -> Response:
    """Rule 4."""
    store = hub.store
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    hub.watchers += 1
    try:
        while True:
            signal = hub.signal()
            scanned = store.scan_events(start, match, BATCH)
            if scanned is None:
                return json_response({"events": [compacted_answer(store)], "revision": store.revision})
            events, start = scanned
            remaining = deadline - loop.time()
            if events or remaining <= 0:
                hub.events_sent += len(events)
                return json_response({"events": [event_answer(e) for e in events], "revision": store.revision})
            await hub.wait(signal, remaining)
    finally:
        hub.watchers -= 1


async def _stream(hub: KvWatchHub, match: Callable[[str], bool], start: int) -> AsyncIterator[ServerSentEvent]:
    """Rules 1-3 (the pings are sse-starlette's, every PING_SECONDS)."""
    store = hub.store
    following = start
    hub.watchers += 1
    try:
        while True:
            signal = hub.signal()
            scanned = store.scan_events(following, match, BATCH)
            if scanned is None:
                yield ServerSentEvent(data=_encode(compacted_answer(store)).decode())
                return
            events, after = scanned
            for event in events:
                yield ServerSentEvent(data=_encode(event_answer(event)).decode(), id=str(event.revision))
            hub.events_sent += len(events)
            if after > following:
                following = after
                continue
            await hub.wait(signal, MAX_WATCH_WAIT)
    finally:
        hub.watchers -= 1
