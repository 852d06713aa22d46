"""The one shared model of a hold: a named record with weighted holds (leases with a fencing token) and FIFO waiters.

Semaphores (``rakit.statemachines.semaphores``) and elections
(``rakit.statemachines.elections``) are thin rules on top of a ``Book`` of
``Record``s; sessions (``rakit.statemachines.sessions``) end a session's
holds and waits through ``Book.end_session``.  Pure: no clock, no I/O; time
travels in the commands (``index``, the log index of the command applied).

How the lock table maps onto it (its records may move here next): a
resource is a ``Record`` of capacity ``N`` (any bound above the most shared
holders); an exclusive hold or waiter has amount ``N``, a shared one amount
1.  Rule 5 below then *is* the lock table's rule 7 (a shared head is granted
with every shared waiter behind it, up to the next exclusive one; an
exclusive head waits until the resource is free) and rule 2 its shared
token.  What the lock table adds on top: modes in results, upgrade waiters
(a holder changing its amount, queued ahead of the others), owners and
secrets (extra fields on ``Hold``/``Waiter``), deadlock detection, lock
delays and quotas.

Rules
-----
1.  A record has a ``capacity``; its holders' amounts never add up to more.
    ``held`` is their sum, ``available`` = ``capacity - held``.
2.  A fencing token is the log index of the command that made the grant; a
    waiter granted because of a later command gets *that* command's index.
    Grants made by one command share its index (like shared lock holders
    granted together); every token is strictly greater than every token
    granted by an earlier command.  ``max_token`` is the highest ever
    granted; ``changed`` the index of the last command that changed the
    holders (a grant or an end), so an observer sees every change as a
    greater number.
3.  Granted at once only if the amount fits in ``available`` AND nobody
    waits: a newcomer never overtakes a waiter (no barging).
4.  Re-acquire by a holder with the same amount (and the same session) is
    idempotent: same token, ``again``, the lease restarts (stamp = this
    index, ttl = the new one).  Another amount or session: ``already_holder``.
    A waiter asking again keeps its place; its wait, ttl and value take the
    new ones (another amount or session: ``already_holder``).
5.  Grant on change: after a hold ends or a waiter leaves, the head of the
    wait list is granted while it fits, in order; a head that does not fit
    stops everyone behind it.
6.  A request that does not fit waits at the tail if ``wait`` > 0
    (``Queued(position)``), else is refused with ``conflict``.  At most
    ``max_waiters`` per record: one more is ``too_many_waiters``.
7.  Lease stamps: a hold's ``lease`` is the index of the command that granted
    or last renewed it; an expiry names the stamp it timed and applies only
    to that stamp (else the caller answers ``Stale``).  A hold attached to a
    session (``session_id``) has no lease of its own: it is not listed by
    ``leases`` and ends only with its session (``end_session``), which also
    removes the session's waiters, granting whoever fits after them.
8.  Forgetting: a record with no holders and no waiters is *free*; at most
    ``max_free`` free records are kept (oldest forgotten first).  Forgetting
    loses no fencing guarantee: every later token is a later log index.
9.  ``snapshot_state``/``restore_state`` round-trip exactly (records in
    order, free order); the session index is derived and rebuilt.
10. Holder secrets (as the lock table's rule 15): a request may carry a
    ``secret`` (the client makes it up; no read shows it).  The hold or
    waiter it makes keeps it, and a waiter granted later passes it on to its
    hold.  ``hold_for`` / ``waiter_for`` find a hold or waiter only with
    its secret (one made without takes any), so the kinds answer a release,
    renewal, resignation or cancel with the wrong secret as if the client
    held nothing; an ``acquire`` by a holder or waiter with another secret
    (or none) is refused with ``conflict`` and changes nothing.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Iterator

import msgspec

MAX_WAITERS = 1000
MAX_FREE_RECORDS = 10_000


class Hold(msgspec.Struct):
    holder: str
    amount: int
    token: int
    ttl: float
    lease: int
    session_id: str | None = None
    value: bytes | None = None  # an election's value (JSON bytes); None elsewhere
    secret: str | None = None  # rule 10 (absent from older snapshots: None)


class Waiter(msgspec.Struct):
    holder: str
    amount: int
    ttl: float
    wait: float
    session_id: str | None = None
    value: bytes | None = None
    secret: str | None = None  # rule 10


class Record(msgspec.Struct):
    name: str
    capacity: int
    holders: list[Hold] = []
    waiters: list[Waiter] = []
    max_token: int | None = None
    changed: int | None = None

    @property
    def held(self) -> int:
        return sum(h.amount for h in self.holders)

    @property
    def available(self) -> int:
        return self.capacity - self.held

    @property
    def free(self) -> bool:
        return not (self.holders or self.waiters)

    def hold_of(self, holder: str) -> Hold | None:
        return next((h for h in self.holders if h.holder == holder), None)

    def waiter_of(self, holder: str) -> Waiter | None:
        return next((w for w in self.waiters if w.holder == holder), None)

    def hold_for(self, holder: str, secret: str | None) -> Hold | None:
        """Rule 10: ``holder``'s hold, if ``secret`` fits it."""
        hold = self.hold_of(holder)
        return hold if hold is not None and secret_fits(hold.secret, secret) else None

    def waiter_for(self, holder: str, secret: str | None) -> Waiter | None:
        """Rule 10: ``holder``'s wait, if ``secret`` fits it."""
        waiter = self.waiter_of(holder)
        return waiter if waiter is not None and secret_fits(waiter.secret, secret) else None

    def fits_now(self, amount: int) -> bool:
        """Rule 3."""
        return not self.waiters and amount <= self.available


