"""Write-invalidate coherence of one node's cache, per key, in MESI terms.

Pure: no I/O, no clock, no asyncio.  The service (``rakit.cache.service``)
carries invalidations and fetches between nodes and passes time in
(``now_s``: seconds for TTLs; ``now_us``: wall-clock microseconds for the
version clock).  ``CacheNode`` is everything one node decides on its own.

Theory of operation
-------------------
A write (``set`` or ``delete``) at node W gets a version ``v`` above every
version W has seen, is applied at W, and W sends ``invalidate(key, v)`` to
every peer.  A peer drops its copy of ``key`` if it is older than ``v`` and
remembers ``v`` as the key's *watermark*.  W answers the client once every
peer has processed the invalidation, or has been cut off and has dropped
every entry since the write began.  A node that misses a key asks its peers
(``begin_fetch`` / ``serve_fetch`` / ``complete_fetch``); the newest answer
wins and is kept, unless it might be older than a write this node has heard
of (watermark, floor) or it was asked for before this node last dropped
everything (epoch).  Hence the guarantee: once a write of ``v`` is
acknowledged, no node holds, keeps or answers a version of that key older
than ``v`` (the stateful test checks exactly this).

Rules
-----
1.  States.  Per key, a node is in one of:

    - ``M`` (modified): written here; the write's invalidation round is still
      open.  No other node holds a valid copy (older copies elsewhere are
      being dropped).
    - ``E`` (exclusive): written here and the round has closed
      (``confirm_write``): every peer has dropped its older copy, or was cut
      off and dropped everything.  This is the only copy, and it is clean.
    - ``S`` (shared): copies may exist elsewhere: fetched from a peer, or
      handed to one (``serve_fetch``).
    - ``I`` (invalid): no copy.  ``I`` is never stored; absence is ``I``.

    The state is informative for the service (and the metrics): no read or
    invalidation treats ``M``, ``E`` and ``S`` differently.
2.  Versions (``rakit.cache.rules.versions``).  Every version this node learns of
    (an invalidation, a fetch answer) is observed by its clock, so its next
    write wins over everything it has seen; concurrent writers converge on
    the highest version because a copy is dropped only for a newer one.
3.  Watermark.  For each key, ``watermark(key)`` is the highest version of a
    write made here or of an invalidation received here.  A held copy is
    never older than its key's watermark.  Invalidations that are late,
    duplicated or reordered only raise the watermark, never lower it, and
    never drop a copy that is not older (so they are harmless).
4.  Floor.  ``floor`` is one version for all keys: a fetch answer older than
    ``fetch_floor(key) = max(watermark(key), floor)`` is refused (neither
    kept nor answered).  Answers are checked when the fetch *completes*,
    against the watermark and floor of that moment.
5.  Tombstones.  Watermarks are kept in an LRU of their own, at most
    ``tombstone_capacity`` keys.  When one is evicted, ``floor`` rises to its
    version: a key without a tombstone may have had an invalidation up to
    ``floor`` that this node has forgotten.  Because of rule 4's check at
    completion, fetches in flight are covered too, with no epoch bump.
    Cost: a key whose newest write is older than ``floor`` cannot be fetched
    into this node until it is written again (reads here miss; other nodes
    are unaffected).  Tombstones cost ~100 bytes; the default capacity is
    ``max(4096, 8 * capacity)`` keys.
6.  Epoch.  ``drop_all(reason)`` (lost contact with a peer, restart,
    invalidation gap, i.e. whenever this node may have missed an
    invalidation) empties the store and bumps ``epoch``.  A fetch ticket
    from an older epoch is refused: its answers may predate an invalidation
    this node never received.  Watermarks and floor survive ``drop_all``
    (they are still true).  Cost: in-flight reads of this node miss once.
7.  Restart.  A restarted node has forgotten the invalidations it
    acknowledged before; an answer to its fetch, sent by a peer that had not
    yet received such an invalidation, could be older than a write about to
    be acknowledged.  Two ways out: start with ``floor=Version(now_us, "")``
    (its wall clock at start: older answers are refused; safe as long as no
    version it acknowledged ran ahead of that clock, rule 3 of ``versions``;
    the cost is rule 5's for every key written before the restart), or — what
    the service does — fetch nothing until every write round that may have
    counted on the old incarnation's acks has ended (rounds are bounded in
    time): answers to fetches sent after that postdate those invalidations.
8.  The service's duties (stated here because safety rests on them):
    a writer answers only once every peer has run ``on_invalidate`` for the
    write, or is *skippable* at that moment: cut off, and since it lost
    contact it has run ``drop_all`` and taken no writes (so it holds
    nothing; its fetches cannot reach anyone, and answers from before are
    refused by rule 6).  A skipped peer that is back before the round closes
    must ack after all.
    Then the writer calls ``confirm_write``.  A peer's ack carries its held
    version (``peek``); if that is newer than the write's, the writer runs
    ``on_invalidate(key, newer)`` on itself, so a writer that missed a write
    converges too.  "Cut off" must be one fact both sides agree on (the
    failure detector's lease: the skipped node stops serving before the
    writer stops waiting for it).  A node regaining contact observes its
    peers' clocks (heartbeats carry ``clock.last``) before it takes writes
    again: a write it missed may have been acknowledged meanwhile, and its
    own next write must beat it.
9.  Size.  ``local_set`` of a value too large for the store raises
    ``EntryTooLarge`` (413) before anything changes, clock included.

Transitions
-----------
One row per (states, event); the code looks each step up in ``TABLE``.
``v`` is the version carried by the event, ``c`` the held copy's version,
``w`` the key's watermark.  "=" means the state does not change.

====  ==========  ================================  =====  =========================================
 #    from        event (guard)                      to     action
====  ==========  ================================  =====  =========================================
 1    I S E M     SET (local set)                    M      v := tick; store copy; w := v
 2    I S E M     DELETE (local delete)              I      v := tick; remove copy; w := v
 3    M           CONFIRM (round of c closed)        E      -
 4    M E S       INVALIDATE (v > c)                 I      remove copy; w := max(w, v); "held"
 5    I           INVALIDATE (no copy)               I      w := max(w, v)
 6    M E S       INVALIDATE_OLD (v <= c)            =      w := max(w, v) (late/duplicate/lost race)
 7    M E S       SERVE (a peer fetches)             S      answer the copy
 8    I           SERVE                              I      answer None
 9    I S E M     FETCH_KEEP (newest answer a:       S      store a as S; answer a
                  same epoch, a >= max(w, floor),
                  not expired, a > c or no copy)
10    I S E M     FETCH_SKIP (otherwise)             =      answer the copy held (or None)
11    M E S       EVICT (LRU bound)                  I      remove copy (w unchanged: dropping is safe)
12    M E S       EXPIRE (TTL passed)                I      remove copy; a miss
13    I S E M     DROP_ALL                           I      clear store; epoch += 1
====  ==========  ================================  =====  =========================================

``confirm_write`` for a version not held in ``M`` does nothing (a newer
write or copy replaced it).  Tombstone eviction (rule 5) and restart (rule 7)
are not per-key transitions.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from rakit.cache.rules.lru import CacheEntry, EntryTooLarge, LruStore, entry_size
from rakit.cache.rules.versions import MIN_VERSION, HybridClock, Version

__all__ = [
    "TABLE",
    "CacheNode",
    "CacheNodeStatistics",
    "Event",
    "FetchTicket",
    "State",
    "Transition",
    "next_state",
]


class State(StrEnum):
    M = "M"
    E = "E"
    S = "S"
    I = "I"  # noqa: E741 (the MESI name)


class Event(StrEnum):
    SET = "set"
    DELETE = "delete"
    CONFIRM = "confirm"
    INVALIDATE = "invalidate"
    INVALIDATE_OLD = "invalidate_old"
    SERVE = "serve"
    FETCH_KEEP = "fetch_keep"
    FETCH_SKIP = "fetch_skip"
    EVICT = "evict"
    EXPIRE = "expire"
    DROP_ALL = "drop_all"


@dataclass(frozen=True, slots=True)
class Transition:
    number: int
    sources: frozenset[State]
    event: Event
    target: State | None  # None: unchanged
    action: str


_ANY = frozenset(State)
_HELD = frozenset({State.M, State.E, State.S})
_I = frozenset({State.I})

TABLE: tuple[Transition, ...] = (
    Transition(1, _ANY, Event.SET, State.M, "v := tick; store copy; w := v"),
    Transition(2, _ANY, Event.DELETE, State.I, "v := tick; remove copy; w := v"),
    Transition(3, frozenset({State.M}), Event.CONFIRM, State.E, "-"),
    Transition(4, _HELD, Event.INVALIDATE, State.I, "remove copy; w := max(w, v)"),
    Transition(5, _I, Event.INVALIDATE, State.I, "w := max(w, v)"),
    Transition(6, _HELD, Event.INVALIDATE_OLD, None, "w := max(w, v)"),
    Transition(7, _HELD, Event.SERVE, State.S, "answer the copy"),
    Transition(8, _I, Event.SERVE, State.I, "answer None"),
    Transition(9, _ANY, Event.FETCH_KEEP, State.S, "store answer as S; answer it"),
    Transition(10, _ANY, Event.FETCH_SKIP, None, "answer the copy held"),
    Transition(11, _HELD, Event.EVICT, State.I, "remove copy"),
    Transition(12, _HELD, Event.EXPIRE, State.I, "remove copy"),
    Transition(13, _ANY, Event.DROP_ALL, State.I, "clear; epoch += 1"),
)

_NEXT: dict[tuple[State, Event], State | None] = {
    (state, row.event): row.target for row in TABLE for state in row.sources
}
assert len(_NEXT) == sum(len(row.sources) for row in TABLE), "overlapping rows"


def next_state(state: State, event: Event) -> State:
    """The table's answer; a pair not in the table is a broken invariant (KeyError)."""
    target = _NEXT[(state, event)]
    return state if target is None else target


