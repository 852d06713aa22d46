"""The cache service of one node: reads, writes with invalidation rounds, peer fetches.

It drives the pure parts: ``CacheNode`` (``rakit.cache.rules.coherence``: the LRU,
versions and the MESI rules) and ``ContactTable`` (``rakit.cache.rules.contact``:
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

Membership
----------
The cache's members are the Raft configuration's members (voters and
learners) as *committed*; each configuration that changes the member set
has a *generation*: the log index of the entry that made it (0 for the
``--peers`` start, -1 on a node that has not learnt one naming it yet).
``set_members`` adopts a newer one (the runtime calls it when such an entry
is applied): the node drops everything, opens streams to new members,
closes those to removed ones, and reconfigures its contact table (contact
rule 7: old leases void, a mute of ``skip_age``).  Every frame carries the
sender's generation and every reply the answerer's: acks are given and
counted only between nodes of the same generation, fence grants only to
writers of the same generation.  Why this is safe:

- Nodes of two consecutive generations never serve at the same moment
  (contact rule 7), and a write round ends only if its writer still serves
  under the generation it began in.  So while a round runs, every node that
  serves is a member of the writer's configuration, which the round
  invalidates or fences; a node of the next generation starts serving only
  after the old generation stopped, and holds only what it got since then
  (it dropped everything when it adopted it).
- A node that was removed, or has not joined yet, is not a member of its
  own configuration and does not serve.  One that never learns of its
  removal finds no peer of its generation to lend it leases.
- Consecutive is the operative word: the membership endpoints refuse a
  change that alters the member set (``conf_change_in_progress``) until
  every member that stays has reported the current generation, so no live
  node is two generations behind.  A member that is down and was never
  heard at the current generation must be removed before another is added.

Cost: every membership change empties every node's cache, and each node
answers ``503`` for about ``skip_age`` plus a lease round after it adopts
the change.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from rakit.cache.peers import PeerChannel, PeerUnreachable
from rakit.cache.rules.coherence import CacheNode
from rakit.cache.rules.contact import ContactTable
from rakit.cache.rules.lru import CacheEntry
from rakit.cache.rules.messages import (
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
from rakit.cache.rules.versions import HybridClock, Version
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
    raft_grace: float = 3.0  # serve only within this long of the Raft leader's last contact


class CacheService:
    def __init__(
        self,
        node_id: str,
        peers: Mapping[str, str],
        session: aiohttp.ClientSession,
        settings: CacheSettings = CacheSettings(),
        *,
        auth: InternalAuth | None = None,
        generation: int = 0,
        first_run: bool = False,
        leader_contact_age: Callable[[], float] = lambda: 0.0,
        known_nodes: Callable[[], Container[str]] = frozenset,
    ) -> None:
        """``peers``: every member (this node included, if it is one) and its URL;
        ``first_run``: this node's data dir is new (no earlier run lent leases or acked rounds);
        ``leader_contact_age``: seconds since the Raft leader last replicated here;
        ``known_nodes``: ids the cluster knows besides the members (they may send frames)."""
        self.node_id = node_id
        self.settings = settings
        self.session = session
        self.auth = auth
        self.node = CacheNode(node_id, settings.capacity, settings.max_bytes, HybridClock(node_id))
        self.started = started = time.monotonic()
        self.generation = generation
        self.members = frozenset(peers)
        self.leader_contact_age = leader_contact_age
        self.known_nodes = known_nodes
        self.newest_generation = generation  # the newest any peer reported
        self.switched_at = started
        # The start mute (contact rule 7) is for a run that may follow one under an older
        # generation; generation 0 (the --peers start, no change ever applied) has none before it.
        self.contact = ContactTable(
            node_id,
            peers,
            started,
            lease=settings.lease,
            fence=settings.fence,
            muted=len(peers) > 1 and generation != 0,
        )
        # Rounds answer before their deadline (``_round``); allow for clock drift.  Only rounds that
        # counted an ack of an earlier run of this node matter: a first run has none.
        self.quarantine_until = (
            started + settings.round_timeout * (1 + self.contact.drift) + 0.1
            if len(peers) > 1 and not first_run
            else started
        )
        self.channels: dict[str, PeerChannel] = {}
        self._channel_tasks: dict[str, list[asyncio.Task[None]]] = {}
        self._group: asyncio.TaskGroup | None = None
        for peer, url in peers.items():
            if peer != node_id:
                self._open_channel(peer, url)
        self.peer_generations: dict[str, int] = {}  # the latest generation each peer reported
        self.reconfigurations = 0
        self._fencing: dict[str, asyncio.Future[bool]] = {}
        self.invalidations_sent = 0
        self.peers_skipped = 0
        self.writes_failed = 0
        self.fences_won = 0
        self.fences_lost = 0
        self.fences_granted = 0
        self.fetch_failures = 0

    # -- membership ------------------------------------------------------------

    def _open_channel(self, peer: str, url: str) -> None:
        self.channels[peer] = channel = PeerChannel(
            self.node_id,
            peer,
            url,
            self.session,
            self._clock,
            self._on_reply,
            timeout=self.settings.rpc_timeout,
            auth=self.auth,
            conf=lambda: self.generation,
        )
        if self._group is not None:
            self._start_channel(channel)

    def _start_channel(self, channel: PeerChannel) -> None:
        assert self._group is not None
        self._channel_tasks[channel.peer_id] = [
            self._group.create_task(channel.run(), name=f"cache-stream-{channel.peer_id}"),
            self._group.create_task(self._heartbeat(channel), name=f"cache-heartbeat-{channel.peer_id}"),
        ]

    def _close_channel(self, peer: str) -> None:
        channel = self.channels.pop(peer)
        for task in self._channel_tasks.pop(peer, []):
            task.cancel()
        channel.close()

    def set_members(self, generation: int, peers: Mapping[str, str]) -> bool:
        """Adopt a newer membership generation (see "Membership"); False if it is not newer."""
        if generation <= self.generation:
            return False
        now = time.monotonic()
        self.generation, self.members, self.switched_at = generation, frozenset(peers), now
        self._drop(f"the cluster's membership changed (generation {generation})")
        # The mute also outlasts the grace of a removed node's last Raft contact, so a
        # removed node that never learns of its removal has stopped serving by then.
        self.contact.reconfigure(
            peers, now, mute=max(self.contact.skip_age, self.settings.raft_grace * (1 + self.contact.drift) + 0.1)
        )
        for peer in list(self.channels):
            if peers.get(peer) != self.channels[peer].base_url:
                self._close_channel(peer)
        for peer, url in peers.items():
            if peer != self.node_id and peer not in self.channels:
                self._open_channel(peer, url)
        self.reconfigurations += 1
        log.warning(
            "cache: membership generation %d: members %s%s",
            generation,
            sorted(peers),
            "" if self.node_id in peers else " (this node is not one)",
        )
        return True

    def lagging(self, members: Iterable[str], generation: int) -> list[str]:
        """Those of ``members`` (this node aside) not heard at ``generation`` or later yet."""
        return sorted(p for p in members if p != self.node_id and self.peer_generations.get(p, -1) < generation)

    # -- serving right -------------------------------------------------------

    def _clock(self) -> int:
        return self.node.clock.last

    def _drop(self, reason: str) -> None:
        count = self.node.drop_all(reason)
        log.warning("cache: dropped %d entries (%s)", count, reason)

    def _ensure_serving(self) -> None:
        if self.node_id not in self.members:
            raise Unavailable(
                "this node is not a member of the cluster's configuration yet (or any more), "
                "so its cache does not serve; ask another node"
            )
        if self.newest_generation > self.generation:
            raise Unavailable(
                "this node has not caught up with the cluster's latest membership change; its cache serves once it has"
            )
        if self.leader_contact_age() >= self.settings.raft_grace:
            raise Unavailable(
                f"this node has not heard from the Raft leader for {self.settings.raft_grace:g} s, "
                "so it cannot tell whether it is still a member; its cache does not serve"
            )
        now = time.monotonic()
        if self.contact.muted(now):
            raise Unavailable(
                "the cluster's membership just changed; this node's cache serves again "
                "once the leases of the previous configuration have run out"
            )
        result = self.contact.check(now)
        if result.lapsed:
            self._drop("lost leases on a majority of the cluster")
        if not result.serving:
            raise Unavailable(
                "this node is not in contact with a majority of the cluster, "
                "so its cache cannot prove its copies current; retry, or ask another node"
            )
        if now < self.quarantine_until:
            raise Unavailable(
                f"this node started {now - self.started:.1f} s ago; its cache serves "
                f"once write rounds from before its start have ended"
            )

    def serving(self) -> bool:
        try:
            self._ensure_serving()
        except Unavailable:
            return False
        return True

    def _on_reply(self, peer: str, sent_at: float, reply: BatchReply) -> None:
        self.node.clock.observe(Version(reply.clock, ""))
        self._heard(peer, reply.conf)
        # An ack counts only if it was given to this generation: the frame was sent
        # since this node adopted it, and the peer answered from the same one.
        if reply.acked and reply.conf == self.generation and sent_at >= self.switched_at:
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
        replies = await asyncio.gather(*(self.channels[p].call(Fetch(key)) for p in peers), return_exceptions=True)
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
        generation = self.generation
        now = time.monotonic()
        deadline = now + self.settings.round_timeout
        op = Invalidate(key, version.encode())
        peers = list(self.channels)
        # Fast path: one queued operation per peer, no task; a peer that fails
        # goes through ``_deliver`` (retries, fencing), all within the deadline.
        sent: list[asyncio.Future[Result] | None] = [
            None
            if self.contact.skippable(p, deadline) and not self.contact.in_contact(p, now)
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
                result: InvalidateResult | None
                try:
                    answer = await future
                    self.invalidations_sent += 1
                    assert isinstance(answer, InvalidateResult)
                    result = answer
                except PeerUnreachable:
                    result = await self._deliver(peer, op, deadline, generation)
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
        check = self.contact.check(now)
        if check.lapsed:
            self._drop("lost leases on a majority of the cluster")
        if self.generation != generation or not check.serving:
            # The round counted on the configuration it began in; it holds only while this
            # node still serves under it ("Membership").
            self.writes_failed += 1
            raise Unavailable(
                "this node stopped serving during the write (lost its majority, or the "
                "cluster's membership changed); the write was not acknowledged"
            )
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

    async def _deliver(self, peer: str, op: Invalidate, deadline: float, generation: int) -> InvalidateResult | None:
        """The peer's ack, or None when it may be skipped; ``Unavailable`` at the deadline."""
        backoff = 0.02
        while True:
            if self.generation != generation:
                raise Unavailable("the cluster's membership changed during the write; it was not acknowledged")
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
                raise Unavailable(
                    f"peer {peer} neither acknowledged the invalidation nor could be "
                    f"declared cut off within {self.settings.round_timeout} s"
                )
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
            generation = self.generation
            won = False
            if self.contact.grant_fence(peer, asked_at):
                others = [q for q in self.channels if q != peer]
                replies = await asyncio.gather(
                    *(self.channels[q].call(Fence(peer)) for q in others), return_exceptions=True
                )
                granted = 1 + sum(isinstance(r, FenceResult) and r.granted for r in replies)
                # Grants count toward the majority of the generation they were asked in.
                won = self.generation == generation and self.contact.record_grants(
                    peer, asked_at, granted, time.monotonic()
                )
            if won:
                self.fences_won += 1
                log.warning(
                    "cache: peer %s is fenced; writes go on without it for %.1f s",
                    peer,
                    self.contact.skip_remaining(peer, time.monotonic()),
                )
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

    def _heard(self, peer: str, generation: int) -> None:
        if generation > self.peer_generations.get(peer, -1):
            self.peer_generations[peer] = generation
            self.newest_generation = max(self.newest_generation, generation)

    def _member_in_good_standing(self) -> bool:
        """A member of its own generation, not behind one a peer reported, in touch with Raft."""
        return (
            self.node_id in self.members
            and self.newest_generation <= self.generation
            and self.leader_contact_age() < self.settings.raft_grace
        )

    def handle_batch(self, batch: Batch) -> BatchReply:
        """Answer a peer's frame.  A sender that is not a member here (joining, removed, or of
        another generation) gets its invalidations processed — they only raise watermarks —
        but no ack, no copy and no fence; one the cluster never knew is refused."""
        if batch.src not in self.channels and batch.src not in self.known_nodes():
            raise InvalidRequest(f"unknown cache peer {batch.src!r}")
        now = time.monotonic()
        self.node.clock.observe(Version(batch.clock, ""))
        self._heard(batch.src, batch.conf)
        peer = batch.src in self.channels
        same = peer and batch.conf == self.generation and self.node_id in self.members
        acked = same and self.contact.accept(batch.src, now)
        check = self.contact.check(now)
        if check.lapsed:
            self._drop("lost leases on a majority of the cluster")
        serving = check.serving and now >= self.quarantine_until and self._member_in_good_standing()
        results: list[Result] = []
        try:
            for op in batch.ops:
                results.append(self._handle(op, serving and same, same, now))
        except ValueError as exc:  # a malformed version
            raise InvalidRequest(str(exc)) from None
        return BatchReply(self.node_id, self.node.clock.last, acked, serving, results, self.generation)

    def _handle(self, op: Any, serving: bool, same: bool, now: float) -> Result:
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
        granted = same and op.target != self.node_id and self.contact.grant_fence(op.target, now)
        self.fences_granted += granted
        return FenceResult(granted)

    # -- background ------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            self._group = group
            for channel in self.channels.values():
                self._start_channel(channel)
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
            for peer in list(self.channels):
                # A peer that was here and is cut off: fence it (again) before writes
                # would have to wait for it.  A peer never seen yet (still starting)
                # is left alone: fencing it would only keep it out longer.
                remaining = self.contact.skip_remaining(peer, now)
                if (
                    peer in self.channels
                    and self.contact.ever_in_contact(peer)
                    and not self.contact.in_contact(peer, now)
                    and self.contact.lease_expired(peer, now)
                    and remaining < self.settings.round_timeout + 1.0
                    and peer not in self._fencing
                ):
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
            "serving": (self.contact.serving(now) and now >= self.quarantine_until and self._member_in_good_standing()),
            "generation": self.generation,
            "members": sorted(self.members),
            "reconfigurations": self.reconfigurations,
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
