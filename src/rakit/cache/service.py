"""The cache service of one node: reads, writes with invalidation rounds, peer fetches.

It drives the pure parts: ``CacheNode`` (``rakit.cache.coherence``: the LRU,
versions and the MESI rules) and ``ContactTable`` (``rakit.cache.contact``:
leases, serving rights and fences), and talks to peers through one batching,
pipelined WebSocket ``PeerChannel`` each (``rakit.cache.peers``).

- **get**: a hit is answered locally.  A miss asks every peer this node is
  in contact with (one ``Fetch`` each, in parallel); their watermarks are
  applied first (a peer that saw a newer write vetoes older copies), then
  the newest answer is kept as Shared and answered; nobody holds it: 404.
- **set / delete**: the new version is applied here, then one round:
  ``Invalidate(key, version)`` to every peer in parallel, retried until the
  peer acks or can be skipped (``ContactTable`` rules 5-6: it is fenced out
  of serving for longer than the round can last), within ``round_timeout``;
  else ``503 unavailable`` (the write may be visible here, but was not
  acknowledged).  An ack carrying a newer version held by the peer is
  applied here, so concurrent writers converge on the highest version.
- **Serving**: every operation first asks the contact table whether this
  node may serve; a lapse (lost the majority, even unnoticed, e.g. while
  SIGSTOPped) drops the whole store first.  A node that does not serve
  answers ``503 unavailable`` and serves no fetches; it still processes
  invalidations (they only raise watermarks).
- **Restart**: the store starts empty, and the node does not serve (nor
  fetch) for ``quarantine`` seconds after its start — longer than any write
  round that may have counted on its previous run's acks can last
  (coherence rule 7) — and until it holds leases on a majority.
- **Misses**: a fetch whose answers were all refused because a newer write
  arrived meanwhile is asked again once; a read during a write may still
  miss (404), never answer an older value.
- **Background**: one heartbeat loop per peer (an empty batch every
  ``ping_interval``), and a sweeper that checks for lapses, purges expired
  entries and renews fences on peers that stay cut off, so writes do not
  stall once per fence period.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from rakit.cache.coherence import CacheNode
from rakit.cache.contact import ContactTable
from rakit.cache.lru import CacheEntry
from rakit.cache.messages import (
    Batch,
    BatchReply,
    Fence,
    FenceResult,
    Fetch,
    FetchResult,
    Invalidate,
    InvalidateResult,
    Result,
)
from rakit.cache.peers import PeerChannel, PeerUnreachable
from rakit.cache.versions import HybridClock, Version
from rakit.errors import InvalidRequest, Unavailable
from rakit.security.internal import InternalAuth

log = logging.getLogger(__name__)


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _now_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True, slots=True)
class CacheSettings:
    capacity: int = 10_000
    max_bytes: int = 64 * 1024 * 1024
    lease: float = 1.0
    fence: float = 6.0
    ping_interval: float = 0.1
    round_timeout: float = 2.0
    rpc_timeout: float = 0.5
    sweep_interval: float = 0.1


class CacheService:
    def __init__(self, node_id: str, peers: Mapping[str, str], session: aiohttp.ClientSession,
                 settings: CacheSettings = CacheSettings(), *, auth: InternalAuth | None = None) -> None:
        self.node_id = node_id
        self.settings = settings
        self.node = CacheNode(node_id, settings.capacity, settings.max_bytes, HybridClock(node_id))
        self.started = started = time.monotonic()
        self.contact = ContactTable(node_id, peers, started, lease=settings.lease, fence=settings.fence)
        # Rounds answer before their deadline (``_round``); allow for clock drift.
        self.quarantine_until = (started + settings.round_timeout * (1 + self.contact.drift) + 0.1
                                  if len(peers) > 1 else started)
        self.channels = {
            peer: PeerChannel(node_id, peer, url, session, self._clock, self._on_reply,
                              timeout=settings.rpc_timeout, auth=auth)
            for peer, url in peers.items() if peer != node_id
        }
        self._fencing: dict[str, asyncio.Future[bool]] = {}
        self.invalidations_sent = 0
        self.peers_skipped = 0
        self.writes_failed = 0
        self.fences_won = 0
        self.fences_lost = 0
        self.fences_granted = 0
        self.fetch_failures = 0

    # -- serving right -------------------------------------------------------

    def _clock(self) -> int:
        return self.node.clock.last

    def _drop(self, reason: str) -> None:
        count = self.node.drop_all(reason)
        log.warning("cache: dropped %d entries (%s)", count, reason)

    def _ensure_serving(self) -> None:
        now = time.monotonic()
        result = self.contact.check(now)
        if result.lapsed:
            self._drop("lost leases on a majority of the cluster")
        if not result.serving:
            raise Unavailable("this node is not in contact with a majority of the cluster, "
                              "so its cache cannot prove its copies current; retry, or ask another node")
        if now < self.quarantine_until:
            raise Unavailable(f"this node started {now - self.started:.1f} s ago; its cache serves "
                              f"once write rounds from before its start have ended")

    def serving(self) -> bool:
        try:
            self._ensure_serving()
        except Unavailable:
            return False
        return True

    def _on_reply(self, peer: str, sent_at: float, reply: BatchReply) -> None:
        self.node.clock.observe(Version(reply.clock, ""))
        if reply.acked:
            result = self.contact.on_ack(peer, sent_at, time.monotonic())
            if result.lapsed:
                self._drop("lost leases on a majority of the cluster")

    # -- reads ---------------------------------------------------------------

    async def get(self, key: str) -> tuple[CacheEntry | None, str]:
        """The entry (or None) and where it came from: ``"local"`` or ``"peer"``."""
        self._ensure_serving()
        entry = self.node.lookup(key, time.monotonic())
        if entry is not None:
            return entry, "local"
        refused = self.node.fetches_refused
        entry = await self._fetch(key)
        if entry is None and self.node.fetches_refused > refused:
            entry = await self._fetch(key)  # a newer write landed meanwhile: ask once more
        return entry, "peer"

    async def _fetch(self, key: str) -> CacheEntry | None:
        ticket = self.node.begin_fetch(key)
        peers = self.contact.contacts(time.monotonic())
        replies = await asyncio.gather(*(self.channels[p].call(Fetch(key)) for p in peers),
                                       return_exceptions=True)
        self._ensure_serving()  # a lapse during the fetch drops everything (its answers too)
        now = time.monotonic()
        answers: list[CacheEntry] = []
        for reply in replies:
            if not isinstance(reply, FetchResult):
                self.fetch_failures += 1
                continue
            if reply.watermark is not None:
                self.node.on_invalidate(key, Version.decode(reply.watermark), now, count=False)
            if reply.value is not None and reply.version is not None:
                expires = None if reply.ttl_left is None else now + reply.ttl_left
                answers.append(CacheEntry(key, reply.value, Version.decode(reply.version), "S", expires))
        return self.node.complete_fetch(ticket, answers, now)

    # -- writes --------------------------------------------------------------

    async def set(self, key: str, value: bytes, ttl: float | None) -> Version:
        self._ensure_serving()
        version = self.node.local_set(key, value, ttl, time.monotonic(), _now_us())
        await self._round(key, version)
        return version

    async def delete(self, key: str) -> bool:
        """True if this node or any peer held a live copy."""
        self._ensure_serving()
        version, held = self.node.local_delete(key, _now_us(), time.monotonic())
        results = await self._round(key, version)
        return held or any(r is not None and r.dropped for r in results)

    async def _round(self, key: str, version: Version) -> list[InvalidateResult | None]:
        if not self.channels:
            self.node.confirm_write(key, version)
            return []
        now = time.monotonic()
        deadline = now + self.settings.round_timeout
        op = Invalidate(key, version.encode())
        peers = list(self.channels)
        # Fast path: one queued operation per peer, no task; a peer that fails
        # goes through ``_deliver`` (retries, fencing), all within the deadline.
        sent: list[asyncio.Future[Result] | None] = [
            None if self.contact.skippable(p, deadline) and not self.contact.in_contact(p, now)
            else self.channels[p].call(op)
            for p in peers
        ]
        results: list[InvalidateResult | None] = []
        try:
            for peer, future in zip(peers, sent, strict=True):
                if future is None:
                    self.peers_skipped += 1
                    results.append(None)
                    continue
                try:
                    result = await future
                    self.invalidations_sent += 1
                    assert isinstance(result, InvalidateResult)
                except PeerUnreachable:
                    result = await self._deliver(peer, op, deadline)
                results.append(result)
        except Unavailable:
            self.writes_failed += 1
            for future in sent:  # answers we no longer wait for: no "never retrieved" warnings
                if future is not None:
                    future.add_done_callback(_consume)
            raise
        now = time.monotonic()
        if now >= deadline:  # a restarted peer waits out our deadline (quarantine): keep to it
            self.writes_failed += 1
            raise Unavailable(f"the invalidation round took longer than {self.settings.round_timeout} s")
        for peer, result in zip(peers, results, strict=True):
            if result is None and not self.contact.skippable(peer, now):
                self.writes_failed += 1
                raise Unavailable(f"the fence on cut-off peer {peer} ran out before the write completed")
            if result is not None and result.held is not None:
                newer = Version.decode(result.held)
                if newer > version:  # a concurrent write won: converge on it here too
                    self.node.on_invalidate(key, newer, now)
        self.node.confirm_write(key, version)
        return results

    async def _deliver(self, peer: str, op: Invalidate, deadline: float) -> InvalidateResult | None:
        """The peer's ack, or None when it may be skipped; ``Unavailable`` at the deadline."""
        backoff = 0.02
        while True:
            now = time.monotonic()
            if self.contact.skippable(peer, deadline) and not self.contact.in_contact(peer, now):
                self.peers_skipped += 1
                return None
            try:
                result = await self.channels[peer].call(op)
                self.invalidations_sent += 1
                assert isinstance(result, InvalidateResult)
                return result
            except PeerUnreachable:
                pass
            now = time.monotonic()
            if now >= deadline:
                raise Unavailable(f"peer {peer} neither acknowledged the invalidation nor could be "
                                  f"declared cut off within {self.settings.round_timeout} s")
            if self.contact.lease_expired(peer, now) and await self._fence(peer):
                continue
            await asyncio.sleep(min(backoff, max(0.0, deadline - time.monotonic())))
            backoff = min(backoff * 2, 0.2)

    async def _fence(self, peer: str) -> bool:
        """Fence ``peer`` here and on every peer reachable (contact rules 5-6); True if enough agreed."""
        pending = self._fencing.get(peer)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._fencing[peer] = future
        try:
            asked_at = time.monotonic()
            won = False
            if self.contact.grant_fence(peer, asked_at):
                others = [q for q in self.channels if q != peer]
                replies = await asyncio.gather(*(self.channels[q].call(Fence(peer)) for q in others),
                                               return_exceptions=True)
                granted = 1 + sum(isinstance(r, FenceResult) and r.granted for r in replies)
                won = self.contact.record_grants(peer, asked_at, granted, time.monotonic())
            if won:
                self.fences_won += 1
                log.warning("cache: peer %s is fenced; writes go on without it for %.1f s",
                            peer, self.contact.skip_remaining(peer, time.monotonic()))
            else:
                self.fences_lost += 1
            future.set_result(won)
            return won
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waits
            raise
        finally:
            del self._fencing[peer]

    # -- what peers ask of us --------------------------------------------------

    def handle_batch(self, batch: Batch) -> BatchReply:
        if batch.src not in self.channels:
            raise InvalidRequest(f"unknown cache peer {batch.src!r}")
        now = time.monotonic()
        self.node.clock.observe(Version(batch.clock, ""))
        acked = self.contact.accept(batch.src, now)
        check = self.contact.check(now)
        if check.lapsed:
            self._drop("lost leases on a majority of the cluster")
        serving = check.serving and now >= self.quarantine_until
        results: list[Result] = []
        try:
            for op in batch.ops:
                results.append(self._handle(op, serving, now))
        except ValueError as exc:  # a malformed version
            raise InvalidRequest(str(exc)) from None
        return BatchReply(self.node_id, self.node.clock.last, acked, serving, results)

    def _handle(self, op: Any, serving: bool, now: float) -> Result:
        if isinstance(op, Invalidate):
            dropped = self.node.on_invalidate(op.key, Version.decode(op.version), now)
            held = self.node.peek(op.key, now)
            return InvalidateResult(dropped, None if held is None else held.version.encode())
        if isinstance(op, Fetch):
            mark = self.node.watermark(op.key)
            watermark = None if mark is None else mark.encode()
            entry = self.node.serve_fetch(op.key, now) if serving else None
            if entry is None:
                return FetchResult(None, None, None, watermark)
            ttl_left = None if entry.expires_at is None else max(0.0, entry.expires_at - now)
            return FetchResult(entry.value, entry.version.encode(), ttl_left, watermark)
        assert isinstance(op, Fence)
        granted = self.contact.grant_fence(op.target, now) if op.target != self.node_id else False
        self.fences_granted += granted
        return FenceResult(granted)

    # -- background ------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for peer, channel in self.channels.items():
                group.create_task(channel.run(), name=f"cache-stream-{peer}")
                group.create_task(self._heartbeat(channel), name=f"cache-heartbeat-{peer}")
            group.create_task(self._sweep(), name="cache-sweeper")

    async def _heartbeat(self, channel: PeerChannel) -> None:
        interval = self.settings.ping_interval
        while True:
            started = time.monotonic()
            await channel.ping()
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval)
            now = time.monotonic()
            check = self.contact.check(now)
            if check.lapsed:
                self._drop("lost leases on a majority of the cluster")
            self.node.purge_expired(now)
            if not check.serving:
                continue
            for peer in self.channels:
                # A peer that was here and is cut off: fence it (again) before writes
                # would have to wait for it.  A peer never seen yet (still starting)
                # is left alone: fencing it would only keep it out longer.
                remaining = self.contact.skip_remaining(peer, now)
                if (self.contact.ever_in_contact(peer) and not self.contact.in_contact(peer, now)
                        and self.contact.lease_expired(peer, now)
                        and remaining < self.settings.round_timeout + 1.0 and peer not in self._fencing):
                    try:
                        await self._fence(peer)
                    except PeerUnreachable:
                        pass

    async def close(self) -> None:
        for channel in self.channels.values():
            channel.close()

    # -- introspection -----------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        s = self.node.statistics()
        return {
            "node": self.node_id,
            "serving": self.contact.serving(now) and now >= self.quarantine_until,
            "size": s.size,
            "bytes": s.bytes,
            "capacity": s.capacity,
            "max_bytes": s.max_bytes,
            "hits": s.hits,
            "misses": s.misses,
            "peer_fetches": s.fetches_started,
            "peer_fetches_kept": s.fetches_kept,
            "peer_fetches_refused": s.fetches_refused,
            "peer_fetch_failures": self.fetch_failures,
            "fetches_served": s.fetches_served,
            "evictions": s.evictions,
            "expirations": s.expirations,
            "sets": s.sets,
            "deletes": s.deletes,
            "invalidations_sent": self.invalidations_sent,
            "invalidations_received": s.invalidations_received,
            "invalidations_dropped": s.invalidations_dropped,
            "writes_failed": self.writes_failed,
            "peers_skipped": self.peers_skipped,
            "fences_won": self.fences_won,
            "fences_lost": self.fences_lost,
            "fences_granted": self.fences_granted,
            "drops": s.drops,
            "last_drop_reason": s.last_drop_reason,
            "epoch": s.epoch,
            "tombstones": s.tombstones,
            "tombstone_capacity": s.tombstone_capacity,
            "floor": s.floor.encode(),
            "clock": self.node.clock.last,
            "peers": self.contact.describe(now),
        }
