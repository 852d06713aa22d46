"""``MemoryQueueStore``: the dict-backed twin of ``RedisQueueStore``, for tests.

It keeps the contract of ``rakit.queue.store`` (rules 1-9 there) in plain
Python, and the same contract suite checks both stores, with a differential
test that drives them with the same calls and clock moves and compares every
answer (``tests/integration/test_queue_store_contract.py``).

How it keeps each rule:

1. **One step per call.**  A method does no I/O and never awaits: it runs
   to its end before any other task runs, so every step is atomic.  An
   argument is checked (rule 3) before anything changes.
2. **Time.**  ``clock`` is required (no default: the module reads no clock
   of its own); tests pass a hand-moved one, a node ``time.time``.
4. **Order.**  Each topic's ready messages are a heap of (push number, id);
   a message keeps its number (``_Topic.order``) until acked, and redrive
   gives it the next one.
5. / 6. / 7.  Dead letters are a list, oldest first; the dedup window a dict
   id -> first push time with a heap to trim it; in-flight messages a dict
   per consumer, id -> deadline.  The ``max_in_flight`` bound is checked
   first thing in pop.
8. **Discovery** is computed from the state itself, so it is exact;
   ``known_topics`` never stops early (never flagged partial unless over
   ``limit``).
9. **Errors.**  Set ``fail_with`` to an exception and every call (after
   its arguments are checked, as with Redis) raises ``Unavailable`` naming
   it, changing nothing; ``None`` serves again.  ``redis_state`` is a
   ``RedisState`` that reports serving from the start, so the service
   shows an available queue; ``fail_with`` does not change it.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rakit.errors import Unavailable
from rakit.queue.redis_state import RedisState
from rakit.queue.store import (
    MAX_IN_FLIGHT,
    DeadLetter,
    Delivery,
    PushResult,
    RequeueResult,
    check_body,
    check_consumer,
    check_count,
    check_dedup_window,
    check_instant,
    check_message_id,
    check_offset,
    check_seconds,
    check_topic,
    too_many_in_flight,
)

if TYPE_CHECKING:
    from rakit.queue.store import QueueStore

__all__ = ["MemoryQueueStore"]


@dataclass(slots=True)
class _Topic:
    """One topic's state."""

    seq: int = 0  # the last push number given out (0: never pushed to)
    ready: list[tuple[int, str]] = field(default_factory=list)  # heap of (push number, id)
    bodies: dict[str, bytes] = field(default_factory=dict)  # live messages
    order: dict[str, int] = field(default_factory=dict)  # id -> push number
    deliveries: dict[str, int] = field(default_factory=dict)  # id -> delivery count
    dead: list[str] = field(default_factory=list)  # oldest first
    in_flight: dict[str, dict[str, float]] = field(default_factory=dict)  # consumer -> {id: deadline}
    seen: dict[str, float] = field(default_factory=dict)  # dedup window: id -> first push time
    seen_heap: list[tuple[float, str]] = field(default_factory=list)  # (first push time, id), to trim ``seen``

    def take(self, consumer_id: str, message_id: str) -> bool:
        """Take ``message_id`` out of ``consumer_id``'s in-flight messages; False if not there."""
        held = self.in_flight.get(consumer_id)
        if held is None or message_id not in held:
            return False
        del held[message_id]
        if not held:
            del self.in_flight[consumer_id]
        return True

    def give_back(self, message_id: str, max_deliveries: int) -> bool:
        """Return a message taken from flight to its place in the queue (True) or to the dead letters."""
        if self.deliveries.get(message_id, 0) >= max_deliveries:
            self.dead.append(message_id)
            return False
        heapq.heappush(self.ready, (self.order[message_id], message_id))
        return True

    def deadlines(self) -> list[tuple[float, str]]:
        """Every in-flight (deadline, ``"consumer:id"``), in the order requeue takes them (rule 7)."""
        return sorted((d, f"{c}:{i}") for c, held in self.in_flight.items() for i, d in held.items())

    def counts(self) -> dict[str, int]:
        in_flight = sum(len(held) for held in self.in_flight.values())
        return {"ready": len(self.ready), "in_flight": in_flight, "dead": len(self.dead)}


