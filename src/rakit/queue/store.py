"""The queue's storage seam: what the topic-owner service needs from a store, and the contract.

``QueueStore`` names exactly what ``rakit.queue.service`` calls (plus
``next_deadline``).  Two stores keep it: ``RedisQueueStore``
(``rakit.queue.redis_store``, production: how Redis keeps each rule is
written there under the same numbers) and ``MemoryQueueStore``
(``rakit.queue.memory_store``, its dict-backed twin for tests).  One
contract suite runs over both, with a differential test that drives both
with the same random calls and clock moves and compares every answer
(``tests/integration/test_queue_store_contract.py``).

Rules -- the contract:

1. **One atomic step per call.**  push (with dedup), pop (to in flight,
   deadline, delivery count), ack, nack, extend, requeue_expired (with
   dead-lettering), redrive, and the reads stats / dead_letters each happen
   as ONE step: no other call sees one half-done, and none is lost or done
   twice by a crash.  Two concurrent pops never get the same message, two
   concurrent pushes of one id enqueue it once, and a message acked while a
   requeue runs is either acked or requeued, never both.  An argument
   refused (below) raises before anything changes.
2. **Time comes from the caller.**  The store reads its ``clock()`` (epoch
   seconds, injected) on push (the dedup window), pop and extend (deadline
   = now + ``visibility_timeout``) and requeue_expired without ``now``;
   deadlines are instants of that clock.  Nodes sharing one store should
   have synchronised clocks (NTP): a skew of *s* seconds shifts visibility
   deadlines and the dedup window by *s*.
3. **Names and arguments.**  Topic and consumer id are
   ``[A-Za-z0-9_.-]{1,128}``, message ids ``[A-Za-z0-9_.:-]{1,128}``
   (``ValueError`` otherwise: ``check_topic``, ``check_consumer``,
   ``check_message_id``).  A body is ``bytes`` (``TypeError`` otherwise),
   kept exactly.  Limits are integers >= 1, offsets integers >= 0,
   visibility timeouts positive finite seconds, instants finite
   (``ValueError`` otherwise).
4. **Order.**  Each push takes the next number of the topic's sequence; the
   head of the ready queue (what pop takes) is the lowest number, so it is
   always the earliest-pushed ready message.  A message that comes back
   (visibility expired, or nack) keeps its number: it returns to the head of
   the queue, ahead of everything pushed after it, in push order among
   several returning together.  First deliveries are therefore in push
   order, and so are redeliveries.  Redrive gives a dead letter a new number
   (it goes to the tail).
5. **Delivery count.**  pop increments it.  A message whose visibility
   expires, or that is nacked, goes back to the queue while its count is
   below ``max_deliveries``, else to the topic's dead letters (oldest first;
   ``dead_letters`` pages through them with their bodies and counts).
   Redrive moves up to ``limit`` of them, oldest first, to the tail and
   resets their counts.
6. **Dedup.**  A push whose message id the topic saw within
   ``dedup_window`` seconds (measured from its *first* push: an entry older
   than ``now - dedup_window``, that instant included, is forgotten), or
   which is still alive in the topic (ready, in flight or dead), is not
   enqueued again; the answer is the same message id with
   ``duplicate=True``.  Ids are therefore unique among a topic's live
   messages, which is what lets ack/nack/extend name a message by its id
   alone.  A duplicate push changes nothing (the first push time stays).
   ``dedup_window=0`` keeps only the live-message rule.
7. **In flight.**  A popped message is in flight for the consumer that
   popped it until acked, nacked, or returned by ``requeue_expired``.
   ack / nack / extend answer False when the message is not in flight for
   that consumer (acked already, requeued after its deadline, or never
   popped by it).  A message whose deadline passed but that no monitor has
   requeued yet is still in flight: it can be acked or extended.
   ``requeue_expired(topic, now, limit)`` returns up to ``limit`` messages
   whose deadline is ``<= now``, earliest deadline first (equal deadlines:
   by ``"<consumer>:<message id>"``), to the queue or the dead letters (rule
   5), and says which went where, in that order.  ``next_deadline`` is the
   earliest deadline in flight.  ``stats`` counts ready, in-flight (expired
   or not) and dead messages.
   One consumer holds at most ``max_in_flight`` messages of one topic
   (default ``MAX_IN_FLIGHT``, 1000): a pop beyond that raises
   ``TooManyInFlight`` (HTTP ``429 too_many_in_flight``) and changes
   nothing, whether or not a message is ready; two concurrent pops never
   pass the bound together.
8. **Discovery across topics.**  ``topics_with_inflight`` is exactly the
   set of topics with at least one message in flight (so a monitor that
   requeues those topics never misses an expired message).
   ``known_topics(limit)`` lists the topics ever pushed to (also the empty
   ones), sorted, at most ``limit``, and whether the list may be incomplete
   (a store may stop early on a huge keyspace: then it answers *some*
   ``limit`` topics, sorted, flagged).  ``stats_many`` is ``stats`` of
   several topics (each topic's counts read together, not atomically across
   topics).
9. **Errors.**  When the store's backend fails, every call raises
   ``rakit.errors.Unavailable`` (503) within a bounded time, its detail
   saying what the backend said; the step then either happened entirely or
   not at all (rule 1): a retried push is harmless (dedup), a retried pop at
   worst leaves one message in flight until its deadline (redelivered), and
   a retried ack may answer False for an ack that did happen.  The store's
   ``redis_state`` (``rakit.queue.redis_state``) is what ``/health`` and
   ``/status`` show.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from rakit.errors import TooManyInFlight

if TYPE_CHECKING:
    from rakit.queue.redis_state import RedisState

__all__ = [
    "MAX_IN_FLIGHT",
    "MESSAGE_ID",
    "NAME",
    "DeadLetter",
    "Delivery",
    "PushResult",
    "QueueStore",
    "RequeueResult",
    "check_body",
    "check_consumer",
    "check_count",
    "check_dedup_window",
    "check_instant",
    "check_message_id",
    "check_offset",
    "check_seconds",
    "check_topic",
    "too_many_in_flight",
]

#: Messages one consumer may hold in flight on one topic (rule 7).
MAX_IN_FLIGHT: Final = 1000

#: Topic and consumer names (rule 3): no ``{``, ``}`` or ``:``.
NAME: Final = re.compile(r"[A-Za-z0-9_.\-]{1,128}", re.ASCII)
#: Message ids (rule 3): a name that may also hold ``:``.
MESSAGE_ID: Final = re.compile(r"[A-Za-z0-9_.:\-]{1,128}", re.ASCII)


# ---------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PushResult:
    message_id: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Delivery:
    message_id: str
    body: bytes
    delivery_count: int
    deadline: float  # epoch seconds (store clock) when the visibility timeout ends


@dataclass(frozen=True, slots=True)
class RequeueResult:
    requeued: list[str]
    dead: list[str]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    message_id: str
    body: bytes
    delivery_count: int


# ---------------------------------------------------------------------------
# names and arguments (rule 3)
# ---------------------------------------------------------------------------


def _check(value: object, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise ValueError(f"bad {what} {value!r}: expected 1-128 characters of {pattern.pattern[:-7]}")
    return value


def check_topic(topic: object) -> str:
    """``topic`` if it is 1-128 characters of ``[A-Za-z0-9_.-]``, else ``ValueError``."""
    return _check(topic, NAME, "topic")


def check_consumer(consumer_id: object) -> str:
    """``consumer_id`` if it is 1-128 characters of ``[A-Za-z0-9_.-]``, else ``ValueError``."""
    return _check(consumer_id, NAME, "consumer_id")


def check_message_id(message_id: object) -> str:
    """``message_id`` if it is 1-128 characters of ``[A-Za-z0-9_.:-]``, else ``ValueError``."""
    return _check(message_id, MESSAGE_ID, "message_id")


def check_body(body: object) -> bytes:
    """``body`` if it is ``bytes``, else ``TypeError``."""
    if not isinstance(body, bytes):
        raise TypeError(f"body must be bytes, got {type(body).__name__}")
    return body


def check_instant(value: float, what: str) -> float:
    """``value`` as a float if it is a finite number (not a bool), else ``ValueError``."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def check_seconds(value: float, what: str) -> float:
    """``value`` as a float if it is a positive finite number of seconds, else ``ValueError``."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not (0 < value < math.inf):
        raise ValueError(f"{what} must be a positive finite number of seconds, got {value!r}")
    return float(value)


def check_count(value: int, what: str) -> int:
    """``value`` if it is an integer >= 1 (not a bool), else ``ValueError``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return value


