"""The TLS port's first protocol: TLS goes on to HTTPS, plain HTTP gets a short 400 "use https".

A node with ``--tls-cert`` serves its listener without uvicorn's ``ssl``:
``gated(http_protocol, context)`` is the protocol class uvicorn makes for
every new connection, and the connection's first byte decides.

1. ``0x16`` (a TLS handshake record: the ClientHello) — the connection is
   wrapped in TLS with ``context`` and served by ``http_protocol`` once the
   handshake completes, as uvicorn's own ``ssl`` would (same SSL protocol,
   same fast path, nothing added per request).
2. An ASCII capital letter (an HTTP method: plain HTTP) — ``400
   {"error": "invalid_request", "detail": "this node serves HTTPS: use
   https://host:port"}`` (JSON, then closed; host and port from the
   request's ``Host`` when it is in the first read, else the address the
   client reached).
3. Anything else — closed.
4. Nothing within the protocol's head timeout (the budget's shorter one
   under pressure), or no completed handshake by then — closed.

With a connection budget (``http_protocol.governed(budget)``) the gate
admits the raw connection, before any handshake, so silent and handshaking
connections count against the caps like any other; a shed one is closed at
once (a TLS client could not read a plain 503).  The ticket passes to the
HTTP protocol when the handshake completes; if it does not, the gate
releases it.  A closed TLS connection waits at most ``SHUTDOWN_TIMEOUT`` for
the client's ``close_notify`` (30 s by default), so a reclaimed connection
gives its place back within seconds.

Private API: the SSL protocol is ``uvloop.loop.SSLProtocol`` on a uvloop
loop (``asyncio.sslproto.SSLProtocol`` on asyncio's), constructed as
uvloop's own server does (``loop, app_protocol, context, waiter,
server_side=True, ssl_handshake_timeout=...``), made the transport's
protocol with ``set_protocol`` and started with ``connection_made``; the
bytes the gate already read are fed to it through its ``get_buffer`` /
``buffer_updated`` (it is a buffered protocol).  ``uvloop``'s transport
gives that class its fast read path (no Python buffer per read).
``tests/unit/test_tls_gate.py`` pins that behaviour on both loops: HTTPS
requests, a failed handshake, the ticket's release.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from asyncio import sslproto
from typing import Any, ClassVar, cast

from rakit.node.connection_budget import SHED, Ticket
from rakit.server.http_protocol import BoundedHttpToolsProtocol, Closing, Governor, answer_bytes

TLS_HANDSHAKE = 0x16  # the content type of a TLS handshake record
LINGER = 1.0  # seconds a refused plain-HTTP connection may take to read its answer and close
SHUTDOWN_TIMEOUT = 2.0  # seconds a closed TLS connection waits for the client's close_notify (30 by default)
_HOST = re.compile(
    rb"\r\nhost:[ \t]*([A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](?::[0-9]{1,5})?)[ \t]*\r\n",
    re.IGNORECASE,
)


def _ssl_protocol_class(loop: asyncio.AbstractEventLoop) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return sslproto.SSLProtocol
    if isinstance(loop, uvloop.Loop):
        import uvloop.loop

        return getattr(uvloop.loop, "SSLProtocol")  # noqa: B009 - not in uvloop's type stubs
    return sslproto.SSLProtocol


def https_address(first: bytes, local: Any) -> str:
    """``host:port`` for the 400's ``https://``: the request's ``Host`` if the first read has it, else ``local``."""
    found = _HOST.search(first)
    if found is not None:
        return found.group(1).decode("ascii")
    if isinstance(local, tuple | list) and len(local) >= 2:
        host = str(local[0])
        return f"[{host}]:{local[1]}" if ":" in host else f"{host}:{local[1]}"
    return "host:port"


def plain_http_answer(first: bytes, local: Any) -> bytes:
    detail = f"this node serves HTTPS: use https://{https_address(first, local)}"
    return answer_bytes(400, "invalid_request", detail)


class TlsGate(asyncio.Protocol):
    protocol_class: ClassVar[type[BoundedHttpToolsProtocol]] = BoundedHttpToolsProtocol
    context: ClassVar[ssl.SSLContext | None] = None

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._args: dict[str, Any] = {"config": config, "server_state": server_state, "app_state": app_state}
        self.loop = _loop or asyncio.get_event_loop()
        self._governor: Governor | None = self.protocol_class._governor
        self._transport: asyncio.Transport | None = None
        self._ticket: Ticket | None = None
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._http: BoundedHttpToolsProtocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        timeout = self.protocol_class.head_timeout
        governor = self._governor
        if governor is not None:
            ticket = governor.admit(transport, self.loop)
            if ticket is None or ticket.kind == SHED:
                if ticket is not None:
                    governor.release(ticket)
                Closing(transport, b"", 0.0)
                return
            self._ticket = ticket
            governor.join(ticket, self)
            timeout = governor.budget.head_timeout(ticket, timeout)
        self._deadline = self.loop.time() + timeout
        self._timer = self.loop.call_at(self._deadline, self._timed_out)

    def hurry(self, now: float) -> None:
        """Pressure began: the first byte and the handshake get the budget's shorter time."""
        assert self._governor is not None
        deadline = now + self._governor.budget.limits.pressure_head_timeout
        if self._timer is not None and deadline < self._deadline:
            self._timer.cancel()
            self._deadline = deadline
            self._timer = self.loop.call_at(deadline, self._timed_out)

    def evict(self) -> None:
        """A newcomer took this connection's place in the reserve before it carried a reserved request."""
        if self._transport is not None:
            self._transport.abort()

    def _timed_out(self) -> None:
        self._timer = None
        if self._transport is not None:
            self._transport.close()  # before or during the handshake: the rest follows from connection_lost

    def _done(self) -> None:
        """The gate's part is over: no timer, no ticket of its own, nothing to hurry."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._governor is not None and self._ticket is not None:
            self._governor.leave(self._ticket, self)

    def _release(self) -> None:
        ticket, self._ticket = self._ticket, None
        if ticket is not None and self._governor is not None:
            self._governor.release(ticket)

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        first = data[0]
        if first == TLS_HANDSHAKE:
            self._start_tls(data)
        elif 0x41 <= first <= 0x5A:  # A-Z: the first letter of an HTTP method
            self._done()
            answer = plain_http_answer(data, self._transport.get_extra_info("sockname"))
            Closing(self._transport, answer, LINGER, self._release)
        else:
            self._done()
            Closing(self._transport, b"", 0.0, self._release)

    def eof_received(self) -> None:
        return None  # closed before a byte: the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        # Only while the gate is the connection's protocol (before its first byte).
        self._done()
        self._release()

    def _start_tls(self, data: bytes) -> None:
        transport = self._transport
        assert transport is not None and self.context is not None
        http = self.protocol_class(**self._args, _loop=self.loop)
        http._ticket = self._ticket  # admitted here: the HTTP protocol owns it once the handshake completes
        self._http = http
        waiter = self.loop.create_future()
        waiter.add_done_callback(self._handshake_over)
        remaining = max(0.1, self._deadline - self.loop.time())
        tls = _ssl_protocol_class(self.loop)(
            self.loop,
            http,
            self.context,
            waiter,
            server_side=True,
            server_hostname=None,
            ssl_handshake_timeout=remaining,
            ssl_shutdown_timeout=SHUTDOWN_TIMEOUT,
        )
        transport.set_protocol(tls)
        tls.connection_made(transport)
        view = memoryview(data)
        while view and not transport.is_closing():
            buffer = tls.get_buffer(len(view))
            n = min(len(buffer), len(view))
            buffer[:n] = view[:n]
            tls.buffer_updated(n)
            view = view[n:]

    def _handshake_over(self, waiter: asyncio.Future[None]) -> None:
        # Also when the connection was lost during the handshake (then without an exception, or with one).
        if not waiter.cancelled():
            waiter.exception()  # retrieved: a failed handshake is the client's problem, logged by the SSL protocol
        self._done()
        http = self._http
        if http is not None and http.transport is None:
            self._release()  # the HTTP protocol never started: the ticket is still the gate's
        self._ticket = None


def gated(protocol_class: type[BoundedHttpToolsProtocol], context: ssl.SSLContext) -> type[TlsGate]:
    """The protocol class for a TLS listener: ``protocol_class`` over TLS with ``context``, plain HTTP refused."""
    return cast(
        type[TlsGate],
        type("TlsGate", (TlsGate,), {"protocol_class": protocol_class, "context": context}),
    )
