"""The KV's bounded change history: what a watch resumes from.

Rules
-----
1.  Events are appended in revision order (several may share a revision:
    one txn, one prefix delete, one session end, one expiry batch).
2.  Whole revisions are trimmed from the old end, never part of one.
3.  An event is kept while it is among the last ``min_events`` events or
    younger than ``min_age`` seconds (by the ``at`` of the newest event);
    whichever keeps more.  Over ``max_events`` events or ``max_bytes`` of
    keys and values the oldest are trimmed whatever their age (the hard
    cap that keeps memory and snapshots bounded).
4.  ``compact_revision`` is the oldest revision a watch may start from:
    every change at or after it is kept.  ``since(R)`` is every kept event
    with revision >= R, or ``None`` when R < ``compact_revision``.
5.  ``snapshot``/``restore`` round-trip exactly.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

import msgspec

from rakit.statemachines.kv.commands import KvEvent

MIN_EVENTS = 10_000
MIN_AGE = 600.0
MAX_EVENTS = 100_000
MAX_BYTES = 64 * 1024 * 1024
EVENT_OVERHEAD = 64  # bytes counted per event beside its key and value


def event_size(event: KvEvent) -> int:
    return EVENT_OVERHEAD + len(event.key) + (len(event.value) if event.value is not None else 0)


class _Snapshot(msgspec.Struct):
    events: list[KvEvent]
    trimmed_upto: int


class History:
    def __init__(
        self,
        min_events: int = MIN_EVENTS,
        min_age: float = MIN_AGE,
        max_events: int = MAX_EVENTS,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self.min_events = min_events
        self.min_age = min_age
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._events: list[KvEvent] = []
        self._start = 0  # events before it are trimmed (dropped from the list in bulk)
        self._bytes = 0
        self.trimmed_upto = 0  # the newest revision trimmed

    def __len__(self) -> int:
        return len(self._events) - self._start

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def compact_revision(self) -> int:
        return self.trimmed_upto + 1

    @property
    def last_revision(self) -> int:
        return self._events[-1].revision if len(self) else self.trimmed_upto

    def append(self, events: list[KvEvent]) -> None:
        """Rule 1, then rule 3's trimming."""
        if not events:
            return
        self._events.extend(events)
        self._bytes += sum(event_size(e) for e in events)
        self._trim(events[-1].at)

    def _trim(self, now: float) -> None:
        while len(self) and self._over(now):
            self._drop_oldest_revision()
        if self._start > 4096 and self._start * 2 > len(self._events):
            del self._events[: self._start]
            self._start = 0

    def _over(self, now: float) -> bool:
        n = len(self)
        if n > self.max_events or self._bytes > self.max_bytes:
            return True
        return n > self.min_events and self._events[self._start].at < now - self.min_age

    def _drop_oldest_revision(self) -> None:
        """Rule 2."""
        revision = self._events[self._start].revision
        while self._start < len(self._events) and self._events[self._start].revision == revision:
            self._bytes -= event_size(self._events[self._start])
            self._start += 1
        self.trimmed_upto = revision

    def since(
        self, revision: int, match: Callable[[str], bool] | None = None, limit: int | None = None
    ) -> list[KvEvent] | None:
        """Rule 4: the kept events at or after ``revision`` whose key ``match``es.

        With ``limit``: about that many, always ending with a whole revision.
        """
        scanned = self.scan(revision, match, limit)
        return None if scanned is None else scanned[0]

    def scan(
        self, revision: int, match: Callable[[str], bool] | None = None, limit: int | None = None
    ) -> tuple[list[KvEvent], int] | None:
        """``since``, and the revision to go on from (past every event looked at, matched or not)."""
        if revision < self.compact_revision:
            return None
        events = self._events
        i = bisect.bisect_left(events, revision, lo=self._start, key=lambda e: e.revision)
        out: list[KvEvent] = []
        following = revision
        while i < len(events):
            event = events[i]
            if limit is not None and len(out) >= limit and event.revision != out[-1].revision:
                break  # a batch never ends inside a revision
            if match is None or match(event.key):
                out.append(event)
            following = event.revision + 1
            i += 1
        return out, following

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(_Snapshot(self._events[self._start :], self.trimmed_upto))

    def restore(self, data: bytes) -> None:
        state = msgspec.msgpack.decode(data, type=_Snapshot) if data else _Snapshot([], 0)
        self._events, self._start, self.trimmed_upto = state.events, 0, state.trimmed_upto
        self._bytes = sum(event_size(e) for e in self._events)
