"""The transport's in-memory twin: a network of nodes in one event loop, no sockets, with faults.

``MemoryNetwork`` hands out one ``MemoryTransport`` per node id (the
``Transport`` protocol of ``rakit.transport.base``) and delivers what one
node sends to the receiver registered for the destination (a driver's
``receive``, or any ``Callable[[list[AnyMessage]], None]``).  Tests run
real ``RaftDriver``s over it; faults are switched on and off while they run.

Rules:

1. ``send`` never blocks and never raises; what it cannot deliver is
   dropped and counted in ``stats`` (by reason), as a lossy network would.
2. Each link (``src`` -> ``dst``) is FIFO, as a stream is: messages arrive in
   the order they were sent, a delay never reorders them.  The sender's
   ``run()`` delivers them: a node whose ``run()`` is not running sends
   nothing (a crashed node).  Each receive call gets every message that is
   due from one sender at once (one batch, like one frame).
3. Every link's queue is bounded (``max_queued``): past it new messages are
   dropped (``overflow``), so a peer that never reads cannot grow memory.
4. Faults, checked when a message is sent and again when it is due (a cut
   made while a message is in flight loses it):

   - ``cut(a, b)``: no message between ``a`` and ``b`` either way
     (``one_way=True``: only ``a`` -> ``b``);
   - ``partition(*groups)``: a node reaches only the nodes of its group;
     the nodes named in no group form one more group;
   - ``drop(predicate, rate=...)``: a message the predicate accepts (every
     message without one) is lost with probability ``rate``, drawn from the
     network's seeded ``random.Random``;
   - ``delay(seconds, jitter=...)``: each message is due that long after it
     was sent (plus up to ``jitter``, drawn from the same ``Random``);
   - ``heal()``: every fault above is gone (messages already dropped stay
     lost).

   ``drop`` returns a function that takes that rule away again.
5. A new transport for an id replaces the old one (a restarted node): the
   old one's messages, queued or new, are dropped (``stale``).

Times come from the event loop's clock; nothing here sleeps to hope, the
delivery task waits for the next due message or for a send.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable

from rakit.raft.messages import AnyMessage

Receiver = Callable[[list[AnyMessage]], None]
Predicate = Callable[[AnyMessage], bool]

MAX_QUEUED = 10_000  # per link, as the HTTP transport's per-peer queue


class MemoryNetwork:
    def __init__(self, *, rng: random.Random | None = None, max_queued: int = MAX_QUEUED) -> None:
        if max_queued < 1:
            raise ValueError("max_queued must be at least 1")
        self.rng = rng if rng is not None else random.Random(0)
        self.max_queued = max_queued
        #: messages by fate: sent, delivered, and dropped as cut, rule, overflow, unknown, stale
        self.stats: Counter[str] = Counter()
        self._transports: dict[str, MemoryTransport] = {}
        self._receivers: dict[str, Receiver] = {}
        self._cuts: set[tuple[str, str]] = set()  # (src, dst) pairs that lose their messages
        self._groups: list[frozenset[str]] | None = None
        self._rules: list[tuple[Predicate | None, float]] = []
        self._delay = 0.0
        self._jitter = 0.0

    # -- nodes -----------------------------------------------------------------

    def transport(self, node_id: str, receiver: Receiver | None = None) -> MemoryTransport:
        """A transport sending as ``node_id`` (replacing an earlier one); ``receiver`` gets its messages."""
        transport = MemoryTransport(self, node_id)
        self._transports[node_id] = transport
        if receiver is not None:
            self._receivers[node_id] = receiver
        return transport

    def attach(self, node_id: str, receiver: Receiver) -> None:
        """Deliver the messages addressed to ``node_id`` to ``receiver`` (e.g. a driver's ``receive``)."""
        self._receivers[node_id] = receiver

    def detach(self, node_id: str) -> None:
        """Messages to ``node_id`` are dropped from now on (``unknown``), until it is attached again."""
        self._receivers.pop(node_id, None)

    # -- faults ----------------------------------------------------------------

    def cut(self, a: str, b: str, *, one_way: bool = False) -> None:
        """Lose every message from ``a`` to ``b`` (and from ``b`` to ``a`` unless ``one_way``)."""
        self._cuts.add((a, b))
        if not one_way:
            self._cuts.add((b, a))

    def partition(self, *groups: Iterable[str]) -> None:
        """Split the network: a node reaches only its own group (the unnamed nodes are one more group)."""
        named = [frozenset(group) for group in groups]
        seen: set[str] = set()
        for group in named:
            if seen & group:
                raise ValueError(f"{sorted(seen & group)} named in two groups")
            seen |= group
        self._groups = named

    def drop(self, predicate: Predicate | None = None, *, rate: float = 1.0) -> Callable[[], None]:
        """Lose each message ``predicate`` accepts (every message without one) with probability ``rate``."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate {rate} is not a probability")
        rule = (predicate, rate)
        self._rules.append(rule)

        def remove() -> None:
            if rule in self._rules:
                self._rules.remove(rule)

        return remove

    def delay(self, seconds: float, *, jitter: float = 0.0) -> None:
        """Hold every message sent from now on ``seconds`` (plus up to ``jitter``) before it is due."""
        if seconds < 0 or jitter < 0:
            raise ValueError("a delay is not negative")
        self._delay, self._jitter = seconds, jitter

    def heal(self) -> None:
        """Every link works again: no cut, partition, drop rule or delay."""
        self._cuts.clear()
        self._groups = None
        self._rules.clear()
        self._delay = self._jitter = 0.0
        for transport in self._transports.values():
            transport.wake.set()  # what was delayed may be due now

    def reachable(self, src: str, dst: str) -> bool:
        """False when a cut or the partition stands between ``src`` and ``dst``."""
        if (src, dst) in self._cuts:
            return False
        if self._groups is not None:
            return self._group_of(src) == self._group_of(dst)
        return True

    def _group_of(self, node: str) -> int:
        assert self._groups is not None
        for number, group in enumerate(self._groups):
            if node in group:
                return number
        return -1

    def _lost(self, message: AnyMessage) -> str | None:
        """Why ``message`` is lost as it is sent (None: it goes)."""
        if not self.reachable(message.src, message.dst):
            return "cut"
        for predicate, rate in self._rules:
            if (predicate is None or predicate(message)) and (rate >= 1.0 or self.rng.random() < rate):
                return "rule"
        return None

    def _due_after(self) -> float:
        return self._delay + (self.rng.uniform(0.0, self._jitter) if self._jitter else 0.0)


class MemoryTransport:
    """One node's end of a ``MemoryNetwork``: a bounded FIFO queue per destination."""

    sends_at_once = False  # messages leave when run() delivers them

    def __init__(self, network: MemoryNetwork, node_id: str) -> None:
        self.network = network
        self.node_id = node_id
        self.wake = asyncio.Event()
        self._links: dict[str, deque[tuple[float, AnyMessage]]] = {}

    @property
    def queued(self) -> int:
        """Messages sent and not yet delivered or dropped."""
        return sum(len(queue) for queue in self._links.values())

    def send(self, messages: list[AnyMessage]) -> None:
        net = self.network
        stats = net.stats
        if net._transports.get(self.node_id) is not self:
            stats["stale"] += len(messages)
            return
        now = _now()
        for message in messages:
            stats["sent"] += 1
            reason = net._lost(message)
            if reason is not None:
                stats[reason] += 1
                continue
            queue = self._links.setdefault(message.dst, deque())
            if len(queue) >= net.max_queued:
                stats["overflow"] += 1
                continue
            due = now + net._due_after()
            if queue and queue[-1][0] > due:
                due = queue[-1][0]  # FIFO per link: a message is never due before the one sent before it
            queue.append((due, message))
        self.wake.set()

    async def run(self) -> None:
        """Deliver each message when it is due, until cancelled."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                self.wake.clear()
                next_due = self._deliver_due(loop.time())
                if next_due is None:
                    await self.wake.wait()
                    continue
                try:
                    async with asyncio.timeout_at(next_due):
                        await self.wake.wait()
                except TimeoutError:
                    pass
        finally:
            if self._links:
                self.network.stats["stale"] += self.queued
                self._links.clear()  # a stopped node's unsent messages are gone

    def _deliver_due(self, now: float) -> float | None:
        """Deliver every due message; when the next one is due (None: nothing queued)."""
        net = self.network
        stats = net.stats
        stale = net._transports.get(self.node_id) is not self
        next_due: float | None = None
        for dst, queue in list(self._links.items()):
            batch: list[AnyMessage] = []
            while queue and queue[0][0] <= now:
                _, message = queue.popleft()
                if stale:
                    stats["stale"] += 1
                elif not net.reachable(message.src, message.dst):
                    stats["cut"] += 1
                else:
                    batch.append(message)
            if queue:
                due = queue[0][0]
                next_due = due if next_due is None else min(next_due, due)
            else:
                del self._links[dst]
            if not batch:
                continue
            receiver = net._receivers.get(dst)
            if receiver is None:
                stats["unknown"] += len(batch)
                continue
            stats["delivered"] += len(batch)
            receiver(batch)
        return next_due


def _now() -> float:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:  # sent from outside the loop (a test's setup): the loop's clock is monotonic too
        return time.monotonic()
