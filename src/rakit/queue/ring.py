"""A consistent-hash ring with virtual nodes: which node serves a topic.

Pure: no I/O, no clock, no randomness.  Rules:

1. Every node owns ``vnodes`` points on a ring of 64-bit integers.  Point
   ``i`` of node ``n`` sits at ``H(f"{n}#{i}")``; a key sits at ``H(key)``.
   ``H`` is the first 8 bytes of BLAKE2b (digest size 8), read big-endian.
   It is stable across processes and Python versions, unlike the salted
   built-in ``hash()``, so the same node set gives the same ring everywhere.
2. A key's **owner** is the node of the first point at or after the key's
   position, wrapping past the top of the ring to the lowest point.
3. Two points at the same position (a 64-bit collision, practically never)
   are ordered by node name, so the ring is still a pure function of the
   node set.
4. ``successors(key)`` walks the ring from the owner's point onwards and
   lists every distinct node once, in the order met: the owner first, then
   the node that takes over when the owner is down, and so on.  It is the
   fail-over order.
5. Adding a node moves to it only keys that now fall on its points (about
   ``1/N`` of all keys); removing one moves only the keys it owned, each to
   the next node in its successor list.  Every other key keeps its owner.
6. An empty ring has no owner: ``owner`` raises ``LookupError`` and
   ``successors`` returns ``[]``.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable

__all__ = ["DEFAULT_VNODES", "ConsistentHashRing", "stable_hash"]

#: Virtual nodes per node.  With 128, each of 3 or 5 nodes owns within about
#: ±10 % of the mean share of 10,000 keys (tests/unit/test_ring.py prints it).
DEFAULT_VNODES = 128


def stable_hash(text: str) -> int:
    """The ring position of ``text``: a 64-bit integer, the same in every process."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


class ConsistentHashRing:
    """Nodes placed on a hash ring; ``owner(key)`` names the node serving ``key``."""

    def __init__(self, nodes: Iterable[str] = (), vnodes: int = DEFAULT_VNODES) -> None:
        if vnodes < 1:
            raise ValueError(f"vnodes must be at least 1, got {vnodes}")
        self._vnodes = vnodes
        self._nodes: set[str] = set()
        self._points: list[tuple[int, str]] = []  # sorted (position, node)
        self._positions: list[int] = []  # the positions alone, for bisect
        for node in nodes:
            self.add(node)

    def __repr__(self) -> str:
        return f"ConsistentHashRing({sorted(self._nodes)!r}, vnodes={self._vnodes})"

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, node: object) -> bool:
        return node in self._nodes

    @property
    def nodes(self) -> frozenset[str]:
        """The nodes on the ring."""
        return frozenset(self._nodes)

    @property
    def vnodes(self) -> int:
        return self._vnodes

    def add(self, node: str) -> None:
        """Place ``node`` on the ring (no-op if it is already there)."""
        if not isinstance(node, str) or not node:
            raise ValueError(f"a node name must be a non-empty string, got {node!r}")
        if node in self._nodes:
            return
        self._nodes.add(node)
        for i in range(self._vnodes):
            bisect.insort(self._points, (stable_hash(f"{node}#{i}"), node))
        self._positions = [p for p, _ in self._points]

    def remove(self, node: str) -> None:
        """Take ``node`` off the ring (no-op if it is not there)."""
        if node not in self._nodes:
            return
        self._nodes.discard(node)
        self._points = [pt for pt in self._points if pt[1] != node]
        self._positions = [p for p, _ in self._points]

    def _start(self, key: str) -> int:
        """Index in ``_points`` of the first point at or after ``key``'s position."""
        index = bisect.bisect_left(self._positions, stable_hash(key))
        return 0 if index == len(self._points) else index

    def owner(self, key: str) -> str:
        """The node serving ``key`` (rule 2)."""
        if not self._points:
            raise LookupError("the ring has no nodes")
        return self._points[self._start(key)][1]

    def successors(self, key: str) -> list[str]:
        """Every node once, in ring order from ``key``'s owner: the fail-over order."""
        if not self._points:
            return []
        wanted = len(self._nodes)
        order: list[str] = []
        seen: set[str] = set()
        start = self._start(key)
        total = len(self._points)
        for step in range(total):
            node = self._points[(start + step) % total][1]
            if node not in seen:
                seen.add(node)
                order.append(node)
                if len(order) == wanted:
                    break
        return order
