"""The lock table's records: a resource, its holds (leases with a fencing token) and its FIFO waiters.

Also the snapshot's format.  The rules they serve are numbered in
``rakit.statemachines.locks.table``; the methods here are rules 1, 3, 7 and 8
read off one record.
"""

from __future__ import annotations

import bisect
import itertools
import math

import msgspec

from rakit.statemachines.locks.commands import EXCLUSIVE, SHARED, compatible
from rakit.statemachines.locks.results import Grant

# --- the table's records (also the snapshot's) -----------------------------------


class Hold(msgspec.Struct):
    client_id: str
    mode: str
    token: int
    ttl: float
    lease: int
    owner: str | None = None  # rule 13 (absent from older snapshots: None)
    secret: str | None = None  # rule 15 (absent from older snapshots: None)
    session_id: str | None = None  # rule 18 (absent from older snapshots: None)

    @property
    def party(self) -> str:
        return party_of(self.owner, self.client_id)


class Waiter(msgspec.Struct):
    client_id: str
    mode: str
    ttl: float
    wait: float
    upgrade: bool = False
    owner: str | None = None  # rule 13 (absent from older snapshots: None)
    secret: str | None = None  # rule 15 (absent from older snapshots: None)
    session_id: str | None = None  # rule 18 (absent from older snapshots: None)

    @property
    def party(self) -> str:
        return party_of(self.owner, self.client_id)


class Resource(msgspec.Struct):
    name: str
    holders: list[Hold] = []
    waiters: list[Waiter] = []
    max_token: int | None = None
    lock_delay: float = 0.0
    delay_since: int | None = None
    delay_for: float | None = None  # rule 18: a session's lock_delay made the current delay longer

    @property
    def delayed(self) -> bool:
        return self.delay_since is not None

    @property
    def blank(self) -> bool:
        """Says nothing a fresh record would not: may be forgotten."""
        return not (self.holders or self.waiters or self.delayed) and self.max_token is None and not self.lock_delay

    def hold_of(self, client_id: str) -> Hold | None:
        return next((h for h in self.holders if h.client_id == client_id), None)

    def waiter_of(self, client_id: str) -> Waiter | None:
        return next((w for w in self.waiters if w.client_id == client_id), None)

    def upgrade_waiters(self) -> int:
        return sum(1 for w in self.waiters if w.upgrade)

    def grantable_now(self, mode: str) -> bool:
        """Rule 3, for a newcomer."""
        return not self.delayed and not self.waiters and all(compatible(mode, h.mode) for h in self.holders)

    def blockers(self, waiter: Waiter, position: int) -> list[str]:
        """Rule 8: whom ``waiter``, queued at ``position``, waits for."""
        me = waiter.party
        holders = [h.party for h in self.holders if h.party != me]
        ahead = [w.party for w in self.waiters[:position] if not compatible(w.mode, waiter.mode)]
        return holders + ahead

    def head_batch(self) -> list[Waiter]:
        """Rule 7: the waiters at the head that can be granted now (maybe none)."""
        if self.delayed or not self.waiters:
            return []
        head = self.waiters[0]
        if head.upgrade:
            return [head] if [h.client_id for h in self.holders] == [head.client_id] else []
        if head.mode == EXCLUSIVE:
            return [] if self.holders else [head]
        if any(h.mode == EXCLUSIVE for h in self.holders):
            return []
        return list(itertools.takewhile(lambda w: w.mode == SHARED, self.waiters))


class WaitQueue:
    """One resource's wait list indexed for rule 8: ``blockers(client)`` is ``Resource.blockers``."""

    __slots__ = ("exclusive_ids", "exclusive_positions", "holders", "ids", "modes", "position")

    def __init__(self, r: Resource) -> None:
        self.holders = [h.party for h in r.holders]
        self.ids = [w.party for w in r.waiters]
        self.modes = [w.mode for w in r.waiters]
        self.position = {c: i for i, c in reversed(list(enumerate(self.ids)))}  # first entry wins, as waiter_of
        self.exclusive_positions = [i for i, m in enumerate(self.modes) if m == EXCLUSIVE]
        self.exclusive_ids = [self.ids[i] for i in self.exclusive_positions]

    def blockers(self, client: str) -> list[str]:
        p = self.position[client]
        holders = [h for h in self.holders if h != client]
        if self.modes[p] == EXCLUSIVE:  # incompatible with every waiter ahead
            return holders + self.ids[:p]
        return holders + self.exclusive_ids[: bisect.bisect_left(self.exclusive_positions, p)]


class Snapshot(msgspec.Struct):
    version: int
    resources: list[Resource]  # in the table's order, so a restored table iterates alike
    free: list[str] | None = None  # rule 17's order, oldest first (None in older snapshots: table order)
    fencing_floor: int | None = None


SNAPSHOT_VERSION = 1
snapshot_encoder = msgspec.msgpack.Encoder()
snapshot_decoder = msgspec.msgpack.Decoder(Snapshot)


OTHER_OWNER = "(another owner's client)"


def party_of(owner: str | None, client_id: str) -> str:
    """Rule 8's graph node: a client id is only the same client under the same owner (rule 13)."""
    return client_id if owner is None else f"{owner}\x00{client_id}"


def shown_to(owner: str | None, party: str) -> str:
    """A cycle member as the requester (of ``owner``) may see it: another owner's ids stay hidden."""
    theirs, sep, client_id = party.rpartition("\x00")
    if not sep:
        return party if owner is None else OTHER_OWNER
    return client_id if theirs == owner else OTHER_OWNER


def positive(x: float) -> bool:
    return math.isfinite(x) and x > 0


def non_negative(x: float) -> bool:
    return math.isfinite(x) and x >= 0


def grant_of(resource: str, hold: Hold) -> Grant:
    return Grant(resource, hold.client_id, hold.mode, hold.token, hold.ttl, hold.lease, hold.session_id)
