"""One batching, pipelined stream per peer for the cache: many operations per frame.

``PeerChannel.call(op)`` queues an operation and returns a future for its
result.  The channel keeps one WebSocket open to the peer's ``/cache/stream``
(on the node's pooled aiohttp session) and writes everything queued as one
msgpack ``Batch`` frame (up to ``max_batch`` operations); frames follow each
other without waiting for answers, and the peer answers each frame with one
``BatchReply`` frame, in order, on the same socket.  So under load a frame
carries many invalidations, and at low load a write costs two small frames
instead of an HTTP request.  Every frame is also a heartbeat: its answer
extends this node's lease on the peer (``rakit.cache.rules.contact``), which
``on_reply`` reports to the service; ``ping()`` sends a frame even when no
operation waits.

Failures are bounded: a frame not answered within ``timeout`` breaks the
stream (a stopped peer's socket stays open but silent).  A broken stream
fails every operation in flight or queued with ``PeerUnreachable`` (the
operation may or may not have run there; the caller decides whether to
retry), and reconnects after a short back-off, during which calls fail at
once.  Frames in flight are capped by ``max_inflight``; the queue by
``max_queued``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import msgspec

from rakit.cache.rules.checks import check_reply
from rakit.cache.rules.messages import Batch, BatchReply, Operation, Result, decode_reply, encode
from rakit.errors import InvalidRequest
from rakit.security.internal import InternalAuth, PeerNotProven, verify_stream

log = logging.getLogger(__name__)

STREAM_PATH = "/cache/stream"
MAX_FRAME = 64 * 1024 * 1024
BACKOFF_FIRST = 0.02
BACKOFF_MAX = 0.25


class PeerUnreachable(Exception):
    """The peer did not answer (the operation may or may not have run there)."""


#: (peer id, when the frame was sent, the reply) -> None
OnReply = Callable[[str, float, BatchReply], None]


@dataclass(slots=True)
class _Frame:
    sent_at: float
    futures: list[asyncio.Future[Result]]
    pings: list[asyncio.Future[bool]] = field(default_factory=list)


class PeerChannel:
    def __init__(
        self,
        src: str,
        peer_id: str,
        url: str,
        session: aiohttp.ClientSession,
        clock: Callable[[], int],
        on_reply: OnReply,
        *,
        timeout: float = 0.5,
        max_batch: int = 512,
        max_inflight: int = 64,
        max_queued: int = 50_000,
        auth: InternalAuth | None = None,
        conf: Callable[[], int] = lambda: -1,
    ) -> None:
        self.src = src
        self.conf = conf  # the sender's membership generation, read per frame
        self.peer_id = peer_id
        self.auth = auth if auth is not None and auth.enabled else None
        self.base_url = url
        self.url = url + STREAM_PATH
        self.session = session
        self.clock = clock
        self.on_reply = on_reply
        self.timeout = timeout
        self.max_batch = max_batch
        self.max_inflight = max_inflight
        self.max_queued = max_queued
        self._queue: deque[tuple[Operation, asyncio.Future[Result]]] = deque()
        self._pings: list[asyncio.Future[bool]] = []
        self._inflight: deque[_Frame] = deque()
        self._wake = asyncio.Event()
        self._connected = False
        self._connecting = True  # calls queue while a connection is being made
        self.frames_sent = 0
        self.failures = 0

    # -- callers ---------------------------------------------------------------

    def call(self, op: Operation) -> asyncio.Future[Result]:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        if not (self._connected or self._connecting):
            future.set_exception(PeerUnreachable(f"no stream to {self.peer_id}"))
        elif len(self._queue) >= self.max_queued:
            future.set_exception(PeerUnreachable(f"{self.peer_id}: too many operations queued"))
        else:
            self._queue.append((op, future))
            self._wake.set()
        return future

    async def ping(self) -> bool:
        """Send a frame (a heartbeat) even if nothing is queued; True if it was answered."""
        if not self._connected:
            return False
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pings.append(future)
        self._wake.set()
        try:
            return await future
        except PeerUnreachable:
            return False

    # -- the stream ------------------------------------------------------------

    async def run(self) -> None:
        """Keep a stream to the peer open and feed it; reconnect when it breaks."""
        while True:
            self._connecting = True
            try:
                # With a cluster secret the handshake is signed (afresh for every attempt).
                headers = self.auth.headers("GET", STREAM_PATH, dst=self.peer_id) if self.auth else None
                async with asyncio.timeout(self.timeout * 2):
                    ws = await self.session.ws_connect(
                        self.url, max_msg_size=MAX_FRAME, autoping=True, heartbeat=None, headers=headers
                    )
                try:
                    verify_stream(self.auth, headers, ws, self.peer_id)
                    self._connected = True
                    self._connecting = False
                    if self.failures:
                        log.info("cache stream to %s open", self.peer_id)
                    self.failures = 0
                    await self._serve(ws)
                finally:
                    self._connected = False
                    await ws.close()
            except (aiohttp.ClientError, TimeoutError, OSError, ConnectionError, msgspec.DecodeError) as exc:
                if isinstance(exc, PeerNotProven) and self.failures % 100 == 0:
                    log.warning("no cache stream to %s: %s", self.peer_id, exc)
                elif self.failures == 0:
                    log.info("cache stream to %s broke: %s: %s", self.peer_id, type(exc).__name__, exc)
            self._connected = self._connecting = False
            self.failures += 1
            self._fail_all(PeerUnreachable(f"stream to {self.peer_id} broke"))
            await asyncio.sleep(min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** min(self.failures - 1, 8)))

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        reader = asyncio.create_task(self._read(ws), name=f"cache-read-{self.peer_id}")
        try:
            while not reader.done():
                if self._inflight and time.monotonic() - self._inflight[0].sent_at > self.timeout:
                    raise TimeoutError(f"{self.peer_id} did not answer within {self.timeout} s")
                if (not self._queue and not self._pings) or len(self._inflight) >= self.max_inflight:
                    self._wake.clear()
                    waiter = asyncio.ensure_future(self._wake.wait())
                    await asyncio.wait({waiter, reader}, timeout=self.timeout / 4, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    continue
                take = min(len(self._queue), self.max_batch)
                ops: list[Operation] = []
                futures: list[asyncio.Future[Result]] = []
                for _ in range(take):
                    op, future = self._queue.popleft()
                    if not future.done():  # the caller may have given up
                        ops.append(op)
                        futures.append(future)
                pings, self._pings = self._pings, []
                frame = _Frame(time.monotonic(), futures, pings)
                self._inflight.append(frame)
                await ws.send_bytes(encode(Batch(self.src, self.clock(), ops, self.conf())))
                self.frames_sent += 1
            reader.result()  # re-raise what ended the stream
        finally:
            reader.cancel()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.BINARY:
                break
            try:
                reply = check_reply(decode_reply(message.data), self.peer_id, time.time_ns() // 1000)
            except InvalidRequest as exc:
                raise ConnectionError(f"{self.peer_id} sent a reply no peer can send: {exc.detail}") from None
            if not self._inflight:
                raise ConnectionError(f"{self.peer_id} answered a frame never sent")
            frame = self._inflight.popleft()
            if len(reply.results) != len(frame.futures):
                raise ConnectionError(
                    f"{self.peer_id} answered {len(reply.results)} results to {len(frame.futures)} operations"
                )
            self.on_reply(self.peer_id, frame.sent_at, reply)
            for future, result in zip(frame.futures, reply.results, strict=True):
                if not future.done():
                    future.set_result(result)
            for ping in frame.pings:
                if not ping.done():
                    ping.set_result(True)
        raise ConnectionResetError(f"cache stream to {self.peer_id} closed")

    def _fail_all(self, exc: PeerUnreachable) -> None:
        for frame in self._inflight:
            for future in frame.futures:
                if not future.done():
                    future.set_exception(exc)
            for ping in frame.pings:
                if not ping.done():
                    ping.set_exception(exc)
        self._inflight.clear()
        for _, future in self._queue:
            if not future.done():
                future.set_exception(exc)
        self._queue.clear()
        for ping in self._pings:
            if not ping.done():
                ping.set_exception(exc)
        self._pings.clear()

    def close(self) -> None:
        self._fail_all(PeerUnreachable("closing"))
