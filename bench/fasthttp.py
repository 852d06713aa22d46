"""A lean HTTP/1.1 keep-alive client for load generation (asyncio + httptools).

The benchmarks run the load generator on the same 2 cores as the servers
under test, so its own cost per request matters: aiohttp's client spends
~150 us of CPU per request here, this one a fraction of that, which leaves
more of the machine to the system being measured (rakit, etcd or Redis
alike).  One ``Connection`` per worker; a broken connection is reopened on
the next request.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import httptools
import msgspec

_json = msgspec.json.Encoder()


class HttpError(Exception):
    """The connection failed or timed out."""


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.body: list[bytes] = []
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpError(f"bad response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(HttpError(f"connection lost: {exc}"))

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self.parser.get_status_code(), b"".join(self.body)))
        self.body = []


class Connection:
    """Sequential requests to one host:port over one keep-alive connection."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._proto: _Protocol | None = None
        self._target: tuple[str, int] | None = None

    async def request(self, method: str, url: str, body: Any = None) -> tuple[int, bytes]:
        parts = urlsplit(url)
        target = (parts.hostname or "127.0.0.1", parts.port or 80)
        path = parts.path + ("?" + parts.query if parts.query else "")
        payload = b"" if body is None else _json.encode(body)
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {target[0]}:{target[1]}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode()
        loop = asyncio.get_running_loop()
        if self._proto is None or self._proto.closed or self._target != target:
            self.close()
            try:
                _, self._proto = await asyncio.wait_for(
                    loop.create_connection(_Protocol, target[0], target[1]), self.timeout
                )
            except (TimeoutError, OSError) as exc:
                raise HttpError(f"cannot connect to {target}: {exc}") from None
            self._target = target
        proto = self._proto
        proto.waiter = loop.create_future()
        assert proto.transport is not None
        proto.transport.write(head + payload)
        timer = loop.call_later(self.timeout, proto._fail, HttpError("timed out"))
        try:
            return await proto.waiter
        except HttpError:
            self.close()
            raise
        finally:
            timer.cancel()

    def close(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
        self._proto = None