_NO_TOPIC = _Topic()  # what a topic never written to looks like (read-only)


class MemoryQueueStore:
    """Topic queues in dicts, kept by the contract of ``rakit.queue.store``."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        max_deliveries: int = 5,
        dedup_window: float = 300.0,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self.max_deliveries = check_count(max_deliveries, "max_deliveries")
        self.max_in_flight = check_count(max_in_flight, "max_in_flight")
        self.dedup_window = check_dedup_window(dedup_window)
        self.clock = clock
        #: Not None: every call raises ``Unavailable`` naming it (rule 9).
        self.fail_with: Exception | None = None
        #: Always serving (the twin has no Redis to lose).
        self.redis_state = RedisState()
        self.redis_state.served(write=True)
        self._topics: dict[str, _Topic] = {}

    # -- helpers -------------------------------------------------------------

    def _serve(self, what: str) -> None:
        failure = self.fail_with
        if failure is None:
            return
        if isinstance(failure, Unavailable):
            detail = failure.detail
        else:
            detail = f"queue store unavailable during {what}: {type(failure).__name__}: {failure}"
        raise Unavailable(detail) from failure

    def _read(self, topic: str, what: str) -> _Topic:
        """``topic``'s state for a read (an empty one if never written); checks the name and ``fail_with``."""
        check_topic(topic)
        self._serve(what)
        return self._topics.get(topic, _NO_TOPIC)

    def _written(self, topic: str) -> _Topic:
        state = self._topics.get(topic)
        if state is None:
            state = self._topics[topic] = _Topic()
        return state

    # -- writes ----------------------------------------------------------------

    async def ping(self, timeout: float = 2.0) -> None:
        """Nothing to reach: ``Unavailable`` only while ``fail_with`` is set."""
        self._serve("ping")

    async def push(self, topic: str, message_id: str, body: bytes) -> PushResult:
        check_topic(topic)
        check_message_id(message_id)
        check_body(body)
        now = self.clock()
        cutoff = check_instant(now - self.dedup_window, "now") if self.dedup_window > 0 else None
        self._serve("push")
        t = self._written(topic)
        if cutoff is not None:
            while t.seen_heap and t.seen_heap[0][0] <= cutoff:
                at, old = heapq.heappop(t.seen_heap)
                if t.seen.get(old) == at:
                    del t.seen[old]
            if message_id in t.seen:
                return PushResult(message_id, duplicate=True)
        if message_id in t.bodies:
            return PushResult(message_id, duplicate=True)
        t.seq += 1
        t.bodies[message_id] = body
        t.order[message_id] = t.seq
        heapq.heappush(t.ready, (t.seq, message_id))
        if cutoff is not None:
            t.seen[message_id] = now
            heapq.heappush(t.seen_heap, (now, message_id))
        return PushResult(message_id, duplicate=False)

    async def pop(self, topic: str, consumer_id: str, visibility_timeout: float) -> Delivery | None:
        check_topic(topic)
        check_consumer(consumer_id)
        vt = check_seconds(visibility_timeout, "visibility_timeout")
        deadline = check_instant(self.clock() + vt, "deadline")
        self._serve("pop")
        t = self._topics.get(topic, _NO_TOPIC)
        if len(t.in_flight.get(consumer_id, ())) >= self.max_in_flight:
            raise too_many_in_flight(consumer_id, topic, self.max_in_flight)
        if not t.ready:
            return None
        _, message_id = heapq.heappop(t.ready)
        t.in_flight.setdefault(consumer_id, {})[message_id] = deadline
        count = t.deliveries[message_id] = t.deliveries.get(message_id, 0) + 1
        return Delivery(message_id, t.bodies[message_id], count, deadline)

    async def ack(self, topic: str, consumer_id: str, message_id: str) -> bool:
        check_topic(topic)
        check_consumer(consumer_id)
        check_message_id(message_id)
        self._serve("ack")
        t = self._topics.get(topic, _NO_TOPIC)
        if not t.take(consumer_id, message_id):
            return False
        del t.bodies[message_id]
        t.deliveries.pop(message_id, None)
        del t.order[message_id]
        return True

    async def nack(self, topic: str, consumer_id: str, message_id: str) -> bool:
        check_topic(topic)
        check_consumer(consumer_id)
        check_message_id(message_id)
        self._serve("nack")
        t = self._topics.get(topic, _NO_TOPIC)
        if not t.take(consumer_id, message_id):
            return False
        t.give_back(message_id, self.max_deliveries)
        return True

    async def extend(self, topic: str, consumer_id: str, message_id: str, visibility_timeout: float) -> bool:
        check_topic(topic)
        check_consumer(consumer_id)
        check_message_id(message_id)
        deadline = check_instant(self.clock() + check_seconds(visibility_timeout, "visibility_timeout"), "deadline")
        self._serve("extend")
        held = self._topics.get(topic, _NO_TOPIC).in_flight.get(consumer_id)
        if held is None or message_id not in held:
            return False
        held[message_id] = deadline
        return True

    async def requeue_expired(self, topic: str, now: float | None = None, limit: int = 100) -> RequeueResult:
        check_topic(topic)
        check_count(limit, "limit")
        at = check_instant(self.clock() if now is None else now, "now")
        self._serve("requeue")
        t = self._topics.get(topic, _NO_TOPIC)
        requeued: list[str] = []
        dead: list[str] = []
        for deadline, member in t.deadlines()[:limit]:
            if deadline > at:
                break
            consumer_id, _, message_id = member.partition(":")
            t.take(consumer_id, message_id)
            (requeued if t.give_back(message_id, self.max_deliveries) else dead).append(message_id)
        return RequeueResult(requeued, dead)

    async def redrive(self, topic: str, limit: int = 100) -> int:
        check_topic(topic)
        check_count(limit, "limit")
        self._serve("redrive")
        t = self._topics.get(topic, _NO_TOPIC)
        moved = t.dead[:limit]
        del t.dead[:limit]
        for message_id in moved:
            t.seq += 1
            t.order[message_id] = t.seq
            t.deliveries.pop(message_id, None)
            heapq.heappush(t.ready, (t.seq, message_id))
        return len(moved)

    # -- reads -------------------------------------------------------------------

    async def stats(self, topic: str) -> dict[str, int]:
        return self._read(topic, "stats").counts()

    async def dead_letters(self, topic: str, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        check_topic(topic)
        check_count(limit, "limit")
        check_offset(offset)
        t = self._read(topic, "dead_letters")
        return [DeadLetter(i, t.bodies.get(i, b""), t.deliveries.get(i, 0)) for i in t.dead[offset : offset + limit]]

    async def topics_with_inflight(self) -> set[str]:
        self._serve("discovery")
        return {name for name, t in self._topics.items() if t.in_flight}

    async def known_topics(self, limit: int, max_scans: int = 100, scan_count: int = 1000) -> tuple[list[str], bool]:
        check_count(limit, "limit")
        self._serve("topics")
        topics = sorted(name for name, t in self._topics.items() if t.seq > 0)
        return topics[:limit], len(topics) > limit

    async def stats_many(self, topics: list[str]) -> dict[str, dict[str, int]]:
        for topic in topics:
            check_topic(topic)
        if not topics:
            return {}
        self._serve("stats")
        return {topic: self._topics.get(topic, _NO_TOPIC).counts() for topic in topics}

    async def next_deadline(self, topic: str) -> float | None:
        held = self._read(topic, "next_deadline").in_flight
        return min((d for ids in held.values() for d in ids.values()), default=None)


if TYPE_CHECKING:

    def _keeps_the_protocol(store: MemoryQueueStore) -> QueueStore:  # mypy checks the twin's signatures
        return store
