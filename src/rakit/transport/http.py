"""Raft messages over HTTP: pipelined POSTs per peer, replies riding on the answers.

Each peer has a queue and a sender.  The sender posts everything queued as
one msgpack ``Batch`` (many AppendEntries and heartbeats share a request) to
``/append_entries`` (``/request_vote``, ``/install_snapshot`` by the first
message's kind).  The peer steps the batch into its Raft core, persists,
and answers with the messages it has for us (AppendEntries acks, votes) in
the HTTP response: one request per round trip instead of two.

Up to WINDOW batches are in flight to one peer at once, so the AppendEntries
stream is pipelined rather than stop-and-wait; batches carry a sequence
number and the receiver steps them in order (see ``InboundOrder``).

Failures drop the batch (Raft retransmits) and back off briefly; the queue is
bounded so an unreachable peer cannot grow memory.
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
    RequestVote,
    RequestVoteResp,
    decode_batch,
    encode_batch,
)

log = logging.getLogger(__name__)

WINDOW = 4
MAX_QUEUED = 10_000
MAX_BATCH_MESSAGES = 512
BACKOFF_FIRST = 0.02
BACKOFF_MAX = 0.25
POST_TIMEOUT = aiohttp.ClientTimeout(total=3.0, connect=0.5)
HEADERS = {"Content-Type": "application/msgpack"}

Deliver = Callable[[list[AnyMessage]], None]


def endpoint_for(messages: list[AnyMessage]) -> str:
    first = messages[0]
    if isinstance(first, (RequestVote, RequestVoteResp)):
        return "/request_vote"
    if isinstance(first, InstallSnapshot):
        return "/install_snapshot"
    return "/append_entries"


class PeerSender:
    def __init__(self, src: str, epoch: int, peer_id: str, url: str, session: aiohttp.ClientSession,
                 metrics: NodeMetrics, deliver: Deliver) -> None:
        self.src = src
        self.epoch = epoch
        self.peer_id = peer_id
        self.url = url
        self.session = session
        self.metrics = metrics
        self.deliver = deliver
        self.queue: deque[AnyMessage] = deque(maxlen=MAX_QUEUED)
        self.group: asyncio.TaskGroup | None = None  # set while the transport runs
        self.inflight = 0
        self.backing_off = False
        self.failures = 0
        self.seq = 0

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

    def pump(self) -> None:
        """Start posts for what is queued, as far as the window allows."""
        while self.queue and self.inflight < WINDOW and self.group is not None and not self.backing_off:
            self.seq += 1
            self.inflight += 1
            self.group.create_task(self.post(self.take_batch(), self.seq))

    async def post(self, batch: list[AnyMessage], seq: int) -> None:
        path = endpoint_for(batch)
        body = encode_batch(Batch(self.src, batch, self.epoch, seq))
        started = time.perf_counter()
        replies: list[AnyMessage] = []
        try:
            async with self.session.post(self.url + path, data=body, headers=HEADERS,
                                         timeout=POST_TIMEOUT) as resp:
                payload = await resp.read()
                ok = resp.status == 200
                if ok and payload:
                    answer = decode_batch(payload)
                    replies = [m for m in answer.messages if m.src == self.peer_id and m.dst == self.src]
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, msgspec.MsgspecError) as exc:
            if self.failures == 0:
                log.info("raft rpc to %s failed: %s", self.peer_id, exc)
            ok = False
        finally:
            self.inflight -= 1
        self.metrics.rpc_seconds.labels(peer=self.peer_id, rpc=path.strip("/")).observe(
            time.perf_counter() - started)
        if ok:
            self.failures = 0
            if replies:
                self.deliver(replies)
        else:
            self.failures += 1
            self.metrics.rpc_failures.labels(peer=self.peer_id).inc()
            if not self.backing_off:
                self.backing_off = True
                try:
                    await asyncio.sleep(min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (self.failures - 1)))
                finally:
                    self.backing_off = False
        self.pump()


class HttpTransport:
    def __init__(self, node_id: str, peers: dict[str, str], session: aiohttp.ClientSession,
                 metrics: NodeMetrics, deliver: Deliver) -> None:
        epoch = random.SystemRandom().getrandbits(62) or 1
        self.senders = {
            peer_id: PeerSender(node_id, epoch, peer_id, url, session, metrics, deliver)
            for peer_id, url in peers.items()
            if peer_id != node_id
        }

    def send(self, messages: list[AnyMessage]) -> None:
        touched = set()
        for message in messages:
            sender = self.senders.get(message.dst)
            if sender is not None:
                sender.queue.append(message)
                touched.add(message.dst)
        for dst in touched:
            self.senders[dst].pump()

    async def run(self) -> None:
        """Own every post task until cancelled."""
        async with asyncio.TaskGroup() as group:
            for sender in self.senders.values():
                sender.group = group
                sender.pump()
            try:
                await asyncio.Future()  # parked: the posts run in the group
            finally:
                for sender in self.senders.values():
                    sender.group = None


class InboundOrder:
    """Steps pipelined batches from each sender in their sequence order.

    A batch that arrives ahead of its predecessor waits for it, at most
    MAX_REORDER_WAIT (the predecessor may have been lost); late and
    duplicate batches pass at once — Raft itself tolerates reordering, this
    only keeps the common case fast.
    """

    MAX_REORDER_WAIT = 0.05

    def __init__(self) -> None:
        self._next: dict[str, tuple[int, int]] = {}  # src -> (epoch, next seq)
        self._changed = asyncio.Condition()

    async def wait_turn(self, src: str, epoch: int, seq: int) -> None:
        if not seq:
            return
        current = self._next.get(src)
        if current is None or current[0] != epoch:
            self._next[src] = (epoch, seq)
            return
        if seq <= current[1]:
            return
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self._next[src][0] != epoch or self._next[src][1] >= seq),
                    self.MAX_REORDER_WAIT)
            except asyncio.TimeoutError:
                pass

    async def done(self, src: str, epoch: int, seq: int) -> None:
        if not seq:
            return
        current = self._next.get(src)
        if current is None or current[0] != epoch or current[1] < seq + 1:
            self._next[src] = (epoch, seq + 1)
        async with self._changed:
            self._changed.notify_all()
