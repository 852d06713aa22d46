"""Leader election: one leader per name, FIFO candidates, a value, a term; a deterministic state machine.

Thin rules on the shared model (``rakit.statemachines.holds``): an election
is a ``Record`` of capacity 1, every candidacy of amount 1; the leader is its
one holder, the candidates its waiters, the value rides on the hold.  The
leader of the Raft cluster times leases and waits and proposes
``ElectionExpire`` / ``Withdraw``; nothing here reads a clock.

Rules
-----
1.  At most one leader per election (capacity 1): the candidate at the head
    of the FIFO list is elected when the leadership is vacant.
2.  ``term`` is the leader's fencing token: the log index of the command
    that elected it, so successive leaders' terms strictly increase.  When a
    leadership ends with nobody to follow, the election's term becomes that
    command's index (holds ``changed``): observers see the vacancy as an
    event, and the next leader's term is greater still.
3.  ``Campaign``: vacant and nobody waiting -> ``Elected`` at once;
    campaigning again while leader is idempotent (same term, value kept,
    lease restarted, ``again``); a waiting candidate asking again keeps its
    place (wait, ttl and value updated); otherwise ``wait`` > 0 queues
    (``CandidateWaiting``) and ``wait`` == 0 is ``conflict``.
4.  ``ElectionRenew`` restarts the leader's lease; anyone else: ``NotLeader``.
5.  ``Proclaim`` sets the value, keeping the term, only for the leader with
    that term; otherwise ``NotLeader``.
6.  ``Resign``: the leader steps down and the next candidate is elected in
    the same command; a candidate's resignation withdraws it; neither:
    ``NotLeader``.
7.  ``Withdraw`` (a campaign's timeout) removes a waiting candidate; it
    reports the leadership if the candidate was elected meanwhile.
8.  ``ElectionExpire`` applies only to the lease stamp it names and only to a
    leader with a lease of its own (not a session's): else ``Stale``.  The
    next candidate is elected in the same command.
9.  A malformed command (ttl <= 0, a negative or non-finite wait) is
    ``Refused("invalid")``, nothing changed.
10. Reads change nothing: ``leader`` (leader, value, term, candidates in
    order) and ``observe`` (leader, value, term).
11. ``snapshot``/``restore`` round-trip exactly.
12. Holder secrets (holds rule 10): ``ElectionRenew``, ``Proclaim``,
    ``Resign`` and ``Withdraw`` with the wrong secret act as if the
    candidate neither led nor waited (``NotLeader``, nothing withdrawn); a
    campaign by the leader or a candidate with another secret is
    ``conflict``.  ``ElectionExpire`` (the leader's own timer) needs none.
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
    Hold,
    Queued,
    Record,
    Refused,
    Stale,
    Waiter,
    non_negative,
    positive,
)

KIND = "election"


class Campaign(msgspec.Struct, tag="election.campaign", frozen=True):
    name: str
    candidate_id: str
    value: bytes  # the JSON encoding of the value
    ttl: float
    wait: float
    session_id: str | None = None
    secret: str | None = None  # rule 12


class ElectionRenew(msgspec.Struct, tag="election.renew", frozen=True):
    name: str
    candidate_id: str
    ttl: float
    secret: str | None = None


class Proclaim(msgspec.Struct, tag="election.proclaim", frozen=True):
    name: str
    candidate_id: str
    term: int
    value: bytes
    secret: str | None = None


class Resign(msgspec.Struct, tag="election.resign", frozen=True):
    name: str
    candidate_id: str
    secret: str | None = None


class Withdraw(msgspec.Struct, tag="election.withdraw", frozen=True):
    name: str
    candidate_id: str
    secret: str | None = None


class ElectionExpire(msgspec.Struct, tag="election.expire", frozen=True):
    name: str
    candidate_id: str
    lease: int


ElectionCommand = Campaign | ElectionRenew | Proclaim | Resign | Withdraw | ElectionExpire


class Elected(msgspec.Struct, frozen=True):
    name: str
    leader: str
    value: bytes | None
    term: int
    ttl: float
    lease: int
    again: bool = False
    session_id: str | None = None


class CandidateWaiting(msgspec.Struct, frozen=True):
    name: str
    candidate_id: str
    position: int


class ElectionRenewed(msgspec.Struct, frozen=True):
    name: str
    candidate_id: str
    ttl: float
    lease: int
    session_id: str | None = None


class Proclaimed(msgspec.Struct, frozen=True):
    name: str
    term: int
    value: bytes


class NotLeader(msgspec.Struct, frozen=True):
    name: str
    candidate_id: str


class Resigned(msgspec.Struct, frozen=True):
    name: str
    candidate_id: str
    was_leader: bool
    grants: list[Grant]  # the next leader, if any
    removed: list[Ended]


class Withdrawn(msgspec.Struct, frozen=True):
    name: str
    candidate_id: str
    was_candidate: bool
    leading: Elected | None  # elected meanwhile: the service can still answer "elected"
    grants: list[Grant]


class ElectionExpired(msgspec.Struct, frozen=True):
    name: str
    candidate_id: str
    term: int
    grants: list[Grant]
    removed: list[Ended]


ElectionResult = (
    Elected
    | CandidateWaiting
    | ElectionRenewed
    | Proclaimed
    | NotLeader
    | Resigned
    | Withdrawn
    | ElectionExpired
    | Refused
    | Stale
)


class _Snapshot(msgspec.Struct):
    version: int
    book: BookState


SNAPSHOT_VERSION = 1


class ElectionTable:
    name = "elections"
    commands = (Campaign, ElectionRenew, Proclaim, Resign, Withdraw, ElectionExpire)

    def __init__(self, max_waiters: int = MAX_WAITERS, max_free: int = MAX_FREE_RECORDS) -> None:
        self.book = Book(KIND, max_waiters, max_free)

    def apply(self, index: int, command: ElectionCommand) -> ElectionResult:
        result = self._apply(index, command)
        self.book.settle(command.name)
        return result

    def _apply(self, index: int, command: ElectionCommand) -> ElectionResult:
        match command:
            case Campaign():
                return self._campaign(index, command)
            case ElectionRenew():
                return self._renew(index, command)
            case Proclaim():
                return self._proclaim(command)
            case Resign():
                return self._resign(index, command)
            case Withdraw():
                return self._withdraw(index, command)
            case ElectionExpire():
                return self._expire(index, command)
        raise TypeError(f"not an election command: {command!r}")

    def _campaign(self, index: int, cmd: Campaign) -> ElectionResult:
        if not positive(cmd.ttl) or not non_negative(cmd.wait):
            return Refused("invalid", "ttl must be > 0 and wait >= 0")
        r = self.book.open(cmd.name, 1)
        want = Waiter(cmd.candidate_id, 1, float(cmd.ttl), float(cmd.wait), cmd.session_id, cmd.value, cmd.secret)
        outcome = self.book.acquire(index, r, want)
        if isinstance(outcome, Refused):
            return outcome
        if isinstance(outcome, Queued):
            return CandidateWaiting(r.name, cmd.candidate_id, outcome.position)
        return self._elected(r, again=outcome.again)

    def _elected(self, r: Record, *, again: bool = False) -> Elected:
        h = r.holders[0]
        return Elected(r.name, h.holder, h.value, h.token, h.ttl, h.lease, again, h.session_id)

    def _leader(self, name: str, candidate_id: str, secret: str | None = None) -> tuple[Record | None, Hold | None]:
        r = self.book.get(name)
        hold = r.hold_for(candidate_id, secret) if r is not None else None
        return r, hold

    def _renew(self, index: int, cmd: ElectionRenew) -> ElectionResult:
        if not positive(cmd.ttl):
            return Refused("invalid", "ttl must be > 0")
        r, hold = self._leader(cmd.name, cmd.candidate_id, cmd.secret)
        if r is None or hold is None:
            return NotLeader(cmd.name, cmd.candidate_id)
        self.book.renew(index, hold, float(cmd.ttl))
        return ElectionRenewed(r.name, hold.holder, hold.ttl, hold.lease, hold.session_id)

    def _proclaim(self, cmd: Proclaim) -> ElectionResult:
        r, hold = self._leader(cmd.name, cmd.candidate_id, cmd.secret)
        if r is None or hold is None or hold.token != cmd.term:
            return NotLeader(cmd.name, cmd.candidate_id)
        hold.value = cmd.value
        return Proclaimed(r.name, hold.token, cmd.value)

    def _resign(self, index: int, cmd: Resign) -> ElectionResult:
        r, hold = self._leader(cmd.name, cmd.candidate_id, cmd.secret)
        if r is not None and hold is not None:
            ended, grants = self.book.end(index, r, hold, "resigned")
            return Resigned(r.name, cmd.candidate_id, True, grants, [ended])
        waiter = r.waiter_for(cmd.candidate_id, cmd.secret) if r is not None else None
        if r is None or waiter is None:
            return NotLeader(cmd.name, cmd.candidate_id)
        return Resigned(r.name, cmd.candidate_id, False, self.book.leave(index, r, waiter), [])

    def _withdraw(self, index: int, cmd: Withdraw) -> Withdrawn:
        r = self.book.get(cmd.name)
        if r is None:
            return Withdrawn(cmd.name, cmd.candidate_id, False, None, [])
        waiter = r.waiter_for(cmd.candidate_id, cmd.secret)
        grants = self.book.leave(index, r, waiter) if waiter is not None else []
        leading = self._elected(r) if r.hold_for(cmd.candidate_id, cmd.secret) is not None else None
        return Withdrawn(r.name, cmd.candidate_id, waiter is not None, leading, grants)

    def _expire(self, index: int, cmd: ElectionExpire) -> ElectionResult:
        r = self.book.get(cmd.name)
        hold = r.hold_of(cmd.candidate_id) if r is not None else None  # the leader's own timer: no secret
        if r is None or hold is None or hold.lease != cmd.lease or hold.session_id is not None:
            return Stale(cmd.name, cmd.candidate_id)
        ended, grants = self.book.end(index, r, hold, "expired")
        return ElectionExpired(r.name, hold.holder, hold.token, grants, [ended])

    # --- reads (rule 10) ---

    def observe(self, name: str) -> dict[str, Any]:
        """``{"leader", "value", "term"}``: the value is the JSON bytes (None without a leader)."""
        r = self.book.get(name)
        if r is None:
            return {"name": name, "leader": None, "value": None, "term": None}
        if r.holders:
            h = r.holders[0]
            return {"name": name, "leader": h.holder, "value": h.value, "term": h.token}
        return {"name": name, "leader": None, "value": None, "term": r.changed}

    def leader(self, name: str) -> dict[str, Any]:
        r = self.book.get(name)
        return {**self.observe(name), "candidates": [w.holder for w in r.waiters] if r is not None else []}

    # --- snapshot (rule 11) ---

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(_Snapshot(SNAPSHOT_VERSION, self.book.snapshot_state()))

    def restore(self, data: bytes) -> None:
        if not data:
            self.book.restore_state(BookState([], []))
            return
        state = msgspec.msgpack.decode(data, type=_Snapshot)
        if state.version != SNAPSHOT_VERSION:
            raise ValueError(f"election snapshot version {state.version} (this node reads {SNAPSHOT_VERSION})")
        self.book.restore_state(state.book)
