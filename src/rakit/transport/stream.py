"""One batching WebSocket stream to a peer, kept open: the client half both node-to-node channels share.

``PeerStream.run()`` connects to the peer's stream route (signed with the
cluster secret, afresh for every attempt, and the peer's proof checked:
``rakit.security.internal.verify_stream``), then writes frames while it has
any (``ready``/``next_frame``: each frame batches what was queued) without
waiting for answers, and hands each answer frame, in order, to ``answer``.
A broken stream (the peer closes, a frame that is not binary, ``answer``
refusing one, a transport error, ``check`` finding an answer overdue)
reconnects after a short back-off, doubling from ``BACKOFF_FIRST`` up to
``BACKOFF_MAX``; ``broken`` then drops or fails what was queued (each
channel's queue is bounded).

The channels built on it: Raft's ``rakit.transport.http.PeerSender``
(fire and forget, Raft resends) and the cache's ``rakit.cache.peers.PeerChannel``
(a future per operation).  The wire is theirs: frames are opaque bytes here.

The server half, one for both, is ``rakit.http.peer_stream.serve_peer_stream``
(it lives at the HTTP edge because it runs on Starlette's WebSocket, which
nothing under ``rakit.http`` may import).  The channels differ there only in
flow control, its ``pipelined`` parameter: Raft's answers wait for the
driver's fsync, so the server keeps reading frames while they wait (one
peer's batches share a turn); the cache answers each frame at once and
writes the answer before reading on (a peer that does not read is not read).
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod

import aiohttp
import msgspec

from rakit.security.internal import InternalAuth, verify_stream

log = logging.getLogger(__name__)

BACKOFF_FIRST = 0.02
BACKOFF_MAX = 0.25
#: what breaks a stream (and is retried) rather than the node
STREAM_ERRORS = (TimeoutError, aiohttp.ClientError, OSError, msgspec.DecodeError)


def backoff(failures: int) -> float:
    """Seconds to wait before reconnecting after ``failures`` failures in a row (at least one)."""
    return float(min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** min(failures - 1, 8)))


class PeerStream(ABC):
    """The stream's loop; a channel fills in the hooks below (the four abstract ones are required)."""

    name = "peer"  # in task names and messages

    def __init__(self, peer_id: str, path: str, auth: InternalAuth | None) -> None:
        self.peer_id = peer_id
        self.path = path
        self.auth = auth if auth is not None and auth.enabled else None
        self.wake = asyncio.Event()  # set when there may be a frame to write
        self.failures = 0  # attempts failed in a row
        self.frames_sent = 0
        self.poll: float | None = None  # seconds between ``check`` calls while idle (None: only on wake)

    # -- hooks -----------------------------------------------------------------

    @abstractmethod
    async def connect(self, headers: dict[str, str] | None) -> aiohttp.ClientWebSocketResponse:
        """Open the WebSocket to the peer's stream route with ``headers`` (the signature)."""

    def connecting(self) -> None:  # noqa: B027 (an optional hook: nothing by default)
        """An attempt to connect starts."""

    def opened(self, ws: aiohttp.ClientWebSocketResponse) -> None:  # noqa: B027 (an optional hook: nothing by default)
        """The stream is open and the peer proven."""

    def closed(self) -> None:  # noqa: B027 (an optional hook: nothing by default)
        """The open stream ended (before it is closed)."""

    def failed(self, exc: BaseException) -> None:  # noqa: B027 (an optional hook: nothing by default)
        """The attempt or the stream failed with ``exc`` (for the log; ``failures`` not yet counted)."""

    def broken(self) -> None:  # noqa: B027 (an optional hook: nothing by default)
        """After a failure is counted, before the back-off: drop or fail what waits."""

    def check(self) -> None:  # noqa: B027 (an optional hook: nothing by default)
        """Raise (e.g. TimeoutError) to break the open stream."""

    @abstractmethod
    def ready(self) -> bool:
        """True when there is a frame to write now."""

    @abstractmethod
    def next_frame(self) -> bytes:
        """The next frame to write: what is queued, batched."""

    @abstractmethod
    def answer(self, data: bytes) -> bool:
        """Take one answer frame; False (or an exception) breaks the stream."""

    # -- the loop --------------------------------------------------------------

    async def run(self) -> None:
        """Keep a stream to the peer open and feed it; reconnect when it breaks."""
        while True:
            self.connecting()
            try:
                headers = self.auth.headers("GET", self.path, dst=self.peer_id) if self.auth else None
                ws = await self.connect(headers)
                try:
                    verify_stream(self.auth, headers, ws, self.peer_id)
                    self.opened(ws)
                    self.failures = 0
                    await self._serve(ws)
                finally:
                    self.closed()
                    await ws.close()
            except STREAM_ERRORS as exc:
                self.failed(exc)
            self.failures += 1
            self.broken()
            await asyncio.sleep(backoff(self.failures))

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        reader = asyncio.create_task(self._read(ws), name=f"{self.name}-read-{self.peer_id}")
        try:
            while not reader.done():
                self.check()
                if not self.ready():
                    self.wake.clear()
                    waiter = asyncio.ensure_future(self.wake.wait())
                    await asyncio.wait({waiter, reader}, timeout=self.poll, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    continue
                await ws.send_bytes(self.next_frame())
                self.frames_sent += 1
            reader.result()  # re-raise what ended the stream
        finally:
            reader.cancel()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for frame in ws:
            if frame.type != aiohttp.WSMsgType.BINARY or not self.answer(frame.data):
                break
        raise ConnectionResetError(f"{self.name} stream to {self.peer_id} closed")
