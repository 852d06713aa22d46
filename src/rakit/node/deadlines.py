"""A set of named deadlines: which timers are due at a given instant (pure; time passed in)."""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from typing import Any


class Deadlines:
    """Named deadlines; setting a name again replaces its deadline (lazy heap deletion)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Hashable]] = []
        self._live: dict[Hashable, tuple[float, int, Any]] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, name: Hashable) -> bool:
        return name in self._live

    def set(self, name: Hashable, deadline: float, payload: Any = None) -> None:
        self._seq += 1
        self._live[name] = (deadline, self._seq, payload)
        heapq.heappush(self._heap, (deadline, self._seq, name))

    def deadline(self, name: Hashable) -> float | None:
        """When ``name`` is due (None: not set)."""
        live = self._live.get(name)
        return None if live is None else live[0]

    def cancel(self, name: Hashable) -> None:
        self._live.pop(name, None)

    def clear(self) -> None:
        self._heap.clear()
        self._live.clear()

    def next_deadline(self) -> float | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[tuple[Hashable, Any]]:
        due: list[tuple[Hashable, Any]] = []
        while True:
            self._drop_stale()
            if not self._heap or self._heap[0][0] > now:
                return due
            _, _, name = heapq.heappop(self._heap)
            _, _, payload = self._live.pop(name)
            due.append((name, payload))

    def _drop_stale(self) -> None:
        heap = self._heap
        while heap:
            deadline, seq, name = heap[0]
            live = self._live.get(name)
            if live is not None and live[1] == seq:
                return
            heapq.heappop(heap)
