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
   The owner's answer comes back as the value serving the call here gives
   (``Pushed``, ``Popped`` or None), its refusal as the same ``rakit.errors``
   exception (``rakit.relay`` rule 5): a caller cannot tell where a call was
   served but by ``Pushed.node``.  Without a ``Relay`` every call is served
   here.  Reads (stats, dead letters) and redrive are served locally.
3. **Monitor.**  Every ``monitor_interval`` seconds the node lists the topics
   with messages in flight and, for those it owns *now*, requeues expired
   messages (or dead-letters them).  It never touches a topic it does not own.
4. **Long polling.**  A pop with ``wait > 0`` that finds nothing ready
   re-checks when a local push to the topic wakes it, or every
   ``poll_interval`` seconds, until ``wait`` passes (then: nothing, 204).
5. **Errors.**  Redis down or refusing the node: ``Unavailable`` (503) from
   the store within its ``op_timeout``, its detail saying what Redis said
   (``rakit.queue.redis_errors``); a ``ValueError`` from the store becomes
   ``InvalidRequest``; an ack, nack or extend of a message not in flight for
   that consumer, ``NotInFlight`` (404).
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
from functools import partial
from typing import Any, TypeVar

import aiohttp
import msgspec

from rakit.errors import InvalidRequest, NotInFlight, Unavailable
from rakit.hops import MAX_OWNER_HOPS, answer_within
from rakit.metrics import NodeMetrics
from rakit.queue.redis_state import RedisState
from rakit.queue.ring import ConsistentHashRing
from rakit.queue.store import QueueStore
from rakit.relay import Relay, Relayed, relayed_error
from rakit.security.internal import InternalAuth

log = logging.getLogger(__name__)

RELAY_TIMEOUT = 6.0  # beyond a pop's wait: the owner's Redis calls are bounded by op_timeout
REDIS_PROBE_TIMEOUT = 2.0

T = TypeVar("T")
_json = msgspec.json.Encoder()

#: The calls a relay that broke after sending may repeat elsewhere (rule 2).
RETRY_SAFE = frozenset({"push", "pop"})


class Pushed(msgspec.Struct, frozen=True):
    """A push served: ``message_id`` is in ``topic`` (enqueued now, or a duplicate already there) by ``node``."""

    topic: str
    message_id: str
    node: str


