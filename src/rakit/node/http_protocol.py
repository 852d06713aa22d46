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
   ``503 {"error": "unavailable"}`` with ``Retry-After``.

5. **One write per answer.**  uvicorn writes a response's head and its
   body with two ``transport.write`` calls: two send syscalls and two TCP
   segments per answer.  Each request's cycle gets a ``_CorkedTransport``
   that holds the head and sends it with the body in one write (Starlette
   sends both in one task step); if no body follows within that loop
   iteration (a streaming answer), the held head goes out on its own.

The timers cost nothing on the common path: a head or a body that arrives in
the read that starts it never arms one (only a new connection does, until its
first head).  Everything else is uvicorn's.  Select it with
``uvicorn.Config(http=BoundedHttpToolsProtocol)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from rakit.http.json import dumps

MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 100
HEAD_TIMEOUT = 10.0
BODY_TIMEOUT = 10.0
MIN_BODY_RATE = 1024 * 1024  # bytes per second a long body must keep up, beyond BODY_TIMEOUT


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
    body = dumps({"error": code, "detail": detail})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *extra,
    ]
    return headers, body


async def json_service_unavailable(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    headers, body = _json_answer(
        503, "unavailable", "the node is at its concurrency limit; try again", [(b"retry-after", b"1")]
    )
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    max_head_bytes = MAX_HEAD_BYTES
    max_headers = MAX_HEADERS
    head_timeout = HEAD_TIMEOUT
    body_timeout = BODY_TIMEOUT
    min_body_rate = MIN_BODY_RATE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = False  # a message began and its head is not complete yet
        self._in_body = False  # its head is complete and its body is not
        self._messages_begun = 0
        self._head_bytes = 0
        self._header_count = 0
        self._head_deadline = 0.0
        self._body_started = 0.0
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._refusal: tuple[int, str, str] | None = None

    # -- refusing ---------------------------------------------------------------------

    def _answerable(self) -> bool:
        """No answer is under way on this connection: one of ours may be written."""
        return self.cycle is None or self.cycle.response_complete or not self.cycle.response_started

    def _refuse(self, status: int, code: str, detail: str) -> None:
        """Answer ``status`` (unless an answer is under way) and close the connection."""
        if self.transport.is_closing():
            return
        if self._answerable():
            headers, body = _json_answer(status, code, detail)
            content = [STATUS_LINE[status]]
            for name, value in [*self.server_state.default_headers, *headers]:
                content += [name, b": ", value, b"\r\n"]
            content += [b"\r\n", body]
            self.transport.write(b"".join(content))
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

    def _head_timed_out(self) -> None:
        self._head_timer = None
        self._refuse(408, "request_timeout", f"the request head did not arrive within {self.head_timeout:g} s")

    def _body_timed_out(self) -> None:
        self._body_timer = None
        self._refuse(408, "request_timeout", "the request body did not arrive in time")

    def _body_deadline(self) -> float:
        declared = next((value for name, value in self.headers if name == b"content-length"), b"0")
        length = int(declared) if declared.isdigit() else 0
        return self._body_started + self.body_timeout + length / self.min_body_rate

    # -- protocol and parser callbacks ------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_deadline = self.loop.time() + self.head_timeout
        self._head_timer = self.loop.call_at(self._head_deadline, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel(self._head_timer)
        self._cancel(self._body_timer)
        self._head_timer = self._body_timer = None
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
            self._head_deadline = self.loop.time() + self.head_timeout

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.max_headers:
            self._refusal = (431, "too_large", f"the request has over {self.max_headers} header fields")
            raise _HeadRefused()
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel(self._head_timer)
        self._head_timer = None
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.max_head_bytes:
            self._refusal = (431, "too_large", f"the request head is over {self.max_head_bytes} bytes")
            raise _HeadRefused()
        self._body_started = self.loop.time()
        self._in_body = not (self.parser.should_upgrade() and self._should_upgrade())  # a WebSocket: no body
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        self._cancel(self._body_timer)
        self._body_timer = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
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