@dataclass(frozen=True, slots=True)
class FetchTicket:
    """What ``begin_fetch`` recorded: the key, the epoch, the floor at the start."""

    key: str
    epoch: int
    floor: Version  # fetch_floor(key) when the fetch began (peers may skip older copies)


@dataclass(frozen=True, slots=True)
class CacheNodeStatistics:
    node_id: str
    size: int
    bytes: int
    capacity: int
    max_bytes: int
    hits: int
    misses: int
    evictions: int
    expirations: int
    sets: int
    deletes: int
    invalidations_received: int
    invalidations_dropped: int  # copies an invalidation removed
    fetches_started: int
    fetches_served: int
    fetches_kept: int
    fetches_refused: int  # answers refused by epoch, watermark or floor
    drops: int
    last_drop_reason: str | None
    epoch: int
    tombstones: int
    tombstone_capacity: int
    tombstone_evictions: int
    floor: Version


def _state(entry: CacheEntry | None) -> State:
    return State.I if entry is None else State(entry.state)


class CacheNode:
    """One node's cache and coherence state; the service drives it."""

    def __init__(
        self,
        node_id: str,
        capacity: int,
        max_bytes: int,
        clock: HybridClock,
        *,
        tombstone_capacity: int | None = None,
        floor: Version = MIN_VERSION,
    ) -> None:
        if clock.node != node_id:
            raise ValueError(f"clock of {clock.node!r} given to node {node_id!r}")
        self.node_id = node_id
        self.clock = clock
        self._store = LruStore(capacity, max_bytes)
        self._tombstone_capacity = max(4096, 8 * capacity) if tombstone_capacity is None else tombstone_capacity
        if self._tombstone_capacity < 1:
            raise ValueError("tombstone_capacity must be >= 1")
        # (counter, node) as exact tuples, which the garbage collector untracks
        # (a Version object per tombstone would make every full collection scan them).
        self._tombstones: OrderedDict[str, tuple[int, str]] = OrderedDict()
        self._floor = floor
        self._epoch = 0
        self._sets = self._deletes = 0
        self._inval_received = self._inval_dropped = 0
        self._fetches_started = self._fetches_served = 0
        self._fetches_kept = self._fetches_refused = 0
        self._drops = 0
        self._last_drop_reason: str | None = None
        self._tombstone_evictions = 0

    # -- read-only views -------------------------------------------------

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def fetches_refused(self) -> int:
        return self._fetches_refused

    @property
    def floor(self) -> Version:
        return self._floor

    def __len__(self) -> int:
        return len(self._store)

    def watermark(self, key: str) -> Version | None:
        """The highest write or invalidation of ``key`` remembered here (rule 3)."""
        mark = self._tombstones.get(key)
        return None if mark is None else Version(*mark)

    def fetch_floor(self, key: str) -> Version:
        """The oldest version of ``key`` a fetch may still bring in (rule 4)."""
        mark = self.watermark(key)
        return self._floor if mark is None or mark < self._floor else mark

    def peek(self, key: str, now_s: float | None) -> CacheEntry | None:
        """The copy held, without statistics, LRU move or state change (for acks)."""
        return self._store.peek(key, now_s)

    # -- local writes ----------------------------------------------------

    def local_set(self, key: str, value: bytes, ttl: float | None, now_s: float, now_us: int) -> Version:
        """Rule 9, then row 1.  The new version, to send in ``invalidate``."""
        if ttl is not None and not ttl > 0:
            raise ValueError(f"ttl must be > 0, not {ttl}")
        size = entry_size(key, value)
        if size > self._store.max_bytes:
            raise EntryTooLarge(key, size, self._store.max_bytes)
        held = self._store.peek(key, None)
        state = next_state(_state(held), Event.SET)
        version = self.clock.tick(now_us)
        assert held is None or held.version < version, "clock behind a held copy"
        expires_at = None if ttl is None else now_s + ttl
        self._store.put(CacheEntry(key, value, version, state, expires_at), now_s)
        self._raise_watermark(key, version)
        self._sets += 1
        return version

    def local_delete(self, key: str, now_us: int, now_s: float | None = None) -> tuple[Version, bool]:
        """Row 2.  The delete's version, and whether a live copy was held here.

        Without ``now_s`` a copy whose TTL has passed but is still stored counts.
        """
        held = self._store.peek(key, now_s)
        next_state(_state(held), Event.DELETE)
        version = self.clock.tick(now_us)
        self._store.remove(key)
        self._raise_watermark(key, version)
        self._deletes += 1
        return version, held is not None

    def confirm_write(self, key: str, version: Version) -> bool:
        """Row 3: the round of ``version`` closed; True if the copy became ``E``."""
        held = self._store.peek(key, None)
        if held is None or held.state != State.M or held.version != version:
            return False
        self._store.restate(key, next_state(State.M, Event.CONFIRM))
        return True

    # -- remote invalidation ---------------------------------------------

    def on_invalidate(self, key: str, version: Version, now_s: float | None = None, *, count: bool = True) -> bool:
        """Rows 4-6.  True if a copy older than ``version`` was held (and dropped).

        Without ``now_s`` a copy whose TTL has passed but is still stored counts.
        ``count=False`` for a version learnt another way (a peer's watermark in
        a fetch answer): the same rows, not counted as an invalidation received.
        """
        if count:
            self._inval_received += 1
        self.clock.observe(version)
        self._raise_watermark(key, version)
        held = self._store.peek(key, now_s)
        if held is None:
            next_state(State.I, Event.INVALIDATE)
            return False
        if held.version >= version:
            next_state(_state(held), Event.INVALIDATE_OLD)
            return False
        next_state(_state(held), Event.INVALIDATE)
        self._store.remove(key)
        self._inval_dropped += 1
        return True

    # -- reads -----------------------------------------------------------

    def lookup(self, key: str, now_s: float) -> CacheEntry | None:
        """A local hit, or None (a miss, counted; row 12 if the TTL passed)."""
        return self._store.get(key, now_s)

    def begin_fetch(self, key: str) -> FetchTicket:
        """Start asking peers for ``key``; pass the ticket to ``complete_fetch``."""
        self._fetches_started += 1
        return FetchTicket(key, self._epoch, self.fetch_floor(key))

    def serve_fetch(self, key: str, now_s: float) -> CacheEntry | None:
        """Rows 7-8: a peer asks for ``key``; our copy (now ``S``) or None."""
        held = self._store.peek(key, now_s)
        state = next_state(_state(held), Event.SERVE)
        if held is None:
            return None
        self._fetches_served += 1
        return self._store.restate(key, state)

    def complete_fetch(
        self, ticket: FetchTicket, answers: Sequence[CacheEntry | None], now_s: float
    ) -> CacheEntry | None:
        """Rows 9-10: the peers' answers are in; what to answer the reader.

        The newest live answer is kept (as ``S``) if the ticket is of the
        current epoch and the answer is not older than ``fetch_floor`` now;
        otherwise it is refused.  The reader gets the newer of the kept
        answer and the copy held here (another fetch or a local write may
        have filled it meanwhile), or None.  A kept answer too large for
        this store is answered but not stored.
        """
        best: CacheEntry | None = None
        for answer in answers:
            if answer is None:
                continue
            if answer.key != ticket.key:
                raise ValueError(f"answer for {answer.key!r} to a fetch of {ticket.key!r}")
            if not answer.expired(now_s) and (best is None or answer.version > best.version):
                best = answer
        if best is not None:
            self.clock.observe(best.version)
            if ticket.epoch != self._epoch or best.version < self.fetch_floor(ticket.key):
                self._fetches_refused += 1
                best = None
        held = self._store.peek(ticket.key, now_s)
        if best is None or (held is not None and held.version >= best.version):
            next_state(_state(held), Event.FETCH_SKIP)
            return held
        kept = best.with_state(next_state(_state(held), Event.FETCH_KEEP))
        if self._store.fits(kept):
            self._store.put(kept, now_s)
            self._fetches_kept += 1
        else:
            self._store.remove(ticket.key)  # superseded by the answer
        return kept

    # -- whole-node events -----------------------------------------------

    def drop_all(self, reason: str) -> int:
        """Row 13 for every key, and rule 6: how many entries were dropped."""
        count = self._store.clear()
        self._epoch += 1
        self._drops += 1
        self._last_drop_reason = reason
        return count

    def purge_expired(self, now_s: float) -> list[str]:
        """Row 12 for every dead entry (for a periodic sweeper); their keys."""
        return self._store.purge_expired(now_s)

    def _raise_watermark(self, key: str, version: Version) -> None:
        marks = self._tombstones
        old = marks.get(key)
        new = (version.counter, version.node)
        if old is None or old < new:
            marks[key] = new
        marks.move_to_end(key)
        while len(marks) > self._tombstone_capacity:  # rule 5
            _, evicted = marks.popitem(last=False)
            self._floor = max(self._floor, Version(*evicted))
            self._tombstone_evictions += 1

    def statistics(self) -> CacheNodeStatistics:
        store = self._store.statistics()
        return CacheNodeStatistics(
            node_id=self.node_id,
            size=store.size,
            bytes=store.bytes,
            capacity=store.capacity,
            max_bytes=store.max_bytes,
            hits=store.hits,
            misses=store.misses,
            evictions=store.evictions,
            expirations=store.expirations,
            sets=self._sets,
            deletes=self._deletes,
            invalidations_received=self._inval_received,
            invalidations_dropped=self._inval_dropped,
            fetches_started=self._fetches_started,
            fetches_served=self._fetches_served,
            fetches_kept=self._fetches_kept,
            fetches_refused=self._fetches_refused,
            drops=self._drops,
            last_drop_reason=self._last_drop_reason,
            epoch=self._epoch,
            tombstones=len(self._tombstones),
            tombstone_capacity=self._tombstone_capacity,
            tombstone_evictions=self._tombstone_evictions,
            floor=self._floor,
        )