class Popped(msgspec.Struct, frozen=True):
    """A message delivered: in flight for the consumer that popped it; ``message`` is its JSON as pushed."""

    topic: str
    message_id: str
    message: msgspec.Raw
    delivery_count: int


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
        # None: every call is served here (one node, or a test); safe, since Redis is shared (rule 2).
        self.relay = relay
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

    # -- serving (rule 2) -------------------------------------------------------

    async def push(self, topic: str, message_id: str, body: bytes, *, hops: int = 0) -> Pushed:
        """Push ``body`` (JSON) as ``message_id``, at the topic's owner; a duplicate answers the same."""
        payload = {"topic": topic, "message": msgspec.Raw(body), "message_id": message_id}
        return await self.serve("push", payload, hops, partial(self.push_here, topic, message_id, body))

    async def pop(
        self, topic: str, consumer_id: str, visibility_timeout: float, wait: float = 0.0, *, hops: int = 0
    ) -> Popped | None:
        """The next ready message of ``topic``, in flight for ``consumer_id``; None when none came within ``wait``."""
        payload = {"topic": topic, "consumer_id": consumer_id, "visibility_timeout": visibility_timeout}
        here = partial(self.pop_here, topic, consumer_id, visibility_timeout, wait)
        return await self.serve("pop", payload, hops, here, wait=wait)

    async def ack(self, topic: str, consumer_id: str, message_id: str, *, hops: int = 0) -> None:
        """The message is done; ``NotInFlight`` when it is not in flight for ``consumer_id``."""
        payload = {"topic": topic, "consumer_id": consumer_id, "message_id": message_id}
        await self.serve("ack", payload, hops, partial(self.ack_here, topic, consumer_id, message_id))

    async def nack(self, topic: str, consumer_id: str, message_id: str, *, hops: int = 0) -> None:
        """The message is ready again at once; ``NotInFlight`` when it is not in flight for ``consumer_id``."""
        payload = {"topic": topic, "consumer_id": consumer_id, "message_id": message_id}
        await self.serve("nack", payload, hops, partial(self.nack_here, topic, consumer_id, message_id))

    async def extend(
        self, topic: str, consumer_id: str, message_id: str, visibility_timeout: float, *, hops: int = 0
    ) -> None:
        """The message stays in flight ``visibility_timeout`` s from now; ``NotInFlight`` when it is not."""
        payload = {
            "topic": topic,
            "consumer_id": consumer_id,
            "message_id": message_id,
            "visibility_timeout": visibility_timeout,
        }
        here = partial(self.extend_here, topic, consumer_id, message_id, visibility_timeout)
        await self.serve("extend", payload, hops, here)

    async def serve(
        self, op: str, payload: dict[str, Any], hops: int, local: Callable[[], Awaitable[T]], *, wait: float = 0.0
    ) -> T:
        """``local()`` when this node owns the topic (or the call was relayed
        already), else ``op`` relayed to the owner, its answer decoded to what
        ``local()`` would return; fail over to the next live node.
        Answered within ``wait + MAX_OVERRUN`` seconds in any case (then ``Unavailable``)."""
        return await answer_within(wait, self._serve(op, payload, hops, local, wait))

    async def _serve(
        self, op: str, payload: dict[str, Any], hops: int, local: Callable[[], Awaitable[T]], wait: float
    ) -> T:
        topic = payload["topic"]
        started = time.monotonic()
        tried: set[str] = set()
        while True:
            owner = self.owner(topic)
            if owner == self.node_id or hops >= MAX_OWNER_HOPS or owner in tried or self.relay is None:
                return await local()
            tried.add(owner)
            remaining = max(0.0, wait - (time.monotonic() - started))
            answer = await self._relay(op, owner, {**payload, **({"wait": remaining} if wait else {})}, hops, remaining)
            if answer is not None:
                # op and local come paired from push..extend: the decoded answer is what local() returns.
                return _decoded(op, answer, f"the topic's owner {owner}")  # type: ignore[return-value]

    async def _relay(self, op: str, owner: str, payload: dict[str, Any], hops: int, wait: float) -> Relayed | None:
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
        if op in RETRY_SAFE:
            return None
        raise Unavailable(f"the topic's owner {owner} stopped answering; outcome unknown")

    async def _post(self, op: str, owner: str, payload: dict[str, Any], hops: int, wait: float) -> Relayed | None:
        assert self.relay is not None
        path = f"/queue/internal/{op}"
        body = _json.encode(payload)
        headers = {"content-type": "application/json"}
        if self.auth is not None:
            headers.update(self.auth.headers("POST", path, body, dst=owner))
        self.metrics.queue_forwarded.inc()
        return await self.relay.call(
            owner,
            "POST",
            self.peers[owner] + path,
            body,
            headers,
            hops=hops,
            remaining=None,
            slack=wait + RELAY_TIMEOUT,
            retry_safe=op in RETRY_SAFE,
            what="the topic's owner",
            on_down=self.health.mark_down,
        )

    # -- served here: what the owner does (the store, mapped errors, metrics) ------

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

    async def push_here(self, topic: str, message_id: str, body: bytes) -> Pushed:
        result = await self._store_call(self.store.push(topic, message_id, body))
        if not result.duplicate:
            self.metrics.queue_pushes.inc()
            self._wake(topic)
        return Pushed(topic, message_id, self.node_id)

    async def pop_here(self, topic: str, consumer_id: str, visibility_timeout: float, wait: float) -> Popped | None:
        deadline = time.monotonic() + wait
        while True:
            event = self._wakeups.setdefault(topic, asyncio.Event())
            delivery = await self._store_call(self.store.pop(topic, consumer_id, visibility_timeout))
            if delivery is not None:
                self.metrics.queue_pops.inc()
                return Popped(topic, delivery.message_id, msgspec.Raw(delivery.body), delivery.delivery_count)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(self.poll_interval, remaining)):
                    await event.wait()

    async def ack_here(self, topic: str, consumer_id: str, message_id: str) -> None:
        if not await self._store_call(self.store.ack(topic, consumer_id, message_id)):
            raise _not_in_flight(topic, consumer_id, message_id)
        self.metrics.queue_acks.inc()

    async def nack_here(self, topic: str, consumer_id: str, message_id: str) -> None:
        if not await self._store_call(self.store.nack(topic, consumer_id, message_id)):
            raise _not_in_flight(topic, consumer_id, message_id)
        self.metrics.queue_nacks.inc()
        self._wake(topic)

    async def extend_here(self, topic: str, consumer_id: str, message_id: str, visibility_timeout: float) -> None:
        if not await self._store_call(self.store.extend(topic, consumer_id, message_id, visibility_timeout)):
            raise _not_in_flight(topic, consumer_id, message_id)

    # -- served here, never relayed (reads and redrive) --------------------------

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


def _not_in_flight(topic: str, consumer_id: str, message_id: str) -> NotInFlight:
    return NotInFlight(f"message {message_id!r} is not in flight for {consumer_id!r} on topic {topic!r}")


_pushed = msgspec.json.Decoder(Pushed)
_popped = msgspec.json.Decoder(Popped)


def _decoded(op: str, answer: Relayed, who: str) -> Pushed | Popped | None:
    """``who``'s answer to ``op`` as the value serving it here returns; its refusal raised (rule 5)."""
    if not 200 <= answer.status < 300:
        raise relayed_error(answer, who)
    try:
        if op == "push":
            return _pushed.decode(answer.body)
        if op == "pop" and answer.status != 204:
            return _popped.decode(answer.body)
    except msgspec.DecodeError:
        raise Unavailable(f"{who} answered {op} with a body that is not its answer; outcome unknown") from None
    return None  # a pop that found nothing; an ack, nack or extend done
