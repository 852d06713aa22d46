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
once (the loop is ``rakit.transport.stream.PeerStream``, shared with Raft's
channel).  Frames in flight are capped by ``max_inflight``; the queue by
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

from rakit.cache.rules.checks import check_reply
from rakit.cache.rules.messages import Batch, BatchReply, Operation, Result, decode_reply, encode
from rakit.errors import InvalidRequest
from rakit.security.internal import InternalAuth, PeerNotProven
from rakit.transport.stream import PeerStream

log = logging.getLogger(__name__)

STREAM_PATH = "/cache/stream"
MAX_FRAME = 64 * 1024 * 1024


class PeerUnreachable(Exception):
    """The peer did not answer (the operation may or may not have run there)."""


#: (peer id, when the frame was sent, the reply) -> None
OnReply = Callable[[str, float, BatchReply], None]


@dataclass(slots=True)
class _Frame:
    sent_at: float
    futures: list[asyncio.Future[Result]]
    pings: list[asyncio.Future[bool]] = field(default_factory=list)


class PeerChannel(PeerStream):
    name = "cache"

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
        super().__init__(peer_id, STREAM_PATH, auth)
        self.src = src
        self.conf = conf  # the sender's membership generation, read per frame
        self.base_url = url
        self.url = url + STREAM_PATH
        self.session = session
        self.clock = clock
        self.on_reply = on_reply
        self.timeout = timeout
        self.poll = timeout / 4  # how often an unanswered frame is checked while idle
        self.max_batch = max_batch
        self.max_inflight = max_inflight
        self.max_queued = max_queued
        self._queue: deque[tuple[Operation, asyncio.Future[Result]]] = deque()
        self._pings: list[asyncio.Future[bool]] = []
        self._inflight: deque[_Frame] = deque()
        self._connected = False
        self._connecting = True  # calls queue while a connection is being made

    # -- callers ---------------------------------------------------------------

    def call(self, op: Operation) -> asyncio.Future[Result]:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        if not (self._connected or self._connecting):
            future.set_exception(PeerUnreachable(f"no stream to {self.peer_id}"))
        elif len(self._queue) >= self.max_queued:
            future.set_exception(PeerUnreachable(f"{self.peer_id}: too many operations queued"))
        else:
            self._queue.append((op, future))
            self.wake.set()
        return future

    async def ping(self) -> bool:
        """Send a frame (a heartbeat) even if nothing is queued; True if it was answered."""
        if not self._connected:
            return False
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pings.append(future)
        self.wake.set()
        try:
            return await future
        except PeerUnreachable:
            return False

    # -- the stream's hooks (rakit.transport.stream) ------------------------------

    async def connect(self, headers: dict[str, str] | None) -> aiohttp.ClientWebSocketResponse:
        async with asyncio.timeout(self.timeout * 2):
            return await self.session.ws_connect(
                self.url, max_msg_size=MAX_FRAME, autoping=True, heartbeat=None, headers=headers
            )

    def connecting(self) -> None:
        self._connecting = True

    def opened(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._connected = True
        self._connecting = False
        if self.failures:
            log.info("cache stream to %s open", self.peer_id)

    def closed(self) -> None:
        self._connected = False

    def failed(self, exc: BaseException) -> None:
        if isinstance(exc, PeerNotProven) and self.failures % 100 == 0:
            log.warning("no cache stream to %s: %s", self.peer_id, exc)
        elif self.failures == 0:
            log.info("cache stream to %s broke: %s: %s", self.peer_id, type(exc).__name__, exc)

    def broken(self) -> None:
        self._connected = self._connecting = False
        self._fail_all(PeerUnreachable(f"stream to {self.peer_id} broke"))

    def check(self) -> None:
        if self._inflight and time.monotonic() - self._inflight[0].sent_at > self.timeout:
            raise TimeoutError(f"{self.peer_id} did not answer within {self.timeout} s")

    def ready(self) -> bool:
        return bool(self._queue or self._pings) and len(self._inflight) < self.max_inflight

    def next_frame(self) -> bytes:
        take = min(len(self._queue), self.max_batch)
        ops: list[Operation] = []
        futures: list[asyncio.Future[Result]] = []
        for _ in range(take):
            op, future = self._queue.popleft()
            if not future.done():  # the caller may have given up
                ops.append(op)
                futures.append(future)
        pings, self._pings = self._pings, []
        self._inflight.append(_Frame(time.monotonic(), futures, pings))
        return encode(Batch(self.src, self.clock(), ops, self.conf()))

    def answer(self, data: bytes) -> bool:
        try:
            reply = check_reply(decode_reply(data), self.peer_id, time.time_ns() // 1000)
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
        return True

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
