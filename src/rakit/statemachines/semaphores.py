"""Counting semaphores: weighted permits with FIFO waiters, a deterministic state machine.

Thin rules on the shared model (``rakit.statemachines.holds``, whose rules
1-9 hold here: a semaphore is a ``Record`` of capacity ``limit``, a holder's
permits its amount).  The leader times leases and waits and proposes
``SemExpire`` / ``SemCancelWait``; nothing here reads a clock.

Rules
-----
1.  The first acquire of an unused name (no holders, no waiters) sets its
    ``limit`` (a later acquire of an unused one may set another).  An
    acquire with another ``limit`` while the semaphore has holders or
    waiters: ``Refused("limit_mismatch", limit=<current>)``, nothing changed.
2.  ``fencing_token`` is the log index of the granting command; it strictly
    increases across the semaphore's grants (holds rule 2: grants of one
    command share it).
3.  FIFO without barging: granted at once only if the permits are free and
    nobody waits; a waiter for many permits at the head is not overtaken by
    later small requests (holds rules 3, 5).
4.  Re-acquire by a holder with the same permits is idempotent (same token,
    ``again``, lease restarted); other permits: ``already_holder``.
5.  Not grantable: ``wait`` > 0 queues (``SemWaiting``), ``wait`` == 0 is
    ``conflict``.  ``SemCancelWait`` (the request's timeout) removes the
    waiter and grants whoever fits behind it; it reports a hold if the
    request was granted meanwhile.
6.  ``SemRelease`` / ``SemRenew`` by a non-holder (a waiter is none):
    ``SemNotHolder``.  Release grants from the head (holds rule 5); renew
    restarts the lease.
7.  ``SemExpire`` applies only to the lease stamp it names and only to a
    hold with a lease of its own (not a session's): else ``Stale``.
8.  A malformed command (limit < 1, permits outside 1..limit, ttl <= 0, a
    negative or non-finite wait) is ``Refused("invalid")``, nothing changed.
9.  ``status`` (a read, changes nothing): limit (None if unused),
    available (None if unused), holders (grant order) and waiters (arrival
    order).
10. ``snapshot``/``restore`` round-trip exactly.
11. Holder secrets (holds rule 10): ``SemRelease``, ``SemRenew`` and
    ``SemCancelWait`` with the wrong secret act as if the client held or
    waited for nothing (``SemNotHolder``, nothing cancelled); an acquire by
    a holder or waiter with another secret is ``conflict``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from rakit.statemachines.holds import (
    MAX_FREE_RECORDS,
    MAX_WAITERS,
    Book,
    BookState,
    Ended,
    Grant,
    Queued,
    Record,
    Refused,
    Stale,
    Waiter,
    non_negative,
    positive,
)

KIND = "semaphore"


class SemAcquire(msgspec.Struct, tag="sem.acquire", frozen=True):
    name: str
    client_id: str
    limit: int
    permits: int
    ttl: float
    wait: float
    session_id: str | None = None
    secret: str | None = None  # rule 11


class SemRelease(msgspec.Struct, tag="sem.release", frozen=True):
    name: str
    client_id: str
    secret: str | None = None


class SemRenew(msgspec.Struct, tag="sem.renew", frozen=True):
    name: str
    client_id: str
    ttl: float
    secret: str | None = None


class SemExpire(msgspec.Struct, tag="sem.expire", frozen=True):
    name: str
    client_id: str
    lease: int


class SemCancelWait(msgspec.Struct, tag="sem.cancel_wait", frozen=True):
    name: str
    client_id: str
    secret: str | None = None


SemCommand = SemAcquire | SemRelease | SemRenew | SemExpire | SemCancelWait


class SemGranted(msgspec.Struct, frozen=True):
    name: str
    client_id: str
    permits: int
    limit: int
    available: int
    token: int
    ttl: float
    lease: int
    again: bool = False
    session_id: str | None = None


class SemWaiting(msgspec.Struct, frozen=True):
    name: str
    client_id: str
    permits: int
    position: int


class SemReleased(msgspec.Struct, frozen=True):
    name: str
    client_id: str
    permits: int
    grants: list[Grant]
    removed: list[Ended]


class SemRenewed(msgspec.Struct, frozen=True):
    name: str
    client_id: str
    ttl: float
    lease: int
    session_id: str | None = None


class SemNotHolder(msgspec.Struct, frozen=True):
    name: str
    client_id: str


class SemExpired(msgspec.Struct, frozen=True):
    name: str
    client_id: str
    permits: int
    grants: list[Grant]
    removed: list[Ended]


class SemCancelled(msgspec.Struct, frozen=True):
    name: str
    client_id: str
    was_waiting: bool
    holding: SemGranted | None  # granted meanwhile: the service can still answer "acquired"
    grants: list[Grant]


SemResult = (
    SemGranted | SemWaiting | SemReleased | SemRenewed | SemNotHolder | SemExpired | SemCancelled | Refused | Stale
)


class _Snapshot(msgspec.Struct):
    version: int
    book: BookState


SNAPSHOT_VERSION = 1


class SemaphoreTable:
    name = "semaphores"
    commands = (SemAcquire, SemRelease, SemRenew, SemExpire, SemCancelWait)

    def __init__(self, max_waiters: int = MAX_WAITERS, max_free: int = MAX_FREE_RECORDS) -> None:
        self.book = Book(KIND, max_waiters, max_free)

    def apply(self, index: int, command: SemCommand) -> SemResult:
        result = self._apply(index, command)
        self.book.settle(command.name)
        return result

    def _apply(self, index: int, command: SemCommand) -> SemResult:
        match command:
            case SemAcquire():
                return self._acquire(index, command)
            case SemRelease():
                return self._release(index, command)
            case SemRenew():
                return self._renew(index, command)
            case SemExpire():
                return self._expire(index, command)
            case SemCancelWait():
                return self._cancel_wait(index, command)
        raise TypeError(f"not a semaphore command: {command!r}")

    def _acquire(self, index: int, cmd: SemAcquire) -> SemResult:
        if cmd.limit < 1 or not 1 <= cmd.permits <= cmd.limit:
            return Refused("invalid", "limit must be >= 1 and permits within 1..limit")
        if not positive(cmd.ttl) or not non_negative(cmd.wait):
            return Refused("invalid", "ttl must be > 0 and wait >= 0")
        r = self.book.get(cmd.name)
        if r is not None and r.capacity != cmd.limit:
            if not r.free:  # rule 1
                return Refused("limit_mismatch", f"{cmd.name!r} has limit {r.capacity}", limit=r.capacity)
            r.capacity = cmd.limit
        r = self.book.open(cmd.name, cmd.limit)
        want = Waiter(cmd.client_id, cmd.permits, float(cmd.ttl), float(cmd.wait), cmd.session_id, secret=cmd.secret)
        outcome = self.book.acquire(index, r, want)
        if isinstance(outcome, Refused):
            return outcome
        if isinstance(outcome, Queued):
            return SemWaiting(r.name, cmd.client_id, cmd.permits, outcome.position)
        return self._granted(r, outcome.grant, again=outcome.again)

    def _granted(self, r: Record, g: Grant, *, again: bool = False) -> SemGranted:
        left = r.available
        return SemGranted(r.name, g.holder, g.amount, r.capacity, left, g.token, g.ttl, g.lease, again, g.session_id)

    def _release(self, index: int, cmd: SemRelease) -> SemResult:
        r = self.book.get(cmd.name)
        hold = r.hold_for(cmd.client_id, cmd.secret) if r is not None else None
        if r is None or hold is None:
            return SemNotHolder(cmd.name, cmd.client_id)
        ended, grants = self.book.end(index, r, hold, "released")
        return SemReleased(r.name, hold.holder, hold.amount, grants, [ended])

    def _renew(self, index: int, cmd: SemRenew) -> SemResult:
        if not positive(cmd.ttl):
            return Refused("invalid", "ttl must be > 0")
        r = self.book.get(cmd.name)
        hold = r.hold_for(cmd.client_id, cmd.secret) if r is not None else None
        if r is None or hold is None:
            return SemNotHolder(cmd.name, cmd.client_id)
        self.book.renew(index, hold, float(cmd.ttl))
        return SemRenewed(r.name, hold.holder, hold.ttl, hold.lease, hold.session_id)

    def _expire(self, index: int, cmd: SemExpire) -> SemResult:
        r = self.book.get(cmd.name)
        hold = r.hold_of(cmd.client_id) if r is not None else None
        if r is None or hold is None or hold.lease != cmd.lease or hold.session_id is not None:
            return Stale(cmd.name, cmd.client_id)
        ended, grants = self.book.end(index, r, hold, "expired")
        return SemExpired(r.name, hold.holder, hold.amount, grants, [ended])

    def _cancel_wait(self, index: int, cmd: SemCancelWait) -> SemCancelled:
        r = self.book.get(cmd.name)
        if r is None:
            return SemCancelled(cmd.name, cmd.client_id, False, None, [])
        waiter = r.waiter_for(cmd.client_id, cmd.secret)
        grants = self.book.leave(index, r, waiter) if waiter is not None else []
        hold = r.hold_for(cmd.client_id, cmd.secret)
        holding = self._granted(r, self.book.grant_of(r, hold)) if hold is not None else None
        return SemCancelled(r.name, cmd.client_id, waiter is not None, holding, grants)

    # --- reads (rule 9) ---

    def status(self, name: str) -> dict[str, Any]:
        r = self.book.get(name)
        if r is None or r.free:  # unused
            return {"name": name, "limit": None, "available": None, "holders": [], "waiters": []}
        return {
            "name": name,
            "limit": r.capacity,
            "available": r.available,
            "holders": [{"client_id": h.holder, "permits": h.amount, "fencing_token": h.token} for h in r.holders],
            "waiters": [{"client_id": w.holder, "permits": w.amount} for w in r.waiters],
        }

    # --- snapshot (rule 10) ---

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(_Snapshot(SNAPSHOT_VERSION, self.book.snapshot_state()))

    def restore(self, data: bytes) -> None:
        self.book.restore_state(self._decode(data))

    @staticmethod
    def _decode(data: bytes) -> BookState:
        if not data:
            return BookState([], [])
        state = msgspec.msgpack.decode(data, type=_Snapshot)
        if state.version != SNAPSHOT_VERSION:
            raise ValueError(f"semaphore snapshot version {state.version} (this node reads {SNAPSHOT_VERSION})")
        return state.book
