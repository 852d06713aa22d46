"""The queue service of one node: ownership, relaying, long polling, the monitor.

Rules:

1. **Ownership.**  A topic's owner is the first node of
   ``ring.successors(topic)`` this node believes alive.  Belief comes from a
   small failure detector: every ``probe_interval`` seconds each peer's
   ``/health`` is probed (``probe_timeout``); a peer is alive while its last
   probe answered.  A relay that cannot connect marks the peer down at once.
   So a topic whose ring owner is down is served by the next live node, and
   returns to its owner as soon as a probe sees it again.
2. **Relaying.**  Any node accepts every queue call.  push/pop/ack/nack/
   extend are served by the topic's owner: a node that is not the owner
   relays the call to the owner's ``/queue/internal/<op>`` (the same JSON,
   topic included, message id already chosen) with a hops header; internal
   calls are always served where they land, so a call takes at most 2 hops.
   When the owner cannot be connected to it is marked down and the call goes
   to the next live node: Redis is shared, so any node can serve any topic
   safely.  A push whose relay broke after sending is retried (the message id
   makes it idempotent: dedup), and so is a pop (at worst one message stays
   in flight until its visibility timeout, then is redelivered); an ack,
   nack or extend whose relay broke mid-way answers 503 (outcome unknown).
   Reads (stats, dead letters) and redrive are served locally.
3. **Monitor.**  Every ``monitor_interval`` seconds the node lists the topics
   with messages in flight and, for those it owns *now*, requeues expired
   messages (or dead-letters them).  It never touches a topic it does not own.
4. **Long polling.**  A pop with ``wait > 0`` that finds nothing ready
   re-checks when a local push to the topic wakes it, or every
   ``poll_interval`` seconds, until ``wait`` passes (then: nothing, 204).
5. **Errors.**  Redis down or refusing the node: ``Unavailable`` (503) from
   the store within its ``op_timeout``, its detail saying what Redis said
   (``rakit.queue.redis_errors``); a ``ValueError`` from the store becomes
   ``InvalidRequest``.
6. **Redis's state.**  At start the node PINGs Redis once in the background
   (``probe_redis``, at most ``REDIS_PROBE_TIMEOUT`` s; start never waits
   for it) and logs one warning if Redis refuses it or cannot be reached;
   from then on every call keeps ``redis_state`` current (``rakit.queue.
   redis_state``), which ``/health`` and ``/status`` show.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import aiohttp
import msgspec

from rakit.errors import InvalidRequest, Unavailable
from rakit.hops import MAX_OWNER_HOPS, answer_within
from rakit.metrics import NodeMetrics
from rakit.queue.redis_state import RedisState
from rakit.queue.ring import ConsistentHashRing
from rakit.queue.store import Delivery, QueueStore
from rakit.relay import HttpRelay, Relay
from rakit.security.internal import InternalAuth

log = logging.getLogger(__name__)

RELAY_TIMEOUT = 6.0  # beyond a pop's wait: the owner's Redis calls are bounded by op_timeout
REDIS_PROBE_TIMEOUT = 2.0

T = TypeVar("T")
_json = msgspec.json.Encoder()

#: (status, JSON body bytes) of a served call.
Answer = tuple[int, bytes]


class PeerHealth:
    """Per-peer ``alive`` flags, refreshed by ``/health`` probes.

    ``went_down(node)`` is an event set when ``node`` is next marked down, so
    a relay waiting on a peer that stopped answering (paused, cut off: its
    connection hangs rather than fails) gives up as soon as the probes notice,
    not after its whole timeout.
    """

    def __init__(
        self,
        node_id: str,
        peers: Mapping[str, str],
        session: aiohttp.ClientSession,
        *,
        interval: float = 0.5,
        timeout: float = 0.5,
    ) -> None:
        self.node_id = node_id
        self.peers = dict(peers)
        self.session = session
        self.interval = interval
        self.timeout = timeout
        self.alive: dict[str, bool] = {p: True for p in self.peers}
        self._down_events: dict[str, asyncio.Event] = {}

    def is_alive(self, node: str) -> bool:
        return node == self.node_id or self.alive.get(node, False)

    def set_peers(self, peers: Mapping[str, str]) -> None:
        """Probe exactly ``peers`` from now on; a new one counts as alive until a probe says otherwise."""
        self.peers = dict(peers)
        for node in list(self.alive):
            if node not in self.peers:
                del self.alive[node]
        for node in self.peers:
            self.alive.setdefault(node, True)

    def went_down(self, node: str) -> asyncio.Event:
        """Set once ``node`` is marked down (already set when it is down now)."""
        event = self._down_events.setdefault(node, asyncio.Event())
        if not self.is_alive(node):
            event.set()
        return event

    def _set(self, node: str, ok: bool) -> None:
        if node not in self.peers:
            return  # removed from the cluster while its probe ran
        was = self.alive.get(node)
        self.alive[node] = ok
        if was and not ok:
            event = self._down_events.pop(node, None)
            if event is not None:
                event.set()

    def mark_down(self, node: str) -> None:
        if node != self.node_id and self.alive.get(node):
            log.warning("queue: peer %s marked down", node)
            self._set(node, False)

    async def probe(self, node: str) -> None:
        try:
            async with self.session.get(
                self.peers[node] + "/health", timeout=aiohttp.ClientTimeout(total=self.timeout)
            ) as resp:
                ok = resp.status == 200
                await resp.read()
        except (TimeoutError, aiohttp.ClientError, OSError):
            ok = False
        if ok and not self.alive.get(node):
            log.warning("queue: peer %s is back", node)
        self._set(node, ok)

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            others = [p for p in self.peers if p != self.node_id]
            await asyncio.gather(*(self.probe(p) for p in others))
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))


class QueueService:
    def __init__(
        self,
        node_id: str,
        peers: Mapping[str, str],
        ring: ConsistentHashRing,
        store: QueueStore,
        session: aiohttp.ClientSession,
        metrics: NodeMetrics,
        *,
        monitor_interval: float = 0.2,
        poll_interval: float = 0.05,
        probe_interval: float = 0.5,
        probe_timeout: float = 0.5,
        auth: InternalAuth | None = None,
        relay: Relay | None = None,
    ) -> None:
        self.node_id = node_id
        self.peers = dict(peers)
        self.ring = ring
        # With a cluster secret every relay is signed (method, path, body: ``rakit.security.internal``).
        self.auth = auth if auth is not None and auth.enabled else None
        self.store = store
        self.session = session
        self.relay: Relay = relay or HttpRelay(session)
        self.metrics = metrics
        self.monitor_interval = monitor_interval
        self.poll_interval = poll_interval
        self.health = PeerHealth(node_id, peers, session, interval=probe_interval, timeout=probe_timeout)
        self._wakeups: dict[str, asyncio.Event] = {}

    # -- ownership -----------------------------------------------------------

    def set_members(self, peers: Mapping[str, str], voters: Iterable[str]) -> None:
        """Follow a membership change: topics are owned on a ring of the voters; every member is probed.

        Topics move with the ring: Redis is shared, so the new owner serves
        them at once and nothing is lost (a message in flight is requeued by
        whichever node owns its topic when its visibility timeout passes).
        """
        self.peers = dict(peers)
        self.health.set_peers(self.peers)
        wanted = set(voters)
        for node in set(self.ring.nodes) - wanted:
            self.ring.remove(node)
        for node in sorted(wanted - set(self.ring.nodes)):
            self.ring.add(node)

    def owner(self, topic: str) -> str:
        """The first node of the topic's successor list believed alive (rule 1)."""
        for node in self.ring.successors(topic):
            if self.health.is_alive(node):
                return node
        return self.node_id

    # -- background ----------------------------------------------------------

    @property
    def redis_state(self) -> RedisState:
        """Whether Redis serves this node, as the latest calls found (rule 6)."""
        return self.store.redis_state

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.probe_redis(), name="queue-redis-probe")
            group.create_task(self.health.run(), name="queue-health")
            group.create_task(self.monitor(), name="queue-monitor")

    async def probe_redis(self, timeout: float = REDIS_PROBE_TIMEOUT) -> bool:
        """PING Redis once, within ``timeout`` s: True when it serves this node.

        A refusal or no answer is logged once, as a warning, by ``redis_state``;
        never raises (it runs beside the node's other tasks).
        """
        try:
            await self.store.ping(timeout)
        except Unavailable:
            return False
        except Exception:  # a probe must never take the node's tasks down with it
            log.exception("queue: probing Redis failed")
            return False
        return True

    async def monitor(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.monitor_once()
            except Unavailable as exc:
                log.debug("queue monitor: %s", exc)
            except Exception:  # keep monitoring whatever one round hit
                log.exception("queue monitor round failed")
            await asyncio.sleep(max(0.0, self.monitor_interval - (time.monotonic() - started)))

    async def monitor_once(self) -> None:
        for topic in sorted(await self.store.topics_with_inflight()):
            if self.owner(topic) != self.node_id:
                continue
            while True:
                result = await self.store.requeue_expired(topic)
                if result.requeued:
                    self.metrics.queue_requeued.inc(len(result.requeued))
                    self._wake(topic)
                if result.dead:
                    self.metrics.queue_dead_lettered.inc(len(result.dead))
                if len(result.requeued) + len(result.dead) < 100 or self.owner(topic) != self.node_id:
                    break

    # -- serving -------------------------------------------------------------

    async def serve(
        self, op: str, payload: dict[str, Any], hops: int, local: Callable[[], Awaitable[Answer]], *, wait: float = 0.0
    ) -> Answer:
        """Serve ``op`` here when this node owns the topic (or the call was relayed
        already), else relay it to the owner; fail over to the next live node.
        Answered within ``wait + MAX_OVERRUN`` seconds in any case (then ``Unavailable``)."""
        return await answer_within(wait, self._serve(op, payload, hops, local, wait))

    async def _serve(
        self, op: str, payload: dict[str, Any], hops: int, local: Callable[[], Awaitable[Answer]], wait: float
    ) -> Answer:
        topic = payload["topic"]
        started = time.monotonic()
        tried: set[str] = set()
        while True:
            owner = self.owner(topic)
            if owner == self.node_id or hops >= MAX_OWNER_HOPS or owner in tried:
                return await local()
            tried.add(owner)
            remaining = max(0.0, wait - (time.monotonic() - started))
            answer = await self._relay(op, owner, {**payload, **({"wait": remaining} if wait else {})}, hops, remaining)
            if answer is not None:
                return answer

    async def _relay(self, op: str, owner: str, payload: dict[str, Any], hops: int, wait: float) -> Answer | None:
        """The owner's answer; None when the call may go to the next node.

        Given up as soon as the failure detector marks the owner down: a push
        (idempotent by its message id) or a pop (at worst a message stays in
        flight until its visibility timeout) then goes to the next node; an
        ack, nack or extend answers 503 (its outcome is unknown).
        """
        down = self.health.went_down(owner)
        call = asyncio.ensure_future(self._post(op, owner, payload, hops, wait))
        watch = asyncio.ensure_future(down.wait())
        try:
            await asyncio.wait({call, watch}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            call.cancel()
            raise
        finally:
            watch.cancel()
        if call.done():
            return call.result()
        call.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await call
        if op in ("push", "pop"):
            return None
        raise Unavailable(f"the topic's owner {owner} stopped answering; outcome unknown")

    async def _post(self, op: str, owner: str, payload: dict[str, Any], hops: int, wait: float) -> Answer | None:
        path = f"/queue/internal/{op}"
        body = _json.encode(payload)
        headers = {"content-type": "application/json"}
        if self.auth is not None:
            headers.update(self.auth.headers("POST", path, body, dst=owner))
        self.metrics.queue_forwarded.inc()
        answer = await self.relay.call(
            owner,
            "POST",
            self.peers[owner] + path,
            body,
            headers,
            hops=hops,
            remaining=None,
            slack=wait + RELAY_TIMEOUT,
            retry_safe=op in ("push", "pop"),
            what="the topic's owner",
            on_down=self.health.mark_down,
        )
        return None if answer is None else (answer.status, answer.body)

    # -- local operations (the store, mapped errors, metrics) -------------------

    @staticmethod
    async def _store_call(op: Awaitable[T]) -> T:
        try:
            return await op
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None

    def _wake(self, topic: str) -> None:
        event = self._wakeups.pop(topic, None)
        if event is not None:
            event.set()

    async def push(self, topic: str, message_id: str, body: bytes) -> bool:
        """True when enqueued, False for a duplicate."""
        result = await self._store_call(self.store.push(topic, message_id, body))
        if not result.duplicate:
            self.metrics.queue_pushes.inc()
            self._wake(topic)
        return not result.duplicate

    async def pop(self, topic: str, consumer_id: str, visibility_timeout: float, wait: float) -> Delivery | None:
        deadline = time.monotonic() + wait
        while True:
            event = self._wakeups.setdefault(topic, asyncio.Event())
            delivery = await self._store_call(self.store.pop(topic, consumer_id, visibility_timeout))
            if delivery is not None:
                self.metrics.queue_pops.inc()
                return delivery
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(self.poll_interval, remaining)):
                    await event.wait()

    async def ack(self, topic: str, consumer_id: str, message_id: str) -> bool:
        done = await self._store_call(self.store.ack(topic, consumer_id, message_id))
        if done:
            self.metrics.queue_acks.inc()
        return done

    async def nack(self, topic: str, consumer_id: str, message_id: str) -> bool:
        done = await self._store_call(self.store.nack(topic, consumer_id, message_id))
        if done:
            self.metrics.queue_nacks.inc()
            self._wake(topic)
        return done

    async def extend(self, topic: str, consumer_id: str, message_id: str, visibility_timeout: float) -> bool:
        return await self._store_call(self.store.extend(topic, consumer_id, message_id, visibility_timeout))

    async def stats(self, topic: str) -> dict[str, int]:
        return await self._store_call(self.store.stats(topic))

    async def topics(self, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Up to ``limit`` topics known in Redis, sorted, each ``{"topic", "ready", "in_flight",
        "dead", "owner"}``; and whether more may exist (read-only, for dashboards)."""
        names, truncated = await self._store_call(self.store.known_topics(limit))
        counts = await self._store_call(self.store.stats_many(names))
        return [{"topic": t, **counts[t], "owner": self.owner(t)} for t in names], truncated

    async def dead_letters(self, topic: str, limit: int) -> list[Any]:
        return await self._store_call(self.store.dead_letters(topic, limit))

    async def redrive(self, topic: str, limit: int) -> int:
        moved = await self._store_call(self.store.redrive(topic, limit))
        if moved:
            self._wake(topic)
        return moved
