"""Raft messages over HTTP: one sender task per peer on a shared aiohttp session.

Each peer has a queue; its sender posts everything queued as one msgpack
``Batch`` (so many AppendEntries and heartbeats share one request), waits for
the peer's 204 (the peer only enqueues, it does not fsync before answering),
then posts the next batch.  The AppendEntries stream is therefore pipelined:
the leader never waits for a follower's disk before sending more.

Failures drop the batch (Raft retransmits) and back off for a short, bounded
time; the queue is bounded so an unreachable peer cannot grow memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

import aiohttp

from rakit.metrics import NodeMetrics
from rakit.raft.messages import (
    AnyMessage,
    Batch,
    InstallSnapshot,
    RequestVote,
    RequestVoteResp,
    encode_batch,
)

log = logging.getLogger(__name__)

MAX_QUEUED = 10_000
MAX_BATCH_MESSAGES = 512
BACKOFF_FIRST = 0.02
BACKOFF_MAX = 0.25
POST_TIMEOUT = aiohttp.ClientTimeout(total=3.0, connect=0.5)
HEADERS = {"Content-Type": "application/msgpack"}


def endpoint_for(messages: list[AnyMessage]) -> str:
    first = messages[0]
    if isinstance(first, (RequestVote, RequestVoteResp)):
        return "/request_vote"
    if isinstance(first, InstallSnapshot):
        return "/install_snapshot"
    return "/append_entries"


class PeerSender:
    def __init__(self, src: str, peer_id: str, url: str, session: aiohttp.ClientSession,
                 metrics: NodeMetrics) -> None:
        self.src = src
        self.peer_id = peer_id
        self.url = url
        self.session = session
        self.metrics = metrics
        self.queue: deque[AnyMessage] = deque(maxlen=MAX_QUEUED)
        self.wake = asyncio.Event()
        self.failures = 0

    def push(self, message: AnyMessage) -> None:
        self.queue.append(message)
        self.wake.set()

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

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.queue:
                batch = self.take_batch()
                ok = await self.post(batch)
                if ok:
                    self.failures = 0
                else:
                    self.failures += 1
                    await asyncio.sleep(min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (self.failures - 1)))

    async def post(self, batch: list[AnyMessage]) -> bool:
        path = endpoint_for(batch)
        body = encode_batch(Batch(src=self.src, messages=batch))
        started = time.perf_counter()
        try:
            async with self.session.post(self.url + path, data=body, headers=HEADERS,
                                         timeout=POST_TIMEOUT) as resp:
                await resp.read()
                ok = resp.status < 300
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            if self.failures == 0:
                log.info("raft rpc to %s failed: %s", self.peer_id, exc)
            ok = False
        self.metrics.rpc_seconds.labels(peer=self.peer_id, rpc=path.strip("/")).observe(
            time.perf_counter() - started)
        if not ok:
            self.metrics.rpc_failures.labels(peer=self.peer_id).inc()
        return ok


class HttpTransport:
    def __init__(self, node_id: str, peers: dict[str, str], session: aiohttp.ClientSession,
                 metrics: NodeMetrics) -> None:
        self.senders = {
            peer_id: PeerSender(node_id, peer_id, url, session, metrics)
            for peer_id, url in peers.items()
            if peer_id != node_id
        }

    def send(self, messages: list[AnyMessage]) -> None:
        for message in messages:
            sender = self.senders.get(message.dst)
            if sender is not None:
                sender.push(message)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for sender in self.senders.values():
                group.create_task(sender.run(), name=f"raft-send-{sender.peer_id}")