def check_offset(value: int) -> int:
    """``value`` if it is an integer >= 0 (not a bool), else ``ValueError``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"offset must be an integer >= 0, got {value!r}")
    return value


def check_dedup_window(value: float) -> float:
    """``value`` as a float if it is a finite number >= 0, else ``ValueError``."""
    if not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise ValueError(f"dedup_window must be a finite number >= 0, got {value!r}")
    return float(value)


def too_many_in_flight(consumer_id: str, topic: str, bound: int) -> TooManyInFlight:
    """The refusal of a pop over the in-flight bound (rule 7)."""
    return TooManyInFlight(
        f"{consumer_id!r} already has {bound} messages of {topic!r} in flight: ack or nack some first"
    )


# ---------------------------------------------------------------------------
# the seam
# ---------------------------------------------------------------------------


class QueueStore(Protocol):
    """Topic queues kept by the contract above (module docstring, rules 1-9)."""

    #: Whether the backend serves this node, as the latest calls found (rule 9).
    redis_state: RedisState

    async def ping(self, timeout: float = 2.0) -> None:
        """``Unavailable`` unless the backend answers within ``timeout`` seconds."""
        ...

    async def push(self, topic: str, message_id: str, body: bytes) -> PushResult:
        """Enqueue ``body`` at the tail of ``topic`` unless ``message_id`` is a duplicate (rule 6)."""
        ...

    async def pop(self, topic: str, consumer_id: str, visibility_timeout: float) -> Delivery | None:
        """The head of ``topic``, now in flight for ``consumer_id``; None if nothing is ready;
        ``TooManyInFlight`` (nothing changed) at ``max_in_flight`` (rule 7)."""
        ...

    async def ack(self, topic: str, consumer_id: str, message_id: str) -> bool:
        """Forget a delivered message; False if it is not in flight for ``consumer_id``."""
        ...

    async def nack(self, topic: str, consumer_id: str, message_id: str) -> bool:
        """Give a message back at once (to its place at the head, or to the dead letters at
        ``max_deliveries``); False if it is not in flight for ``consumer_id``."""
        ...

    async def extend(self, topic: str, consumer_id: str, message_id: str, visibility_timeout: float) -> bool:
        """Set an in-flight message's deadline to now + ``visibility_timeout``; False if not in flight."""
        ...

    async def requeue_expired(self, topic: str, now: float | None = None, limit: int = 100) -> RequeueResult:
        """Return up to ``limit`` messages whose deadline is ``<= now`` (default: the clock) to
        the queue or the dead letters (rules 5, 7)."""
        ...

    async def redrive(self, topic: str, limit: int = 100) -> int:
        """Move up to ``limit`` dead letters (oldest first) to the tail, counts reset; how many moved."""
        ...

    async def stats(self, topic: str) -> dict[str, int]:
        """``{"ready", "in_flight", "dead"}`` counts of ``topic``, read atomically."""
        ...

    async def dead_letters(self, topic: str, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        """Dead letters of ``topic``, oldest first, from ``offset``, at most ``limit``."""
        ...

    async def topics_with_inflight(self) -> set[str]:
        """Every topic with at least one message in flight (rule 8)."""
        ...

    async def known_topics(self, limit: int, max_scans: int = 100, scan_count: int = 1000) -> tuple[list[str], bool]:
        """Topics ever pushed to, sorted, at most ``limit``; and whether the list may be incomplete
        (``max_scans`` / ``scan_count`` bound a store that must scan for them)."""
        ...

    async def stats_many(self, topics: list[str]) -> dict[str, dict[str, int]]:
        """``stats`` of several topics (each read together, not atomically across topics)."""
        ...

    async def next_deadline(self, topic: str) -> float | None:
        """The earliest visibility deadline in flight for ``topic`` (None if none)."""
        ...