# --- what the book's changes report (frozen copies: results never alias live records) ---


class Grant(msgspec.Struct, frozen=True):
    kind: str  # the book's kind: "semaphore" | "election"
    name: str
    holder: str
    amount: int
    token: int
    ttl: float
    lease: int
    session_id: str | None = None


class Ended(msgspec.Struct, frozen=True):
    kind: str
    name: str
    holder: str
    amount: int
    token: int
    lease: int
    reason: str  # "released" | "expired" | "resigned" | "session_ended"
    session_id: str | None = None


class Left(msgspec.Struct, frozen=True):
    """A waiter removed without a grant (it gave up, or its session ended)."""

    kind: str
    name: str
    holder: str
    amount: int


class Taken(msgspec.Struct, frozen=True):
    grant: Grant
    again: bool = False


class Queued(msgspec.Struct, frozen=True):
    position: int


class Refused(msgspec.Struct, frozen=True):
    """A refusal the HTTP layer maps to a 4xx: ``code`` is the API's error name."""

    code: str
    detail: str = ""
    limit: int | None = None  # limit_mismatch: the semaphore's current limit


class Stale(msgspec.Struct, frozen=True):
    """An expiry overtaken by events (renewed, released, ended since): nothing changed."""

    name: str
    holder: str | None = None


class BookState(msgspec.Struct):
    records: list[Record]
    free: list[str]


class SessionEnd(msgspec.Struct, frozen=True):
    names: list[str]
    grants: list[Grant]
    removed: list[Ended]
    left: list[Left]


