"""One batching channel per peer for the cache: many operations, one HTTP request.

``PeerChannel.call(op)`` queues an operation and returns a future for its
result.  A sender task takes everything queued (up to ``max_batch``) into one
``POST /cache/internal/batch`` on the node's pooled aiohttp session; up to
``max_inflight`` batches per peer are in flight at once, so under load each
request carries many invalidations and the cost per write stays small.
Every batch is also a heartbeat: its ack extends this node's lease on the
peer (``rakit.cache.contact``), which ``on_reply`` reports to the service.

A batch that fails (connection refused, timeout, a non-200 answer) fails
every future in it with ``PeerUnreachable``; the caller decides whether to
retry.  Each request is bounded by ``timeout``; the queue by ``max_queued``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

import aiohttp
import msgspec

from rakit.cache.messages import Batch, BatchReply, Operation, Result, decode_reply, encode

log = logging.getLogger(__name__)

BATCH_PATH = "/cache/internal/batch"
CONTENT_TYPE = "application/msgpack"


class PeerUnreachable(Exception):
    """The peer did not answer the batch (the operation may or may not have run there)."""


#: (peer id, when the batch was sent, the reply) -> None
OnReply = Callable[[str, float, BatchReply], None]


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
        max_inflight: int = 4,
        max_queued: int = 50_000,
    ) -> None:
        self.src = src
        self.peer_id = peer_id
        self.url = url + BATCH_PATH
        self.session = session
        self.clock = clock
        self.on_reply = on_reply
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.max_batch = max_batch
        self.max_inflight = max_inflight
        self.max_queued = max_queued
        self._queue: deque[tuple[Operation, asyncio.Future[Result]]] = deque()
        self._inflight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches_sent = 0
        self.failures = 0

    def call(self, op: Operation) -> asyncio.Future[Result]:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        if len(self._queue) >= self.max_queued:
            future.set_exception(PeerUnreachable(f"{self.peer_id}: too many operations queued"))
            return future
        self._queue.append((op, future))
        if self._inflight < self.max_inflight:
            self._start()
        return future

    async def ping(self) -> bool:
        """Send an empty batch (a heartbeat); True if it was answered."""
        try:
            await self._send([])
            return True
        except PeerUnreachable:
            return False

    def _start(self) -> None:
        self._inflight += 1
        task = asyncio.get_running_loop().create_task(self._drain())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        try:
            while self._queue:
                take = min(len(self._queue), self.max_batch)
                items = [self._queue.popleft() for _ in range(take)]
                items = [(op, f) for op, f in items if not f.done()]  # callers that gave up
                if not items:
                    continue
                try:
                    results = await self._send([op for op, _ in items])
                except PeerUnreachable as exc:
                    for _, future in items:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(items, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._inflight -= 1

    async def _send(self, ops: list[Operation]) -> list[Result]:
        body = encode(Batch(self.src, self.clock(), ops))
        sent_at = time.monotonic()
        try:
            async with self.session.post(self.url, data=body, timeout=self.timeout,
                                         headers={"content-type": CONTENT_TYPE}) as resp:
                data = await resp.read()
                if resp.status != 200:
                    raise PeerUnreachable(f"{self.peer_id} answered {resp.status}")
            reply = decode_reply(data)
        except (TimeoutError, aiohttp.ClientError, OSError, msgspec.DecodeError) as exc:
            self.failures += 1
            raise PeerUnreachable(f"{self.peer_id}: {type(exc).__name__}: {exc}") from None
        self.batches_sent += 1
        if len(reply.results) != len(ops):
            raise PeerUnreachable(f"{self.peer_id} answered {len(reply.results)} results to {len(ops)} operations")
        self.on_reply(self.peer_id, sent_at, reply)
        return reply.results

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for _, future in self._queue:
            if not future.done():
                future.set_exception(PeerUnreachable("closing"))
        self._queue.clear()
