"""uvicorn's httptools protocol with the bounds it lacks on what a client sends.

uvicorn bounds a request's head only with h11 (``h11_max_incomplete_event_size``):
httptools (llhttp) accumulates a header line of any size, uvicorn keeps any
number of headers, and nothing limits how long a client may take to send its
head or its body.  ``BoundedHttpToolsProtocol`` adds:

1. **Head size.**  A request's head (request line and headers) is at most
   ``MAX_HEAD_BYTES`` and ``MAX_HEADERS`` header fields, else the answer is
   ``431 {"error": "too_large"}`` and the connection is closed.  The bytes
   received while a head is incomplete are counted as they come (a head that
   never ends is refused once past the bound: it never costs more than
   ``MAX_HEAD_BYTES`` plus one read of memory), and a complete head is
   measured exactly.
2. **Head time.**  A new connection must deliver a complete head within
   ``HEAD_TIMEOUT`` seconds, and so must every later request from its first
   byte (between requests uvicorn's ``timeout_keep_alive`` applies): else
   ``408 {"error": "request_timeout"}`` and the connection is closed.
3. **Body time.**  A request's body must arrive within ``BODY_TIMEOUT``
   seconds of its head, plus one second per ``MIN_BODY_RATE`` bytes it
   declares (a 256 MiB snapshot gets its 266 s, a client's body its 10 s):
   else ``408 request_timeout`` if the answer has not started, and the
   connection is closed.  A client trickling its body byte by byte is cut
   off whatever reads the body (a handler's ``read_body``, the security
   middleware).  Once the answer is sent, the rest of a body nobody reads
   (e.g. after a 413) gets at most ``BODY_TIMEOUT`` more seconds.
4. **Concurrency.**  Over ``limit_concurrency`` (connections or requests in
   progress) uvicorn answers 503 in plain text; here it is the API's
   ``503 {"error": "unavailable"}`` with ``Retry-After``.  (The node sets no
   ``limit_concurrency``: its connection budget, rule 6, decides instead.)

5. **One write per answer.**  uvicorn writes a response's head and its
   body with two ``transport.write`` calls: two send syscalls and two TCP
   segments per answer.  Each request's cycle gets a ``_CorkedTransport``
   that holds the head and sends it with the body in one write (Starlette
   sends both in one task step); if no body follows within that loop
   iteration (a streaming answer), the held head goes out on its own.

6. **Connections.**  With a budget (``governed(budget)``, see
   ``rakit.node.connection_budget`` for its rules) every new connection asks
   it first: a shed one is answered ``503 unavailable`` with ``Retry-After``,
   half-closed and closed at its client's EOF or after a second (so the
   answer is not lost to a reset), or closed at once; a trial one (the
   reserve) serves only ``GET /health`` and requests with the four
   node-to-node signature headers (well-formed: the security middleware
   checks the MAC), any other is ``503`` and closed; one the budget evicts
   (a newcomer took its place) is aborted.  The budget's timeouts
   replace the head timeout and the keep-alive timeout while they are
   shorter (under pressure), and when pressure begins the timers of
   connections already waiting are shortened too (``hurry``; at most once a
   ``pressure_idle_timeout``).  The ticket is released on every way out:
   ``connection_lost``, and for a WebSocket the WebSocket protocol's
   ``connection_lost`` (the upgrade hands the ticket over).

The timers cost nothing on the common path: a head or a body that arrives in
the read that starts it never arms one (only a new connection does, until its
first head).  Everything else is uvicorn's.  Select it with
``uvicorn.Config(http=BoundedHttpToolsProtocol)``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol, cast

from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from rakit.errors import error_body
from rakit.http.json import dumps
from rakit.node.connection_budget import SHED, TRIAL, ConnectionBudget, Ticket, client_key
from rakit.security.internal import NODE_HEADER, NONCE_HEADER, SIG_HEADER, TS_HEADER

MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 100
HEAD_TIMEOUT = 10.0
BODY_TIMEOUT = 10.0
MIN_BODY_RATE = 1024 * 1024  # bytes per second a long body must keep up, beyond BODY_TIMEOUT
RETRY_AFTER = ((b"retry-after", b"1"),)

# What a trial connection may carry (rule 6): the node-to-node signature headers, well-formed enough.
_PEER_HEADERS = frozenset(name.encode() for name in (NODE_HEADER, TS_HEADER, NONCE_HEADER, SIG_HEADER))
_SIG_NAME = SIG_HEADER.encode()
_SIG_VALUE = re.compile(rb"[0-9a-f]{64}")


class _CorkedTransport:
    """The connection's transport, as one request/response cycle writes to it (rule 5)."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(b"".join((held, data)))  # data may be any bytes-like object
        elif self._transport.is_closing():
            self._transport.write(data)
        else:
            self._held = bytes(data)
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _HeadRefused(Exception):
    """Raised from a parser callback to stop parsing a head that is over a bound."""


