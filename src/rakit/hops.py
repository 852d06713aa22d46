"""What bounds a request one node relays to another: a hop count and the caller's own deadline.

Any node accepts any request and relays what it cannot serve: to the Raft
leader (``rakit.http.forward``) or to a topic's owner on the ring
(``rakit.queue.service``).  Every relay carries ``HOPS_HEADER`` (how many
times the request was relayed) and, for a request that may wait,
``REMAINING_HEADER`` (the seconds its caller still waits), so that

- a relayed request is never relayed in a circle: a leader relay stops after
  ``MAX_LEADER_HOPS`` (a follower -> a stale leader -> the new one, and one
  more while an election settles); an owner relay is served where it lands
  (``MAX_OWNER_HOPS``: the ring can only be wrong once, and the owner serves
  whatever reaches it);
- a request is answered within the seconds its client said it would wait
  (a lock acquire's ``timeout``, a watch's, a pop's ``wait``; 0 for the
  others) plus ``MAX_OVERRUN``, whatever happens meanwhile (no leader, a
  slow disk, a peer that does not answer): then ``503 unavailable``, its
  outcome unknown (``answer_within``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from rakit.errors import Unavailable

HOPS_HEADER = "x-rakit-hops"
REMAINING_HEADER = "x-rakit-remaining"
MAX_LEADER_HOPS = 3
MAX_OWNER_HOPS = 1
MAX_OVERRUN = 10.0

T = TypeVar("T")


def hops_in(value: str | None) -> int:
    """The relay count a ``HOPS_HEADER`` value says (0 when absent or malformed)."""
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


async def answer_within(wait: float, work: Awaitable[T]) -> T:
    """``await work``, cancelled after ``wait + MAX_OVERRUN`` seconds (then ``Unavailable``)."""
    limit = wait + MAX_OVERRUN
    bound = asyncio.timeout(limit)
    try:
        async with bound:
            return await work
    except TimeoutError:
        if not bound.expired():
            raise
        raise Unavailable(f"the request could not be served within {limit:g} s; its outcome is unknown") from None
