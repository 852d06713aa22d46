"""uvicorn's httptools protocol with the bounds it lacks on what a client sends.

uvicorn bounds a request's head only with h11 (``h11_max_incomplete_event_size``):
httptools (llhttp) accumulates a header line of any size, uvicorn keeps any
number of headers, and nothing limits how long a client may take to send its
head or the rest of a body nobody reads.  ``BoundedHttpToolsProtocol`` adds:

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
3. **Unread body time.**  Once the answer is sent, the rest of a request body
   the handler did not read (e.g. after a 413) must arrive within
   ``HEAD_TIMEOUT`` seconds, else the connection is closed: uvicorn would
   otherwise discard a trickle forever.  (A body the handler reads is bounded
   by ``rakit.http.json.read_body``: ``BODY_TIMEOUT``, then 408.)
4. **Concurrency.**  Over ``limit_concurrency`` (connections or requests in
   progress) uvicorn answers 503 in plain text; here it is the API's
   ``503 {"error": "unavailable"}`` with ``Retry-After``.

Everything else is uvicorn's.  Select it with ``uvicorn.Config(http=BoundedHttpToolsProtocol)``.
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


class _HeadRefused(Exception):
    """Raised from a parser callback to stop parsing a head that is over a bound."""


def _json_answer(status: int, code: str, detail: str,
                 extra: Sequence[tuple[bytes, bytes]] = ()) -> tuple[list[tuple[bytes, bytes]], bytes]:
    body = dumps({"error": code, "detail": detail})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close"), *extra]
    return headers, body


async def json_service_unavailable(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    headers, body = _json_answer(503, "unavailable", "the node is at its concurrency limit; try again",
                                 [(b"retry-after", b"1")])
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    max_head_bytes = MAX_HEAD_BYTES
    max_headers = MAX_HEADERS
    head_timeout = HEAD_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = False  # a message began and its headers are not complete yet
        self._messages_begun = 0
        self._message_complete = True
        self._head_bytes = 0
        self._header_count = 0
        self._refusal: tuple[int, str, str] | None = None
        self._timer: asyncio.TimerHandle | None = None

    # -- timers ---------------------------------------------------------------------

    def _arm(self, seconds: float, callback: Any) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_timed_out(self) -> None:
        self._timer = None
        self._refuse(408, "request_timeout", f"the request head did not arrive within {self.head_timeout:g} s")

    def _drain_timed_out(self) -> None:
        self._timer = None
        if not self.transport.is_closing():
            self.transport.close()

    # -- refusing ---------------------------------------------------------------------

    def _refuse(self, status: int, code: str, detail: str) -> None:
        """Answer ``status`` (when no answer is under way) and close the connection."""
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            headers, body = _json_answer(status, code, detail)
            content = [STATUS_LINE[status]]
            for name, value in [*self.server_state.default_headers, *headers]:
                content += [name, b": ", value, b"\r\n"]
            content += [b"\r\n", body]
            self.transport.write(b"".join(content))
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to any parser error, including one raised by our callbacks.
        if self._refusal is not None:
            self._refuse(*self._refusal)
        else:
            super().send_400_response(msg)

    # -- protocol and parser callbacks ------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.head_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        begun = self._messages_begun
        super().data_received(data)
        # Counted only when the whole read belongs to one incomplete head (no message began in it:
        # a read may also carry the end of the previous request), so never more than the head.
        if self._in_head and self._messages_begun == begun and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._refuse(431, "too_large", f"the request head is over {self.max_head_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._messages_begun += 1
        self._in_head = True
        self._message_complete = False
        self._head_bytes = 0
        self._header_count = 0
        self._arm(self.head_timeout, self._head_timed_out)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.max_headers:
            self._refusal = (431, "too_large", f"the request has over {self.max_headers} header fields")
            raise _HeadRefused()
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.max_head_bytes:
            self._refusal = (431, "too_large", f"the request head is over {self.max_head_bytes} bytes")
            raise _HeadRefused()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._message_complete = True
        if self._timer is not None and not self._in_head:
            self._disarm()  # the drain timer: the unread body is in
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self._message_complete and not self._in_head and not self.transport.is_closing():
            self._arm(self.head_timeout, self._drain_timed_out)

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        if app is service_unavailable:
            app = json_service_unavailable
        super()._start_asgi_task(cycle, app)
