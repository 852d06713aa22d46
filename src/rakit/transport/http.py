"""Raft messages between nodes: one WebSocket stream per peer, batches both ways.

Each peer has a queue and a sender.  The sender keeps one WebSocket to the
peer's ``/raft/stream`` open (on the node's pooled aiohttp session) and
writes everything queued as one msgpack ``Batch`` frame: many AppendEntries
and heartbeats share a frame, and frames follow each other without waiting
for answers, so the AppendEntries stream is pipelined, and TCP keeps it in
order.  The peer steps each frame into its Raft core, persists, and writes
back a frame with the messages it has for us (acks, votes) on the same
socket; a reader task hands those to our driver, through the same checks as
what peers send us (``rakit.node.inbound``): a reply no peer can send closes
the stream.

``POST /append_entries`` (``/request_vote``, ``/install_snapshot``) answer
the same exchange one request at a time, for tools and older peers.

``send`` writes frames to the socket before it returns when it can (the
stream is open and its buffer under ``DIRECT_WRITE_LIMIT``): a Ready's
AppendEntries leave without waiting for the sender task's turn, so the
driver may then block on a small fsync while the followers do theirs.  The
frame writer used is aiohttp's own (``_write_websocket_frame``, a private
method: looked up once per stream, and without it every frame goes through
the sender task, as before).  Otherwise -- stream down or backed up -- the
sender task writes, awaiting the socket's flow control.

A broken stream drops what was queued (Raft retransmits) and reconnects
after a short, bounded back-off (the loop is ``rakit.transport.stream.PeerStream``,
shared with the cache's channel); the queue is bounded so an unreachable peer
cannot grow memory.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable

import aiohttp
import msgspec

from rakit.metrics import NodeMetrics
from rakit.raft.messages import (
    AnyMessage,
    Batch,
    InstallSnapshot,
    decode_batch,
    encode_batch,
)
from rakit.security.internal import InternalAuth, PeerNotProven
from rakit.transport.stream import PeerStream

log = logging.getLogger(__name__)

STREAM_PATH = "/raft/stream"
MAX_QUEUED = 10_000
MAX_BATCH_MESSAGES = 512
CONNECT_TIMEOUT = aiohttp.ClientWSTimeout(ws_close=1.0)
HEARTBEAT = 5.0  # WebSocket pings: a silently dead peer is noticed within ~2x this
MAX_FRAME = 256 * 1024 * 1024
DIRECT_WRITE_LIMIT = 1024 * 1024  # bytes buffered in the socket beyond which send() leaves writing to the task

#: (peer, its answers) -> False when they were refused (``rakit.node.inbound.ReplyFilter``)
Deliver = Callable[[str, list[AnyMessage]], bool]


class _DirectWriter:
    """Writes binary frames to an open aiohttp WebSocket synchronously (see the module docstring)."""

    def __init__(self, write: Callable[[bytes, int, int], None], transport: asyncio.Transport) -> None:
        self._write = write
        self._transport = transport

    @classmethod
    def of(cls, ws: aiohttp.ClientWebSocketResponse) -> _DirectWriter | None:
        """None when this aiohttp has no frame writer to lend, or the stream is compressed."""
        writer = getattr(ws, "_writer", None)
        write = getattr(writer, "_write_websocket_frame", None)
        transport = getattr(writer, "transport", None)
        if write is None or transport is None or getattr(writer, "compress", False):
            return None
        return cls(write, transport)

    def ready(self) -> bool:
        transport = self._transport
        return not transport.is_closing() and transport.get_write_buffer_size() <= DIRECT_WRITE_LIMIT

    def write(self, data: bytes) -> None:
        self._write(data, aiohttp.WSMsgType.BINARY, 0)


class PeerSender(PeerStream):
    """Raft's channel to one peer: messages queued (the oldest dropped past ``MAX_QUEUED``), batched, sent."""

    name = "raft"

    def __init__(
        self,
        src: str,
        epoch: int,
        peer_id: str,
        url: str,
        session: aiohttp.ClientSession,
        metrics: NodeMetrics,
        deliver: Deliver,
        auth: InternalAuth | None = None,
    ) -> None:
        super().__init__(peer_id, STREAM_PATH, auth)
        self.src = src
        self.epoch = epoch
        self.url = url
        self.session = session
        self.metrics = metrics
        self.deliver = deliver
        self.queue: deque[AnyMessage] = deque(maxlen=MAX_QUEUED)
        self.seq = 0
        self.sent_at: deque[float] = deque()  # send times of frames awaiting their answer
        self._direct: _DirectWriter | None = None  # while a stream is open
        self._stream_seconds = metrics.rpc_seconds.labels(peer=peer_id, rpc="stream")

    def push(self, message: AnyMessage) -> None:
        self.queue.append(message)

    def write_now(self) -> bool:
        """Write everything queued to the open stream at once; False leaves it to the sender task."""
        direct = self._direct
        if direct is None:
            return False
        while self.queue:
            if not direct.ready():
                return False
            try:
                direct.write(self.next_frame())
            except (aiohttp.ClientError, ConnectionError):  # broken: the reader notices; Raft resends
                self._direct = None
                return False
        return True

    def next_frame(self) -> bytes:
        """The next batch of queued messages as a frame, numbered and timed as sent."""
        self.seq += 1
        self.sent_at.append(time.perf_counter())
        return encode_batch(Batch(self.src, self.take_batch(), self.epoch, self.seq))

    def take_batch(self) -> list[AnyMessage]:
        # A snapshot travels alone (it can be large); everything else batches.
        batch: list[AnyMessage] = []
        while self.queue and len(batch) < MAX_BATCH_MESSAGES:
            if isinstance(self.queue[0], InstallSnapshot) and batch:
                break
            batch.append(self.queue.popleft())
            if isinstance(batch[-1], InstallSnapshot):
                break
        return batch

    # -- the stream's hooks (rakit.transport.stream) ------------------------------

    async def connect(self, headers: dict[str, str] | None) -> aiohttp.ClientWebSocketResponse:
        return await self.session.ws_connect(
            self.url + STREAM_PATH,
            timeout=CONNECT_TIMEOUT,
            heartbeat=HEARTBEAT,
            max_msg_size=MAX_FRAME,
            autoping=True,
            headers=headers,
        )

    def opened(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        log.info("raft stream to %s open", self.peer_id)
        self._direct = _DirectWriter.of(ws)

    def closed(self) -> None:
        self._direct = None

    def failed(self, exc: BaseException) -> None:
        if isinstance(exc, PeerNotProven) and self.failures % 100 == 0:
            log.warning("not streaming to %s at %s: %s", self.peer_id, self.url, exc)
        elif self.failures == 0:
            log.info("raft stream to %s failed: %s", self.peer_id, exc)

    def broken(self) -> None:
        self.metrics.rpc_failures.labels(peer=self.peer_id).inc()
        self.queue.clear()  # stale by the time we are back; Raft resends what matters
        self.sent_at.clear()

    def ready(self) -> bool:
        return bool(self.queue)

    def answer(self, data: bytes) -> bool:
        if self.sent_at:
            self._stream_seconds.observe(time.perf_counter() - self.sent_at.popleft())
        try:
            answer = decode_batch(data)
        except msgspec.MsgspecError as exc:
            log.warning("bad raft frame from %s: %s", self.peer_id, exc)
            return False
        # A peer that answers what no peer can send: reconnect (and sign afresh).
        return answer.src == self.peer_id and self.deliver(self.peer_id, answer.messages)


class HttpTransport:
    """One ``PeerSender`` per peer; ``set_peers`` follows membership changes (senders come and go)."""

    sends_at_once = True  # send() writes to open streams before returning (see the module docstring)

    def __init__(
        self,
        node_id: str,
        peers: dict[str, str],
        session: aiohttp.ClientSession,
        metrics: NodeMetrics,
        deliver: Deliver,
        auth: InternalAuth | None = None,
    ) -> None:
        self.node_id = node_id
        self.session = session
        self.metrics = metrics
        self.deliver = deliver
        self.auth = auth
        self.epoch = random.SystemRandom().getrandbits(62) or 1
        self.senders = {peer_id: self._sender(peer_id, url) for peer_id, url in peers.items() if peer_id != node_id}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._running = False

    def _sender(self, peer_id: str, url: str) -> PeerSender:
        return PeerSender(self.node_id, self.epoch, peer_id, url, self.session, self.metrics, self.deliver, self.auth)

    def send(self, messages: list[AnyMessage]) -> None:
        touched = set()
        for message in messages:
            sender = self.senders.get(message.dst)
            if sender is not None:
                sender.push(message)
                touched.add(message.dst)
        for dst in touched:
            sender = self.senders[dst]
            if not sender.write_now():
                sender.wake.set()

    def set_peers(self, peers: dict[str, str]) -> None:
        """Send to exactly ``peers`` (id -> URL) from now on: new ones get a sender, gone ones lose theirs."""
        wanted = {p: u for p, u in peers.items() if p != self.node_id}
        for peer_id in [p for p, sender in self.senders.items() if wanted.get(p) != sender.url]:
            del self.senders[peer_id]
            task = self._tasks.pop(peer_id, None)
            if task is not None:
                task.cancel()
        for peer_id, url in wanted.items():
            if peer_id not in self.senders:
                self.senders[peer_id] = self._sender(peer_id, url)
                if self._running:
                    self._start(peer_id)

    def _start(self, peer_id: str) -> None:
        sender = self.senders[peer_id]
        self._tasks[peer_id] = asyncio.get_running_loop().create_task(sender.run(), name=f"raft-send-{peer_id}")

    async def run(self) -> None:
        self._running = True
        for peer_id in self.senders:
            self._start(peer_id)
        try:
            while True:  # a sender only ends by cancellation; surface a crash like a TaskGroup would
                await asyncio.sleep(1.0)
                for task in list(self._tasks.values()):
                    if task.done() and not task.cancelled() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
        finally:
            self._running = False
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