def _json_answer(
    status: int, code: str, detail: str, extra: Sequence[tuple[bytes, bytes]] = ()
) -> tuple[list[tuple[bytes, bytes]], bytes]:
    body = dumps(error_body(code, detail))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *extra,
    ]
    return headers, body


def answer_bytes(
    status: int,
    code: str,
    detail: str,
    extra: Sequence[tuple[bytes, bytes]] = (),
    default_headers: Sequence[tuple[bytes, bytes]] = (),
) -> bytes:
    """A whole ``{"error": code, "detail": detail}`` answer, ``Connection: close``, as bytes."""
    headers, body = _json_answer(status, code, detail, extra)
    content = [STATUS_LINE[status]]
    for name, value in [*default_headers, *headers]:
        content += [name, b": ", value, b"\r\n"]
    content += [b"\r\n", body]
    return b"".join(content)


SHED_ANSWER = answer_bytes(503, "unavailable", "the node is at its connection limit; try again", RETRY_AFTER)


class Member(Protocol):
    """A connection the governor may hurry (pressure began) or evict (its reserve place is taken)."""

    def hurry(self, now: float) -> None: ...

    def evict(self) -> None: ...


class Governor:
    """One server's connection budget and the connections it may hurry or evict."""

    def __init__(self, budget: ConnectionBudget) -> None:
        self.budget = budget
        self.members: dict[Ticket, Member] = {}  # every admitted connection, by its ticket
        self._swept_onsets = 0
        self._last_sweep = float("-inf")
        self._sweep: asyncio.TimerHandle | None = None

    def admit(self, transport: asyncio.BaseTransport, loop: asyncio.AbstractEventLoop) -> Ticket | None:
        peer = transport.get_extra_info("peername")
        host = peer[0] if isinstance(peer, tuple | list) and peer else None
        budget = self.budget
        ticket = budget.admit(client_key(host if isinstance(host, str) else None), loop.time())
        if ticket is not None and ticket.kind == TRIAL:
            for evicted in budget.take_evicted():
                member = self.members.get(evicted)
                if member is not None:
                    member.evict()
        if budget.onsets != self._swept_onsets and self._sweep is None:
            when = max(loop.time(), self._last_sweep + budget.limits.pressure_idle_timeout)
            self._sweep = loop.call_at(when, self._hurry_all, loop)
        return ticket

    def join(self, ticket: Ticket, member: Member) -> None:
        self.members[ticket] = member

    def leave(self, ticket: Ticket, member: Member) -> None:
        if self.members.get(ticket) is member:
            del self.members[ticket]

    def release(self, ticket: Ticket, member: Member | None = None) -> None:
        self.budget.release(ticket)
        if member is not None:
            self.leave(ticket, member)

    def _hurry_all(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sweep = None
        self._swept_onsets = self.budget.onsets
        self._last_sweep = now = loop.time()
        if self.budget.pressed:
            for member in list(self.members.values()):
                member.hurry(now)


class Closing(asyncio.Protocol):
    """A connection's last protocol: one answer (or none), then closed without losing it to a reset.

    With an answer the connection is half-closed after it (the client reads
    it, then its EOF), what the client still sends is read and dropped, and
    the connection is closed at the client's EOF or after ``linger`` seconds:
    closing at once with unread input would reset the connection, and the
    client could lose the answer.  Without one it is closed at once.
    ``on_closed`` runs when the connection is gone.
    """

    def __init__(
        self,
        transport: asyncio.Transport,
        answer: bytes,
        linger: float,
        on_closed: Callable[[], None] | None = None,
    ) -> None:
        self._on_closed = on_closed
        self._timer: asyncio.TimerHandle | None = None
        transport.set_protocol(self)
        if not answer:
            transport.close()
            return
        transport.write(answer)
        if transport.can_write_eof():
            transport.write_eof()
            self._timer = asyncio.get_running_loop().call_later(linger, transport.close)
        else:
            transport.close()

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> None:
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._on_closed is not None:
            self._on_closed()


def json_refusal(status: int, code: str, detail: str, extra: Sequence[tuple[bytes, bytes]] = ()) -> ASGI3Application:
    """An ASGI app that answers every request ``status`` with the API's JSON error, ``Connection: close``."""
    headers, body = _json_answer(status, code, detail, extra)

    async def refuse(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return refuse


json_service_unavailable = json_refusal(
    503, "unavailable", "the node is at its concurrency limit; try again", RETRY_AFTER
)
# What a trial connection's request gets when it is neither a peer's nor GET /health (rule 6).
reserve_only = json_refusal(
    503,
    "unavailable",
    "the node is at its connection limit (what is left is kept for peers and /health); try again",
    RETRY_AFTER,
)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    max_head_bytes = MAX_HEAD_BYTES
    max_headers = MAX_HEADERS
    head_timeout = HEAD_TIMEOUT
    body_timeout = BODY_TIMEOUT
    min_body_rate = MIN_BODY_RATE
    _governor: ClassVar[Governor | None] = None  # None: no connection budget (rule 6)

    @classmethod
    def governed(cls, budget: ConnectionBudget) -> type[BoundedHttpToolsProtocol]:
        """This protocol with ``budget`` deciding which connections it takes (one class per server)."""
        return cast(type[BoundedHttpToolsProtocol], type(cls.__name__, (cls,), {"_governor": Governor(budget)}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ticket: Ticket | None = None  # set here, or by the TLS gate before the handshake
        self._keep_alive = self.timeout_keep_alive
        self._in_head = False  # a message began and its head is not complete yet
        self._in_body = False  # its head is complete and its body is not
        self._messages_begun = 0
        self._head_bytes = 0
        self._header_count = 0
        self._head_deadline = 0.0
        self._body_started = 0.0
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._refusal: tuple[int, str, str, Sequence[tuple[bytes, bytes]]] | None = None

    # -- refusing ---------------------------------------------------------------------

    def _answerable(self) -> bool:
        """No answer is under way on this connection: one of ours may be written."""
        return self.cycle is None or self.cycle.response_complete or not self.cycle.response_started

    def _refuse(self, status: int, code: str, detail: str, extra: Sequence[tuple[bytes, bytes]] = ()) -> None:
        """Answer ``status`` (unless an answer is under way) and close the connection."""
        if self.transport.is_closing():
            return
        if self._answerable():
            self.transport.write(answer_bytes(status, code, detail, extra, self.server_state.default_headers))
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the handler's receive() says so; its answer goes nowhere
            self.cycle.message_event.set()
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to any parser error, including one raised by our callbacks.
        if self._refusal is not None:
            self._refuse(*self._refusal)
        else:
            super().send_400_response(msg)

    # -- timers -----------------------------------------------------------------------

    def _cancel(self, timer: asyncio.TimerHandle | None) -> None:
        if timer is not None:
            timer.cancel()

    def _head_limit(self) -> float:
        governor, ticket = self._governor, self._ticket
        if governor is None or ticket is None:
            return self.head_timeout
        return governor.budget.head_timeout(ticket, self.head_timeout)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        self._refuse(408, "request_timeout", "the request head did not arrive in time")

    def _body_timed_out(self) -> None:
        self._body_timer = None
        self._refuse(408, "request_timeout", "the request body did not arrive in time")

    def _body_deadline(self) -> float:
        declared = next((value for name, value in self.headers if name == b"content-length"), b"0")
        length = int(declared) if declared.isdigit() else 0
        return self._body_started + self.body_timeout + length / self.min_body_rate

    # -- the connection budget (rule 6) -------------------------------------------------------

    def hurry(self, now: float) -> None:
        """Pressure began: a first byte, a head or an idle keep-alive gets the budget's shorter time."""
        assert self._governor is not None
        limits = self._governor.budget.limits
        if self._head_timer is not None and now + limits.pressure_head_timeout < self._head_deadline:
            self._head_timer.cancel()
            self._head_deadline = now + limits.pressure_head_timeout
            self._head_timer = self.loop.call_at(self._head_deadline, self._head_timed_out)
        idle = self.timeout_keep_alive_task
        if idle is not None and now + limits.pressure_idle_timeout < idle.when():
            idle.cancel()
            self.timeout_keep_alive_task = self.loop.call_at(
                now + limits.pressure_idle_timeout, self.timeout_keep_alive_handler
            )

    def evict(self) -> None:
        """A newcomer took this trial connection's place in the reserve (it carried no reserved request)."""
        self.transport.abort()  # nothing owed to it, and no TLS goodbye to wait for

    def _reserved(self) -> bool:
        """What a trial connection may carry: ``GET /health``, or a peer's call (its signature headers)."""
        if self.url.partition(b"?")[0] == b"/health" and self.parser.get_method() == b"GET":
            return True
        found = {name: value for name, value in self.headers if name in _PEER_HEADERS}
        return len(found) == len(_PEER_HEADERS) and _SIG_VALUE.fullmatch(found[_SIG_NAME]) is not None

    def handle_websocket_upgrade(self) -> None:
        super().handle_websocket_upgrade()
        ticket, governor = self._ticket, self._governor
        websocket = self.transport.get_protocol()
        if ticket is None or governor is None or websocket is self:
            return
        # The WebSocket protocol owns the connection from now on: its end releases the ticket.
        self._ticket = None
        governor.leave(ticket, self)
        lost = websocket.connection_lost

        def connection_lost(exc: Exception | None) -> None:
            try:
                lost(exc)
            finally:
                governor.release(ticket)

        websocket.connection_lost = connection_lost  # type: ignore[method-assign]

    # -- protocol and parser callbacks ------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        governor = self._governor
        if governor is not None and self._ticket is None:  # else: admitted before its TLS handshake
            ticket = governor.admit(transport, self.loop)
            if ticket is None or ticket.kind == SHED:
                on_closed = None if ticket is None else (lambda: governor.release(ticket))
                answer = SHED_ANSWER if ticket is not None else b""
                Closing(transport, answer, governor.budget.limits.pressure_idle_timeout, on_closed)
                return
            self._ticket = ticket
        super().connection_made(transport)
        if governor is not None and self._ticket is not None:
            governor.join(self._ticket, self)
        self._head_deadline = self.loop.time() + self._head_limit()
        self._head_timer = self.loop.call_at(self._head_deadline, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel(self._head_timer)
        self._cancel(self._body_timer)
        self._head_timer = self._body_timer = None
        ticket = self._ticket
        if ticket is not None and self._governor is not None:
            self._ticket = None
            self._governor.release(ticket, self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        begun = self._messages_begun
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._in_head:
            # Counted only when the whole read belongs to one incomplete head (no message began in
            # it: a read may also carry the end of the previous request), so never more than the head.
            if self._messages_begun == begun:
                self._head_bytes += len(data)
                if self._head_bytes > self.max_head_bytes:
                    self._refuse(431, "too_large", f"the request head is over {self.max_head_bytes} bytes")
                    return
            if self._head_timer is None:
                self._head_timer = self.loop.call_at(self._head_deadline, self._head_timed_out)
        if self._in_body and self._body_timer is None:
            self._body_timer = self.loop.call_at(self._body_deadline(), self._body_timed_out)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._messages_begun += 1
        self._in_head = True
        self._head_bytes = 0
        self._header_count = 0
        if self._head_timer is None:  # else: the connection's first head, timed from its start
            self._head_deadline = self.loop.time() + self._head_limit()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.max_headers:
            self._refusal = (431, "too_large", f"the request has over {self.max_headers} header fields", ())
            raise _HeadRefused()
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel(self._head_timer)
        self._head_timer = None
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.max_head_bytes:
            self._refusal = (431, "too_large", f"the request head is over {self.max_head_bytes} bytes", ())
            raise _HeadRefused()
        upgrade = self.parser.should_upgrade() and self._should_upgrade()  # a WebSocket: no body
        ticket = self._ticket
        refused = False
        if ticket is not None and ticket.kind == TRIAL:
            if self._reserved():
                assert self._governor is not None
                self._governor.budget.prove(ticket)
            else:
                refused = True
        if refused and upgrade:
            self._refusal = (503, "unavailable", "a WebSocket needs a peer's signature here; try again", ())
            raise _HeadRefused()
        self._body_started = self.loop.time()
        self._in_body = not upgrade
        if not refused:
            super().on_headers_complete()
            return
        # Answered by an app of our own through uvicorn's cycle, which closes after it (Connection: close).
        self.app, app = reserve_only, self.app
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def on_message_complete(self) -> None:
        self._in_body = False
        self._cancel(self._body_timer)
        self._body_timer = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        governor, ticket = self._governor, self._ticket
        if governor is not None and ticket is not None:  # read by uvicorn when it arms the idle timer
            idle = governor.budget.idle_timeout(ticket, self._keep_alive)
            self.timeout_keep_alive = idle  # type: ignore[assignment]  # uvicorn says int; call_later takes any
        super().on_response_complete()
        if self._in_body and not self.transport.is_closing():
            # The answer is out and the body is still coming: nobody reads it any more.
            deadline = self.loop.time() + self.body_timeout
            if self._body_timer is None or self._body_timer.when() > deadline:
                self._cancel(self._body_timer)
                self._body_timer = self.loop.call_at(deadline, self._body_timed_out)

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        if app is service_unavailable:
            app = json_service_unavailable
        cycle.transport = _CorkedTransport(cycle.transport, self.loop)
        super()._start_asgi_task(cycle, app)
