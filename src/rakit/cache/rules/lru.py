"""A node's cache store: an LRU bounded by entry count and by bytes, with per-entry TTL.

Pure: time is a number the caller passes (``now``, seconds, any origin as long
as ``expires_at`` uses the same one).  The store knows nothing of coherence:
``CacheEntry.state`` is carried for ``rakit.cache.rules.coherence`` and never read
here.

Rules
-----
1.  An entry's size is ``len(key) + len(value) + ENTRY_OVERHEAD`` (keys are
    ASCII names; ``value`` is the JSON encoding).  The store holds at most
    ``capacity`` entries and at most ``max_bytes`` bytes in total.
2.  ``put`` of an entry larger than ``max_bytes`` raises ``EntryTooLarge`` (a
    ``TooLarge``: 413 at the HTTP boundary) and changes nothing.  Otherwise it
    replaces any entry under the same key, makes the key most recently used,
    then removes least-recently-used entries until both bounds hold again and
    returns their keys (the new entry itself is never removed: it fits).
3.  An entry with ``expires_at`` set is dead from ``now >= expires_at`` on.
    ``get`` and ``peek`` remove a dead entry they meet (an *expiration*) and
    answer None.  A dead entry removed by the bounds in ``put`` also counts
    as an expiration, a live one as an *eviction*.
4.  ``get`` counts a hit or a miss and moves a hit to most recently used;
    ``peek`` counts neither and moves nothing.  ``remove``, ``clear`` and
    ``restate`` count nothing.
5.  ``statistics()`` reports the counters and current occupancy (trio style).
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Final

from rakit.cache.rules.versions import Version
from rakit.errors import TooLarge

__all__ = [
    "ENTRY_OVERHEAD",
    "CacheEntry",
    "EntryTooLarge",
    "LruStatistics",
    "LruStore",
    "entry_size",
]

ENTRY_OVERHEAD = 128
"""Bytes charged per entry on top of key and value: dict slot, entry object, version."""


def entry_size(key: str, value: bytes) -> int:
    """The size an entry of ``key`` and ``value`` is charged (rule 1)."""
    return len(key) + len(value) + ENTRY_OVERHEAD


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One cached value.  ``size`` is derived (rule 1); use ``replace`` to change a field."""

    key: str
    value: bytes
    version: Version
    state: str
    expires_at: float | None = None
    size: int = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", entry_size(self.key, self.value))

    def expired(self, now: float) -> bool:
        """True from ``now >= expires_at`` on (rule 3)."""
        return self.expires_at is not None and now >= self.expires_at

    def with_state(self, state: str) -> CacheEntry:
        return self if state == self.state else replace(self, state=state)


class EntryTooLarge(TooLarge):
    """An entry bigger than the whole store (rule 2)."""

    def __init__(self, key: str, size: int, max_bytes: int) -> None:
        super().__init__(
            f"entry for {key!r} takes {size} bytes, more than the cache's {max_bytes}",
            size=size,
            max_bytes=max_bytes,
        )
        self.key = key
        self.size = size
        self.max_bytes = max_bytes


@dataclass(frozen=True, slots=True)
class LruStatistics:
    size: int
    bytes: int
    capacity: int
    max_bytes: int
    hits: int
    misses: int
    evictions: int
    expirations: int


# A held entry, packed as an exact tuple of atomic values: the cyclic garbage
# collector untracks such tuples, so a cache of a million entries costs a full
# collection nothing (a dataclass per entry made every one of them a scan).
# (value, version counter, version node, state, expires_at, size)
_Packed = tuple[bytes, int, str, str, float | None, int]
# Literal indexes (not ``range(6)``), so a type checker knows each field's type.
_VALUE: Final = 0
_COUNTER: Final = 1
_NODE: Final = 2
_STATE: Final = 3
_EXPIRES: Final = 4
_SIZE: Final = 5


def _pack(entry: CacheEntry) -> _Packed:
    v = entry.version
    # str(): a StrEnum member is an object the collector tracks; its plain value is not.
    return (entry.value, v.counter, v.node, str(entry.state), entry.expires_at, entry.size)


def _unpack(key: str, packed: _Packed) -> CacheEntry:
    return CacheEntry(key, packed[_VALUE], Version(packed[_COUNTER], packed[_NODE]), packed[_STATE], packed[_EXPIRES])


def _dead(packed: _Packed, now: float) -> bool:
    expires = packed[_EXPIRES]
    return expires is not None and now >= expires


