"""The clock seam of the async shell: what the driver reads and sleeps on.

``SystemClock`` is the real one.  ``ManualClock`` is its twin for tests: time
moves only when the test calls ``advance``, which wakes every sleeper whose
deadline it passed, in deadline order -- so a test of ticks or proposal
deadlines waits for a condition, never for wall time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (deadlines, ages)."""
        ...

    def perf(self) -> float:
        """A high-resolution clock for durations reported as metrics."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def perf(self) -> float:
        return time.perf_counter()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self.now

    def perf(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(seconds, 0.0), next(self._order), future))
        await future

    @property
    def sleepers(self) -> int:
        return sum(not f.done() for _, _, f in self._sleepers)

    async def advance(self, seconds: float) -> None:
        """Move time on by ``seconds``, waking each sleeper due on the way and letting it run."""
        end = self.now + seconds
        while self._sleepers and self._sleepers[0][0] <= end:
            due, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, due)
            if not future.done():
                future.set_result(None)
                for _ in range(3):  # let the woken task and what it wakes run
                    await asyncio.sleep(0)
        self.now = end


__all__ = ["Clock", "ManualClock", "SystemClock"]
