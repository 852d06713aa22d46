"""The prologue every declared endpoint runs before its handler, and the routes built from the declarations.

A handler (``rakit.http.routes.*``) receives a ``Call``: the request already
read, decoded, authorized and, for a leader endpoint, on the leader.  What
the prologue does comes from the endpoint's declaration
(``rakit.http.endpoints.Endpoint``), never from the handler:

1. **Read.**  An endpoint with a JSON ``body`` Struct has its body read
   (bounded: 413 over the limit) and decoded (422 naming the field); a body
   Struct without a required field may also be sent empty.  Path parameters
   declared as a key or a name are checked whole (422) and put in
   ``Call.path``.
2. **Authorize.**  A ``Need`` whose name is a body field is checked on that
   field's value (403); names in the path were checked by the security
   middleware from the same declaration (``rakit.security.permissions``).
   Then the endpoint's ``admit`` check, if any, runs where the request came
   in, before anything is forwarded.
3. **Wait.**  ``wait`` names the body field or query parameter (seconds) the
   request may legitimately wait (a lock acquire's ``timeout``), or is a
   fixed number of seconds; ``Call.remaining()`` is that wait cut to what a
   relaying node says its caller still waits.
4. **Forward.**  A ``leader`` endpoint runs its handler on the Raft leader:
   here, or relayed there (``rakit.http.forward.on_leader``, retried at the
   next leader only when ``idempotent``), answered within its wait plus the
   forwarding bound.
5. **Disconnect.**  A request that may wait for a client-given time (> 0)
   stops waiting when its client goes away, answered ``499`` to nobody.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, get_args

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rakit.http.disconnect import ClientGone, unless_disconnected
from rakit.http.forward import on_leader, remaining_seconds
from rakit.http.identity import owner_of, require
from rakit.http.json import Key, Name, decode, path_key, path_name, query_number, read_body

if TYPE_CHECKING:
    from rakit.http.endpoints import Endpoint, Param

B = TypeVar("B")
CLIENT_GONE = 499


@dataclass(slots=True)
class Call(Generic[B]):
    """One request, past the prologue: what a handler needs of it."""

    request: Request
    raw: bytes  # the body as received (relayed to the leader as is)
    body: B  # the decoded body Struct (None without one)
    names: dict[str, str]  # the path and query parameters that are keys or names, checked whole
    wait: float  # seconds the request may wait (rule 3)

    @property
    def runtime(self) -> Any:
        return self.request.app.state.runtime

    @property
    def owner(self) -> str | None:
        """The lock owner to record: the caller's token name (None when tokens are off)."""
        return owner_of(self.request)

    def remaining(self) -> float:
        """``wait``, cut to what a relaying node says its caller still waits."""
        return remaining_seconds(self.request, self.wait)


Handler = Callable[[Call[Any]], Awaitable[Response]]


def plain(handler: Callable[[Request], Awaitable[Response]]) -> Handler:
    """A handler that reads its request itself (binary bodies, streams, pages, the queue's relaying
    handlers): served as it is, without the prologue."""

    async def run(call: Call[Any]) -> Response:
        return await handler(call.request)

    run.__name__ = run.__qualname__ = getattr(handler, "__name__", "handler")
    run.__wrapped__ = handler  # type: ignore[attr-defined]
    run.reads_request = True  # type: ignore[attr-defined]
    return run


def _named(param: Param) -> bool:
    return param.type is Key or param.type is Name


def _may_be_empty(schema: type) -> bool:
    return all(f.required is False for f in msgspec.structs.fields(schema))


def _bounds(param: Param) -> tuple[float, float]:
    low, high = float("-inf"), float("inf")
    for meta in get_args(param.type)[1:]:
        if isinstance(meta, msgspec.Meta):
            low = meta.ge if meta.ge is not None else low
            high = meta.le if meta.le is not None else high
    return low, high


def endpoint_route(ep: Endpoint) -> Route:
    """The Starlette route of ``ep``: its path (keys take the rest of the path), method and prologue."""
    handler = ep.handler
    if handler is None:
        raise ValueError(f"{ep.method} {ep.path} has no handler")
    if getattr(handler, "reads_request", False):
        return Route(ep.route_path, inspect.unwrap(handler), methods=[ep.method])
    schema = ep.body
    empty_ok = schema is not None and _may_be_empty(schema)
    paths = [(p.name, path_key if p.type is Key else path_name) for p in ep.params if p.where == "path" and _named(p)]
    queries = [
        (p.name, path_key if p.type is Key else path_name) for p in ep.params if p.where == "query" and _named(p)
    ]
    body_name = ep.access.name if ep.access is not None and ep.access.name in ep.body_fields else None
    family, action = (ep.access.family, ep.access.action) if ep.access is not None else ("", "")
    wait_field = ep.wait if isinstance(ep.wait, str) and ep.wait in ep.body_fields else None
    wait_query = next((p for p in ep.params if p.where == "query" and p.name == ep.wait), None)
    fixed_wait = float(ep.wait) if isinstance(ep.wait, int | float) else 0.0
    watch_disconnect = isinstance(ep.wait, str)
    leader, idempotent, admit = ep.leader, ep.idempotent, ep.admit

    async def run(request: Request) -> Response:
        raw = await read_body(request) if schema is not None else b""  # rule 1
        body = decode(raw or b"{}" if empty_ok else raw, schema) if schema is not None else None
        names = {n: check(request.path_params[n], n) for n, check in paths}
        for n, check in queries:
            names[n] = check(request.query_params.get(n, ""), n)
        call: Call[Any] = Call(request, raw, body, names, 0.0)
        if body_name is not None:  # rule 2
            require(request, family, action, getattr(body, body_name))
        if admit is not None:
            admit(call)
        if wait_field is not None:  # rule 3
            call.wait = float(getattr(body, wait_field))
        elif wait_query is not None:
            call.wait = query_number(request, wait_query.name, float(wait_query.default or 0.0), *_bounds(wait_query))
        else:
            call.wait = fixed_wait
        wait = call.wait
        work: Awaitable[Response]
        if leader:  # rule 4
            work = on_leader(call.runtime, request, raw, lambda: handler(call), wait=wait, idempotent=idempotent)
        else:
            work = handler(call)
        if not (watch_disconnect and wait > 0):
            return await work
        try:  # rule 5
            return await unless_disconnected(request, work)
        except ClientGone:
            return Response(status_code=CLIENT_GONE)  # nobody is listening

    run.__name__ = run.__qualname__ = getattr(handler, "__name__", "handler")
    run.__wrapped__ = handler  # type: ignore[attr-defined]
    return Route(ep.route_path, run, methods=[ep.method])