class LruStore:
    """Key -> entry, least recently used first (an ``OrderedDict`` of packed tuples).

    Entries with a TTL are also in a heap by expiry, so ``purge_expired``
    costs what it removes, not a scan of the store.
    """

    def __init__(self, capacity: int, max_bytes: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, not {capacity}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, not {max_bytes}")
        self._capacity = capacity
        self._max_bytes = max_bytes
        self._entries: OrderedDict[str, _Packed] = OrderedDict()
        self._expiries: list[tuple[float, str]] = []  # heap; may hold stale pairs
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._expirations = 0

    # -- occupancy ---------------------------------------------------------

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @property
    def bytes(self) -> int:
        """Total size of the entries held (rule 1)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        """Held, dead or alive (no expiry check: there is no ``now``)."""
        return key in self._entries

    def items(self) -> list[tuple[str, CacheEntry]]:
        """A snapshot of (key, entry), least recently used first, dead ones included."""
        return [(key, _unpack(key, packed)) for key, packed in self._entries.items()]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def fits(self, entry: CacheEntry) -> bool:
        """Whether ``put`` would accept ``entry`` (rule 2)."""
        return entry.size <= self._max_bytes

    # -- reads -------------------------------------------------------------

    def get(self, key: str, now: float) -> CacheEntry | None:
        """A live entry (a hit, made most recently used) or None (a miss)."""
        packed = self._live(key, now)
        if packed is None:
            self._misses += 1
            return None
        self._hits += 1
        self._entries.move_to_end(key)
        return _unpack(key, packed)

    def peek(self, key: str, now: float | None) -> CacheEntry | None:
        """A live entry or None; no statistics, no LRU move (dead ones still go).

        ``now=None`` skips the expiry check: the entry held, dead or alive.
        """
        packed = self._live(key, now)
        return None if packed is None else _unpack(key, packed)

    def _live(self, key: str, now: float | None) -> _Packed | None:
        packed = self._entries.get(key)
        if packed is not None and now is not None and _dead(packed, now):
            self._drop(key)
            self._expirations += 1
            return None
        return packed

    # -- writes ------------------------------------------------------------

    def put(self, entry: CacheEntry, now: float) -> list[str]:
        """Store ``entry`` as most recently used; the keys pushed out (rule 2)."""
        if not self.fits(entry):
            raise EntryTooLarge(entry.key, entry.size, self._max_bytes)
        old = self._entries.pop(entry.key, None)
        if old is not None:
            self._bytes -= old[_SIZE]
        self._entries[entry.key] = _pack(entry)
        self._bytes += entry.size
        if entry.expires_at is not None:
            self._schedule(entry.expires_at, entry.key)
        removed: list[str] = []
        while len(self._entries) > self._capacity or self._bytes > self._max_bytes:
            key, victim = self._entries.popitem(last=False)
            self._bytes -= victim[_SIZE]
            if _dead(victim, now):
                self._expirations += 1
            else:
                self._evictions += 1
            removed.append(key)
        return removed

    def _schedule(self, expires_at: float, key: str) -> None:
        heap = self._expiries
        heapq.heappush(heap, (expires_at, key))
        if len(heap) > 2 * len(self._entries) + 1024:  # mostly stale pairs: rebuild
            heap[:] = [(p[_EXPIRES], k) for k, p in self._entries.items() if p[_EXPIRES] is not None]
            heapq.heapify(heap)

    def restate(self, key: str, state: str) -> CacheEntry | None:
        """Change a held entry's ``state`` in place (no LRU move); the new entry or None."""
        packed = self._entries.get(key)
        if packed is None:
            return None
        if packed[_STATE] != state:
            packed = (packed[_VALUE], packed[_COUNTER], packed[_NODE], str(state), packed[_EXPIRES], packed[_SIZE])
            self._entries[key] = packed  # an existing key keeps its place
        return _unpack(key, packed)

    def remove(self, key: str) -> CacheEntry | None:
        """Take ``key`` out (dead or alive); the entry it held, or None."""
        packed = self._entries.get(key)
        if packed is None:
            return None
        self._drop(key)
        return _unpack(key, packed)

    def clear(self) -> int:
        """Empty the store; how many entries it held."""
        count = len(self._entries)
        self._entries.clear()
        self._expiries.clear()
        self._bytes = 0
        return count

    def purge_expired(self, now: float) -> list[str]:
        """Remove every dead entry (for a periodic sweeper); their keys."""
        heap = self._expiries
        dead: list[str] = []
        while heap and heap[0][0] <= now:
            expires_at, key = heapq.heappop(heap)
            packed = self._entries.get(key)
            if packed is not None and packed[_EXPIRES] == expires_at and _dead(packed, now):
                self._drop(key)
                dead.append(key)
        self._expirations += len(dead)
        return dead

    def _drop(self, key: str) -> None:
        self._bytes -= self._entries.pop(key)[_SIZE]

    def statistics(self) -> LruStatistics:
        return LruStatistics(
            size=len(self._entries),
            bytes=self._bytes,
            capacity=self._capacity,
            max_bytes=self._max_bytes,
            hits=self._hits,
            misses=self._misses,
            evictions=self._evictions,
            expirations=self._expirations,
        )