class Book:
    """The records of one kind, with rule 7's session index and rule 8's free list."""

    def __init__(self, kind: str, max_waiters: int = MAX_WAITERS, max_free: int = MAX_FREE_RECORDS) -> None:
        if max_waiters < 1 or max_free < 0:
            raise ValueError("max_waiters must be at least 1 and max_free at least 0")
        self.kind = kind
        self.max_waiters = max_waiters
        self.max_free = max_free
        self.records: dict[str, Record] = {}
        self._free: dict[str, None] = {}
        self._by_session: dict[str, dict[str, None]] = {}  # session -> names it holds or waits on

    def get(self, name: str) -> Record | None:
        return self.records.get(name)

    def open(self, name: str, capacity: int) -> Record:
        r = self.records.get(name)
        if r is None:
            r = self.records[name] = Record(name, capacity)
        return r

    # --- changes (rules 3-7) ---

    def acquire(self, index: int, r: Record, want: Waiter) -> Taken | Queued | Refused:
        want = msgspec.structs.replace(want, ttl=float(want.ttl), wait=float(want.wait))  # rule 9: floats, as restored
        entry = r.hold_of(want.holder) or r.waiter_of(want.holder)
        if entry is not None and not secret_fits(entry.secret, want.secret):  # rule 10
            return Refused("conflict", f"{want.holder!r} is on {r.name!r} with another holder secret")
        hold = r.hold_of(want.holder)
        if hold is not None:  # rule 4
            if hold.amount != want.amount or hold.session_id != want.session_id:
                return Refused("already_holder", f"{want.holder!r} holds {hold.amount} of {r.name!r} already")
            hold.ttl, hold.lease = want.ttl, index
            return Taken(self.grant_of(r, hold), again=True)
        waiter = r.waiter_of(want.holder)
        if waiter is not None:
            if waiter.amount != want.amount or waiter.session_id != want.session_id:
                return Refused("already_holder", f"{want.holder!r} waits for {waiter.amount} of {r.name!r} already")
            waiter.wait, waiter.ttl, waiter.value = want.wait, want.ttl, want.value
            return Queued(r.waiters.index(waiter))
        if r.fits_now(want.amount):
            return Taken(self.grant_of(r, self._grant(index, r, want)))
        if want.wait == 0:  # rule 6
            return Refused("conflict")
        if len(r.waiters) >= self.max_waiters:
            return Refused("too_many_waiters", f"{r.name!r} already has {len(r.waiters)} waiters")
        r.waiters.append(want)
        self._index(want.session_id, r.name)
        return Queued(len(r.waiters) - 1)

    def renew(self, index: int, hold: Hold, ttl: float) -> None:
        hold.ttl, hold.lease = ttl, index

    def end(self, index: int, r: Record, hold: Hold, reason: str) -> tuple[Ended, list[Grant]]:
        """End ``hold`` and grant the waiters that now fit (rule 5)."""
        r.holders.remove(hold)
        r.changed = index
        self._unindex(hold.session_id, r)
        ended = Ended(self.kind, r.name, hold.holder, hold.amount, hold.token, hold.lease, reason, hold.session_id)
        return ended, self.grant_from_head(index, r)

    def leave(self, index: int, r: Record, waiter: Waiter) -> list[Grant]:
        """Remove ``waiter``; whoever it stopped may now be granted (rule 5)."""
        r.waiters.remove(waiter)
        self._unindex(waiter.session_id, r)
        return self.grant_from_head(index, r)

    def grant_from_head(self, index: int, r: Record) -> list[Grant]:
        grants: list[Grant] = []
        while r.waiters and r.waiters[0].amount <= r.available:
            grants.append(self.grant_of(r, self._grant(index, r, r.waiters.pop(0), queued=True)))
        return grants

    def end_session(self, index: int, session_id: str) -> SessionEnd:
        """Rule 7: every hold and wait of ``session_id``, in name order (the same on every replica)."""
        names = sorted(self._by_session.get(session_id, ()))
        grants: list[Grant] = []
        removed: list[Ended] = []
        left: list[Left] = []
        for name in names:
            r = self.records[name]
            for w in [w for w in r.waiters if w.session_id == session_id]:
                r.waiters.remove(w)
                left.append(Left(self.kind, name, w.holder, w.amount))
            for h in [h for h in r.holders if h.session_id == session_id]:
                r.holders.remove(h)
                r.changed = index
                reason = "session_ended"
                removed.append(Ended(self.kind, name, h.holder, h.amount, h.token, h.lease, reason, session_id))
            grants.extend(self.grant_from_head(index, r))
            self.settle(name)
        self._by_session.pop(session_id, None)
        return SessionEnd(names, grants, removed, left)

    def _grant(self, index: int, r: Record, w: Waiter, *, queued: bool = False) -> Hold:
        hold = Hold(w.holder, w.amount, index, w.ttl, index, w.session_id, w.value, w.secret)
        r.holders.append(hold)
        r.max_token = r.changed = index
        if not queued:
            self._index(w.session_id, r.name)
        return hold

    def grant_of(self, r: Record, hold: Hold) -> Grant:
        return Grant(self.kind, r.name, hold.holder, hold.amount, hold.token, hold.ttl, hold.lease, hold.session_id)

    def _index(self, session_id: str | None, name: str) -> None:
        if session_id is not None:
            self._by_session.setdefault(session_id, {})[name] = None

    def _unindex(self, session_id: str | None, r: Record) -> None:
        if session_id is None or any(e.session_id == session_id for e in _entries(r)):
            return
        names = self._by_session.get(session_id, {})
        names.pop(r.name, None)
        if not names:
            self._by_session.pop(session_id, None)

    def settle(self, name: str) -> None:
        """Rule 8, for the record a command named."""
        self._free.pop(name, None)
        r = self.records.get(name)
        if r is None or not r.free:
            return
        self._free[name] = None
        while len(self._free) > self.max_free:
            oldest = next(iter(self._free))
            del self._free[oldest], self.records[oldest]

    # --- reads ---

    def attached(self, session_id: str) -> list[str]:
        """The names ``session_id`` holds or waits on, sorted."""
        return sorted(self._by_session.get(session_id, ()))

    def leases(self) -> Iterator[tuple[str, str, float, int]]:
        """(name, holder, ttl, lease) of every hold with a lease of its own: the leases to time."""
        for r in self.records.values():
            for h in r.holders:
                if h.session_id is None:
                    yield r.name, h.holder, h.ttl, h.lease

    def waits(self) -> Iterator[tuple[str, str, float]]:
        """(name, holder, wait) of every waiter: the waits to time."""
        for r in self.records.values():
            for w in r.waiters:
                yield r.name, w.holder, w.wait

    # --- snapshot (rule 9) ---

    def snapshot_state(self) -> BookState:
        return BookState(list(self.records.values()), list(self._free))

    def restore_state(self, state: BookState) -> None:
        self.records = {r.name: r for r in state.records}
        self._free = dict.fromkeys(state.free)
        self._by_session = {}
        for r in state.records:
            for e in _entries(r):
                self._index(e.session_id, r.name)


def _entries(r: Record) -> list[Hold | Waiter]:
    return [*r.holders, *r.waiters]


def positive(x: float) -> bool:
    return math.isfinite(x) and x > 0


def non_negative(x: float) -> bool:
    return math.isfinite(x) and x >= 0


def secret_fits(kept: str | None, given: str | None) -> bool:
    """Rule 10 (and the lock table's rule 15): a hold or waiter without a secret takes any; one with only that one."""
    return kept is None or (given is not None and hmac.compare_digest(kept.encode(), given.encode()))
