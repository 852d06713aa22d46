"""The lock table: shared/exclusive locks as a deterministic Raft state machine.

Theory of operation
-------------------
Every replica applies the same committed commands at the same log indexes
and so reaches the same table.  Nothing here reads a clock: a lease running
out, a waiter giving up and a lock delay ending are commands the leader
proposes (``Expire``, ``CancelWait``, ``DelayEnd``) after timing them with its
own clock; ``holds()``, ``waiters()`` and ``delayed()`` tell a new leader
which timers to restart.  Refusals ("conflict", "deadlock", "not_holder", ...)
are results, never exceptions: a committed entry must not crash a replica.

Each resource has a record: its holders (grant order), its wait list (upgrade
waiters first, then arrival order), ``max_token``, its ``lock_delay`` option
and, while in delay, ``delay_since`` (the index of the ``Expire`` that started
the delay).  A record lives as long as it says anything, and a free one (no
holders, no waiters, not in delay) at most until ``max_free`` newer free
records push it out (rule 17).

Rules
-----
1.  Modes: exclusive excludes everyone; shared is compatible with shared.
2.  A fencing token is the log index of the command that produced the grant
    (for a waiter granted because of a later Release/Expire/CancelWait/
    DelayEnd: the index of *that* command), so tokens strictly increase per
    resource.  Shared waiters granted together share one token.  ``max_token``
    is the highest token ever granted for the resource; it survives the
    resource becoming free.
3.  A request is granted at once only if it is compatible with the current
    holders AND nobody waits on the resource AND the resource is not in delay.
    So a new shared request never overtakes a waiting exclusive one.
4.  Re-acquire by a holder in its own mode is idempotent: same token,
    ``again=True``, and the lease restarts (lease stamp = this index, ttl = the
    new ttl).  A holder of exclusive asking for shared is a re-acquire too: it
    keeps exclusive (the stronger mode already covers the request).
5.  Upgrade: the *sole* shared holder asking for exclusive is upgraded at once
    (new grant, token = this index, ``upgraded=True``) unless the resource is in
    delay.  Otherwise it becomes an *upgrade waiter* (or, with wait == 0, gets
    "conflict"): upgrade waiters queue ahead of ordinary waiters, FIFO among
    themselves, and are granted exclusive once they are the sole holder.  An
    upgrade waiter whose shared hold ends (released or expired) keeps waiting
    as an ordinary exclusive waiter, placed right after the upgrade waiters.
6.  Waiting: a request that cannot be granted waits at the tail of the FIFO
    wait list if wait > 0 (result ``Waiting``, ``position`` = number of waiters
    ahead) and is refused with "conflict" if wait == 0.  A client already
    waiting on the resource asking again gets ``Waiting`` again, with no second
    entry: its stored wait and ttl take the new values, its mode and place stay.
7.  Grant on change: whenever holders change (release, expire, cancel of a
    waiter, delay end) the wait list is granted from its head, unless the
    resource is in delay: an upgrade waiter who is sole holder becomes
    exclusive; an exclusive head on a free resource is granted alone; a shared
    head with no exclusive holder is granted together with every shared waiter
    that follows it up to the next exclusive one, all with one token.  This
    repeats until the head cannot be granted.
8.  Deadlock: before a request waits, the wait-for graph is built: each
    waiting client -> every current holder of the resource it waits on (but
    itself), and -> every waiter queued ahead of it there whose mode is
    incompatible with its own; plus the edges the new request would add.  If
    that closes a cycle through the requester, the request is refused with
    "deadlock" and the cycle (requester first, each client once), and nothing
    changes.  A client may wait on several resources at once.  A client is
    its (owner, client id) pair (rule 13): two owners' ``worker-1`` are two
    clients, and a cycle names another owner's clients only as
    "(another owner's client)".
9.  Release and expiry end a hold and grant waiters per rule 7.  Release or
    Renew by a client that does not hold (a waiter does not) -> ``NotHolder``.
    Release with a fencing token other than the holder's -> ``TokenMismatch``.
    Renew restarts the lease (lease stamp = this index, ttl as given).
    ``Expire`` applies only if its lease stamp is the hold's current one
    (otherwise ``Stale``: renewed or released since).  If the resource's
    ``lock_delay`` > 0, an expiry puts the resource in delay: nobody is granted
    it until ``DelayEnd`` (an expiry during a delay restarts it).  ``DelayEnd``
    may name the delay it ends (``since``); a delay restarted since -> ``Stale``.
10. Results carry what the service needs: ``grants`` (the waiters this command
    granted) and ``removed_holds`` (the holds that ended, with the reason).  An
    ``Acquire`` never grants anyone but its own client, so ``Granted`` has no
    ``grants``.
11. The read API (``status``, ``table``, ``holds``, ``waiters``, ``holding``,
    ``delayed``, ``delay_since``) is not a command and changes nothing.
12. A malformed command (unknown mode, ttl <= 0, negative wait or lock_delay,
    a non-finite number) gets ``Refused("invalid")`` and changes nothing.
    ``Acquire.lock_delay``, when given, sets the resource's option as part of
    any valid acquire, whatever its outcome (but see rules 13 and 14).
13. Owners: every hold and waiter keeps the ``owner`` of the Acquire that
    made it (the API token's name; None when tokens are off), and a waiter
    granted later passes its owner on to its hold.  ``Release`` and ``Renew``
    apply only if their ``owner`` equals the hold's: otherwise ``NotHolder``,
    as if the client held nothing (a client id used under one token is not
    released, renewed or fenced-checked under another).  An ``Acquire`` whose
    client already holds or waits on the resource under another owner is
    refused with "conflict" (whatever its wait) and changes nothing.  A
    ``CancelWait`` with ``any_owner=False`` cancels only a waiter of its
    ``owner`` and reports only a hold of its ``owner``; the leader's own
    timers cancel whoever waits (``any_owner=True``, the default).
14. Bounded waiters: a request that would wait on a resource that already has
    ``max_waiters`` waiters (``MAX_WAITERS`` unless the table is built with
    another bound, the same on every replica) is refused with
    "too_many_waiters" and changes nothing at all (not even ``lock_delay``).
    A client already waiting that asks again (rule 6) is not a new waiter.
15. Holder secrets: an ``Acquire`` may carry a ``secret`` (the client makes
    it up; it is never shown by any read).  The hold or waiter it makes keeps
    it, and a waiter granted later passes it on to its hold.  ``Release`` and
    ``Renew`` of a hold with a secret apply only with that same secret:
    otherwise ``NotHolder``, as if the client held nothing.  An ``Acquire``
    for a client that holds or waits with a secret, asking with another (or
    none), is refused with "conflict" and changes nothing.  A hold made
    without a secret takes any (or none), as before: the secret is what
    stops someone who knows a holder's public client id from releasing,
    renewing or re-acquiring its hold.
16. Quotas: an ``Acquire`` may carry ``max_locks`` (its owner's quota, from
    the tokens file).  If its client neither holds nor waits on the resource
    and the owner already has ``max_locks`` holds and waits in the table
    (an upgrade waiter counts besides its hold), it is refused with "quota"
    and changes nothing.  The counts are derived state (rebuilt on restore).
17. Forgetting free records: after every command the record it names, if
    free (no holders, no waiters, not in delay), becomes the newest free
    record.  When more than ``max_free`` records are free (``MAX_FREE_RECORDS``
    unless the table is built with another bound, the same on every
    replica), the oldest free ones are forgotten (with their ``lock_delay``
    option) and ``fencing_floor`` becomes the highest ``max_token`` forgotten.
    A resource with no record reports ``fencing_floor`` as its token: no token
    above it was ever granted for the resource, and every later grant is
    above it (rule 2: a later log index).  So memory is bounded by the live
    records plus ``max_free``, and tokens stay monotonic per resource.
18. Sessions: an ``Acquire`` may carry a ``session_id`` (the coordination
    machine checked the session lives); its hold or waiter keeps it, and a
    waiter granted later passes it on.  Such a hold has no lease of its own:
    ``holds`` leaves it out and an ``Expire`` naming it is ``Stale``.  An
    ``Acquire`` for a client on the resource in another session (or none)
    is refused with "conflict".  ``end_session(index, session_id,
    lock_delay)`` (called by the coordination machine inside its session
    end, so in the same entry) cancels the session's waits, ends its holds
    (reason "session_ended") and grants per rule 7; a resource whose hold
    so ended goes into delay (``delay_since`` = index) if its own
    ``lock_delay`` or the session's is > 0, for the longer of the two.
    ``attached(session_id)``: the resources it holds or waits on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rakit.statemachines.holds import secret_fits
from rakit.statemachines.locks import views
from rakit.statemachines.locks.commands import (
    EXCLUSIVE,
    MODES,
    SHARED,
    Acquire,
    CancelWait,
    Command,
    DelayEnd,
    Expire,
    Release,
    Renew,
    SetOptions,
)
from rakit.statemachines.locks.deadlock import reaches, wait_for_graph
from rakit.statemachines.locks.records import (
    SNAPSHOT_VERSION,
    Hold,
    Resource,
    Snapshot,
    Waiter,
    grant_of,
    non_negative,
    positive,
    shown_to,
    snapshot_decoder,
    snapshot_encoder,
)
from rakit.statemachines.locks.results import (
    Cancelled,
    DelayEnded,
    EndedHold,
    Expired,
    Grant,
    Granted,
    NotHolder,
    OptionsSet,
    Refused,
    Released,
    Renewed,
    Result,
    SessionLocksEnded,
    Stale,
    TokenMismatch,
    Waiting,
)
from rakit.statemachines.waitfor import find_cycle

#: Rule 14: waiters one resource may have; one more is refused with "too_many_waiters".
#: Part of the replicated behaviour: every replica must use the same bound.
MAX_WAITERS = 1000
#: Rule 17: free records the table keeps (about 1 KB each); older ones are forgotten.
#: Replicated behaviour too: every replica must use the same bound.
MAX_FREE_RECORDS = 10_000


class LockTable:
    name = "locks"
    commands = (Acquire, Release, Renew, Expire, CancelWait, DelayEnd, SetOptions)

    def __init__(self, max_waiters: int = MAX_WAITERS, max_free: int = MAX_FREE_RECORDS) -> None:
        if max_waiters < 1 or max_free < 0:
            raise ValueError("max_waiters must be at least 1 and max_free at least 0")
        self.max_waiters = max_waiters  # rule 14
        self.max_free = max_free  # rule 17
        self._resources: dict[str, Resource] = {}
        self._free: dict[str, None] = {}  # rule 17: free records, oldest first
        self.fencing_floor: int | None = None
        # client -> resources it waits on; derived from the wait lists (rebuilt on restore).
        self._waiting_on: dict[str, dict[str, None]] = {}
        # owner -> its holds plus waits (rule 16); derived too.
        self._entries: dict[str | None, int] = {}

    def apply(self, index: int, command: Command) -> Result:
        result = self._apply(index, command)
        self._settle(command.resource)
        return result

    def _apply(self, index: int, command: Command) -> Result:
        match command:
            case Acquire():
                return self._acquire(index, command)
            case Release():
                return self._release(index, command)
            case Renew():
                return self._renew(index, command)
            case Expire():
                return self._expire(index, command)
            case CancelWait():
                return self._cancel_wait(index, command)
            case DelayEnd():
                return self._delay_end(index, command)
            case SetOptions():
                return self._set_options(command)
        raise TypeError(f"not a lock command: {command!r}")

    def _settle(self, resource: str) -> None:
        """Rule 17 for the record ``resource`` a command named."""
        self._free.pop(resource, None)
        r = self._resources.get(resource)
        if r is None or r.holders or r.waiters or r.delayed:
            return
        if r.blank:
            del self._resources[resource]
            return
        self._free[resource] = None
        while len(self._free) > self.max_free:
            self._forget(next(iter(self._free)))

    def _forget(self, resource: str) -> None:
        del self._free[resource]
        r = self._resources.pop(resource)
        if r.max_token is not None and (self.fencing_floor is None or r.max_token > self.fencing_floor):
            self.fencing_floor = r.max_token

    # --- acquire (rules 3-6, 8) ---

    def _acquire(self, index: int, cmd: Acquire) -> Result:
        if cmd.mode not in MODES:
            return Refused("invalid", detail=f"unknown mode {cmd.mode!r}")
        if not positive(cmd.ttl) or not non_negative(cmd.wait):
            return Refused("invalid", detail="ttl must be > 0 and wait >= 0")
        if cmd.lock_delay is not None and not non_negative(cmd.lock_delay):
            return Refused("invalid", detail="lock_delay must be >= 0")
        known = self._resources.get(cmd.resource)
        if known is not None:  # rule 13: the client id is taken on this resource under another owner
            for entry in (known.hold_of(cmd.client_id), known.waiter_of(cmd.client_id)):
                if entry is not None and entry.owner != cmd.owner:
                    return Refused(
                        "conflict",
                        detail=(
                            f"client {cmd.client_id!r} {'holds' if isinstance(entry, Hold) else 'waits for'} "
                            f"{cmd.resource!r} under another owner (API token)"
                        ),
                    )
                if entry is not None and entry.session_id != cmd.session_id:  # rule 18
                    detail = f"client {cmd.client_id!r} is on {cmd.resource!r} in another session (or none)"
                    return Refused("conflict", detail=detail)
                if entry is not None and not secret_fits(entry.secret, cmd.secret):  # rule 15
                    return Refused(
                        "conflict",
                        detail=(
                            f"client {cmd.client_id!r} {'holds' if isinstance(entry, Hold) else 'waits for'} "
                            f"{cmd.resource!r} with another holder secret"
                        ),
                    )
        if cmd.max_locks is not None and self._entries.get(cmd.owner, 0) >= cmd.max_locks:  # rule 16
            involved = known is not None and (
                known.hold_of(cmd.client_id) is not None or known.waiter_of(cmd.client_id) is not None
            )
            if not involved:
                return Refused(
                    "quota",
                    detail=f"the token already has {self._entries.get(cmd.owner, 0)} locks held or awaited, "
                    f"its quota (max_locks) is {cmd.max_locks}",
                )
        r = self._record(cmd.resource)
        lock_delay = r.lock_delay
        if cmd.lock_delay is not None:
            r.lock_delay = float(cmd.lock_delay)
        result = self._acquire_on(index, r, cmd)
        if isinstance(result, Refused) and result.code == "too_many_waiters":
            r.lock_delay = lock_delay  # rule 14: nothing changes
        return result

    def _acquire_on(self, index: int, r: Resource, cmd: Acquire) -> Result:
        hold = r.hold_of(cmd.client_id)
        waiter = r.waiter_of(cmd.client_id)
        if hold is not None and (hold.mode == EXCLUSIVE or cmd.mode == SHARED):  # rule 4
            hold.ttl, hold.lease = float(cmd.ttl), index
            return self._granted(r, hold, again=True)
        if waiter is not None:  # rule 6: asked again
            waiter.wait, waiter.ttl = float(cmd.wait), float(cmd.ttl)
            return Waiting(r.name, waiter.client_id, waiter.mode, r.waiters.index(waiter))
        if hold is not None:  # rule 5: a shared holder asking for exclusive
            if len(r.holders) == 1 and not r.delayed:
                hold.mode, hold.token, hold.ttl, hold.lease = EXCLUSIVE, index, float(cmd.ttl), index
                r.max_token = index
                return self._granted(r, hold, upgraded=True)
            return self._wait(
                r,
                Waiter(
                    cmd.client_id,
                    EXCLUSIVE,
                    float(cmd.ttl),
                    float(cmd.wait),
                    upgrade=True,
                    owner=cmd.owner,
                    secret=hold.secret,
                    session_id=hold.session_id,
                ),
            )
        if r.grantable_now(cmd.mode):
            hold = Hold(cmd.client_id, cmd.mode, index, float(cmd.ttl), index, cmd.owner, cmd.secret, cmd.session_id)
            r.holders.append(hold)
            self._count(hold.owner, +1)
            r.max_token = index
            return self._granted(r, hold)
        return self._wait(
            r,
            Waiter(
                cmd.client_id,
                cmd.mode,
                float(cmd.ttl),
                float(cmd.wait),
                owner=cmd.owner,
                secret=cmd.secret,
                session_id=cmd.session_id,
            ),
        )

    def _granted(self, r: Resource, hold: Hold, *, again: bool = False, upgraded: bool = False) -> Granted:
        h = hold
        return Granted(r.name, h.client_id, h.mode, h.token, h.ttl, h.lease, again, upgraded, h.session_id)

    def _wait(self, r: Resource, waiter: Waiter) -> Waiting | Refused:
        """Rules 6 and 8: queue ``waiter`` unless it may not wait or would deadlock."""
        if waiter.wait == 0:
            return Refused("conflict")
        if len(r.waiters) >= self.max_waiters:  # rule 14
            return Refused(
                "too_many_waiters",
                detail=(f"{r.name!r} already has {len(r.waiters)} waiters, the most one resource may have"),
            )
        position = r.upgrade_waiters() if waiter.upgrade else len(r.waiters)
        blockers = r.blockers(waiter, position)
        me = waiter.party
        if reaches(me, blockers, self._waiting_on, self._resources):  # else no cycle: skip building the graph
            cycle = find_cycle(wait_for_graph(me, blockers, self._waiting_on, self._resources), me)
            if cycle is not None:
                return Refused("deadlock", cycle=[shown_to(waiter.owner, p) for p in cycle])
        r.waiters.insert(position, waiter)
        self._waiting_on.setdefault(me, {})[r.name] = None
        self._count(waiter.owner, +1)
        return Waiting(r.name, waiter.client_id, waiter.mode, position)

    # --- release, renew, expire (rule 9) ---

    def _release(self, index: int, cmd: Release) -> Result:
        r, hold = self._lookup(cmd.resource, cmd.client_id)
        if r is None or hold is None or hold.owner != cmd.owner or not secret_fits(hold.secret, cmd.secret):
            return NotHolder(cmd.resource, cmd.client_id)  # rules 13, 15
        if cmd.fencing_token is not None and cmd.fencing_token != hold.token:
            return TokenMismatch(cmd.resource, cmd.client_id, cmd.fencing_token, hold.token)
        ended, grants = self._end_hold(index, r, hold, "released")
        return Released(r.name, hold.client_id, hold.token, grants, [ended])

    def _renew(self, index: int, cmd: Renew) -> Result:
        if not positive(cmd.ttl):
            return Refused("invalid", detail="ttl must be > 0")
        r, hold = self._lookup(cmd.resource, cmd.client_id)
        if r is None or hold is None or hold.owner != cmd.owner or not secret_fits(hold.secret, cmd.secret):
            return NotHolder(cmd.resource, cmd.client_id)  # rules 13, 15
        hold.ttl, hold.lease = float(cmd.ttl), index
        return Renewed(r.name, hold.client_id, hold.token, hold.ttl, hold.lease)

    def _expire(self, index: int, cmd: Expire) -> Result:
        r, hold = self._lookup(cmd.resource, cmd.client_id)
        if r is None or hold is None or hold.lease != cmd.lease or hold.session_id is not None:  # rule 18
            return Stale(cmd.resource, cmd.client_id)
        if r.lock_delay > 0:
            r.delay_since = index
        ended, grants = self._end_hold(index, r, hold, "expired")
        return Expired(r.name, hold.client_id, hold.token, r.delay_since, grants, [ended])

    def _end_hold(self, index: int, r: Resource, hold: Hold, reason: str) -> tuple[EndedHold, list[Grant]]:
        r.holders.remove(hold)
        self._count(hold.owner, -1)
        waiter = r.waiter_of(hold.client_id)
        if waiter is not None and waiter.upgrade:  # rule 5: no longer a holder, still wants exclusive
            r.waiters.remove(waiter)
            waiter.upgrade = False
            r.waiters.insert(r.upgrade_waiters(), waiter)
        ended = EndedHold(r.name, hold.client_id, hold.mode, hold.token, hold.lease, reason)
        return ended, self._grant_from_queue(index, r)

    # --- waiters and delays (rules 6, 7) ---

    def _cancel_wait(self, index: int, cmd: CancelWait) -> Cancelled:
        r = self._resources.get(cmd.resource)
        waiter = r.waiter_of(cmd.client_id) if r is not None else None
        if waiter is not None and not cmd.any_owner and waiter.owner != cmd.owner:  # rule 13
            waiter = None
        grants: list[Grant] = []
        if r is not None and waiter is not None:
            self._dequeue(r, waiter)
            grants = self._grant_from_queue(index, r)
        hold = r.hold_of(cmd.client_id) if r is not None else None
        if hold is not None and not cmd.any_owner and hold.owner != cmd.owner:
            hold = None
        if hold is None:
            return Cancelled(cmd.resource, cmd.client_id, waiter is not None, grants=grants)
        return Cancelled(cmd.resource, cmd.client_id, waiter is not None, True, hold.token, hold.mode, grants)

    def _delay_end(self, index: int, cmd: DelayEnd) -> DelayEnded | Stale:
        r = self._resources.get(cmd.resource)
        if r is None or not r.delayed or cmd.since not in (None, r.delay_since):
            return Stale(cmd.resource)
        r.delay_since = r.delay_for = None
        return DelayEnded(r.name, self._grant_from_queue(index, r))

    def _set_options(self, cmd: SetOptions) -> OptionsSet | Refused:
        if not non_negative(cmd.lock_delay):
            return Refused("invalid", detail="lock_delay must be >= 0")
        r = self._record(cmd.resource)
        r.lock_delay = float(cmd.lock_delay)
        if r.blank:
            del self._resources[r.name]
        return OptionsSet(cmd.resource, r.lock_delay)

    def _grant_from_queue(self, index: int, r: Resource) -> list[Grant]:
        """Rule 7: grant the head of the wait list, batch after batch, all at token ``index``."""
        grants: list[Grant] = []
        while batch := r.head_batch():
            for waiter in batch:
                self._dequeue(r, waiter)
                if waiter.upgrade:  # the sole holder: its shared hold becomes the new grant
                    for old in r.holders:
                        self._count(old.owner, -1)
                    r.holders.clear()
                w = waiter
                hold = Hold(w.client_id, w.mode, index, w.ttl, index, w.owner, w.secret, w.session_id)
                r.holders.append(hold)
                self._count(hold.owner, +1)
                grants.append(grant_of(r.name, hold))
            r.max_token = index
        return grants

    def _count(self, owner: str | None, delta: int) -> None:
        """Rule 16's derived count of ``owner``'s holds and waits."""
        count = self._entries.get(owner, 0) + delta
        if count:
            self._entries[owner] = count
        else:
            self._entries.pop(owner, None)

    def _dequeue(self, r: Resource, waiter: Waiter) -> None:
        r.waiters.remove(waiter)
        self._count(waiter.owner, -1)
        mine = self._waiting_on[waiter.party]
        del mine[r.name]
        if not mine:
            del self._waiting_on[waiter.party]

    def _record(self, resource: str) -> Resource:
        r = self._resources.get(resource)
        if r is None:
            r = self._resources[resource] = Resource(resource)
        return r

    def _lookup(self, resource: str, client_id: str) -> tuple[Resource | None, Hold | None]:
        r = self._resources.get(resource)
        return r, (r.hold_of(client_id) if r is not None else None)

    # --- sessions (rule 18) ---

    def end_session(self, index: int, session_id: str, lock_delay: float) -> SessionLocksEnded:
        removed: list[EndedHold] = []
        cancelled: list[str] = []
        grants: list[Grant] = []
        delayed: list[tuple[str, int, float]] = []
        for name in self.attached(session_id):
            r = self._resources[name]
            for waiter in [w for w in r.waiters if w.session_id == session_id]:
                self._dequeue(r, waiter)
                cancelled.append(name)
            holds = [h for h in r.holders if h.session_id == session_id]
            if holds and (r.lock_delay > 0 or lock_delay > 0):
                r.delay_since = index
                if lock_delay > r.lock_delay:
                    r.delay_for = max(lock_delay, r.delay_for or 0.0)
                delayed.append((name, index, max(r.lock_delay, r.delay_for or 0.0)))
            for hold in holds:
                ended, granted = self._end_hold(index, r, hold, "session_ended")
                removed.append(ended)
                grants.extend(granted)
            grants.extend(self._grant_from_queue(index, r))  # a cancelled waiter may have stopped others
            self._settle(name)
        return SessionLocksEnded(session_id, removed, cancelled, grants, delayed)

    def attached(self, session_id: str) -> list[str]:
        """Rule 18: the resources ``session_id`` holds or waits on, sorted."""
        return sorted(
            r.name
            for r in self._resources.values()
            if any(h.session_id == session_id for h in r.holders) or any(w.session_id == session_id for w in r.waiters)
        )

    # --- read API (rule 11) ---

    def status(self, resource: str) -> dict[str, Any]:
        return views.status(self._resources, resource, self.fencing_floor)

    def table(self, limit: int) -> dict[str, Any]:
        """The whole table for dashboards (``rakit.statemachines.locks.views.table``)."""
        return views.table(self._resources, limit)

    def holds(self) -> Iterator[tuple[str, str, float, int]]:
        """(resource, client_id, ttl, lease) of every hold with a lease of its own (rule 18): the leases to time."""
        for r in self._resources.values():
            for h in r.holders:
                if h.session_id is None:
                    yield r.name, h.client_id, h.ttl, h.lease

    def waiters(self) -> Iterator[tuple[str, str, float]]:
        """(resource, client_id, wait) of every waiter: the waits to time."""
        for r in self._resources.values():
            for w in r.waiters:
                yield r.name, w.client_id, w.wait

    def would_wait(self, resource: str, client_id: str, mode: str) -> bool:
        """Whether a new acquire by ``client_id`` would queue if applied now (a hint: the
        table may change before it is)."""
        r = self._resources.get(resource)
        if r is None or r.hold_of(client_id) is not None or r.waiter_of(client_id) is not None:
            return False
        return not r.grantable_now(mode)

    def holding(self, resource: str, client_id: str) -> Grant | None:
        _, hold = self._lookup(resource, client_id)
        return grant_of(resource, hold) if hold is not None else None

    def entries_of(self, owner: str | None) -> int:
        """Rule 16: ``owner``'s holds plus waits."""
        return self._entries.get(owner, 0)

    def hold_owner(self, resource: str, client_id: str) -> str | None:
        """The owner (rule 13) of ``client_id``'s hold on ``resource``; None if none or not held."""
        _, hold = self._lookup(resource, client_id)
        return hold.owner if hold is not None else None

    def delayed(self) -> Iterator[tuple[str, float]]:
        """(resource, lock_delay) of every resource in delay: the DelayEnds to time."""
        for r in self._resources.values():
            if r.delayed:
                yield r.name, max(r.lock_delay, r.delay_for or 0.0)

    def delay_since(self, resource: str) -> int | None:
        """The index of the Expire that started the resource's current delay (for ``DelayEnd.since``)."""
        r = self._resources.get(resource)
        return r.delay_since if r is not None else None

    # --- snapshot ---

    def snapshot(self) -> bytes:
        state = Snapshot(SNAPSHOT_VERSION, list(self._resources.values()), list(self._free), self.fencing_floor)
        return snapshot_encoder.encode(state)

    def restore(self, data: bytes) -> None:
        self._resources, self._waiting_on, self._entries, self._free = {}, {}, {}, {}
        self.fencing_floor = None
        if not data:
            return
        state = snapshot_decoder.decode(data)
        if state.version != SNAPSHOT_VERSION:
            raise ValueError(f"lock table snapshot version {state.version} (this node reads {SNAPSHOT_VERSION})")
        self.fencing_floor = state.fencing_floor
        if state.free is not None:
            self._free = dict.fromkeys(state.free)
        else:
            free = (r for r in state.resources if not (r.holders or r.waiters or r.delayed))
            self._free = dict.fromkeys(r.name for r in free)
        for r in state.resources:
            self._resources[r.name] = r
            for w in r.waiters:
                self._waiting_on.setdefault(w.party, {})[r.name] = None
                self._count(w.owner, +1)
            for h in r.holders:
                self._count(h.owner, +1)
