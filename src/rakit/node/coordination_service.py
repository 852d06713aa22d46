"""Sessions, semaphores and elections on the leader: proposes their commands and waits for the outcome.

As ``rakit.node.lock_service`` does for locks: a request that waits (a
semaphore acquire or a campaign with ``timeout`` > 0) registers interest in
its grant before proposing, and the apply listener hands it the grant a
later release, expiry, resignation or session end makes; a waiter whose time
is up proposes ``SemCancelWait`` / ``Withdraw`` and, if granted meanwhile,
still answers with the grant.  If this node stops leading while requests
wait, they fail with ``NotLeader`` and the HTTP layer repeats them at the new
leader, where the waiter already is in the replicated tables.

Refusals of the machine (``holds.Refused``) become the error tree's classes
once, here (``refusal``).  ``observe`` answers when the election has a term
greater than the caller's, or at its timeout.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from rakit.errors import (
    Conflict,
    InvalidRequest,
    NoLeader,
    NotElected,
    NotLeader,
    RakitError,
    SessionNotFound,
    TooManyWaiters,
)
from rakit.node.coordination_results import flatten
from rakit.raft.messages import Entry
from rakit.statemachines import elections as EL
from rakit.statemachines import semaphores as SM
from rakit.statemachines import sessions as SS
from rakit.statemachines.coordination import CoordinationMachine
from rakit.statemachines.holds import Grant, Refused

if TYPE_CHECKING:
    from rakit.node.coordination_leases import CoordinationKeeper
    from rakit.node.driver import RaftDriver
    from rakit.statemachines.registry import Registry

Key = tuple[str, str, str]  # (kind, name, holder)


class CoordinationService:
    def __init__(
        self, driver: RaftDriver, machine: CoordinationMachine, machines: Registry, keeper: CoordinationKeeper
    ) -> None:
        self.driver = driver
        self.machine = machine
        self.machines = machines
        self.keeper = keeper
        self._grants: dict[Key, list[asyncio.Future[Grant]]] = defaultdict(list)
        self._observers: dict[str, list[asyncio.Future[None]]] = defaultdict(list)
        driver.add_apply_listener(self.on_applied)
        driver.add_role_listener(self.on_role)

    # -- listeners -----------------------------------------------------------------

    def on_applied(self, entry: Entry, result: Any) -> None:
        changed: set[str] = set()
        for inner in flatten(result):
            for grant in getattr(inner, "grants", ()):
                if isinstance(grant, Grant):
                    for future in self._grants.pop((grant.kind, grant.name, grant.holder), ()):
                        if not future.done():
                            future.set_result(grant)
                    if grant.kind == "election":
                        changed.add(grant.name)
            for ended in getattr(inner, "removed", ()):
                if getattr(ended, "kind", None) == "election":
                    changed.add(ended.name)
            if isinstance(inner, EL.Elected | EL.Resigned | EL.ElectionExpired):
                changed.add(inner.name)
            if isinstance(inner, SS.SessionEnded):
                changed.update(inner.elections)
        for name in changed:
            for change in self._observers.pop(name, ()):
                if not change.done():
                    change.set_result(None)

    def on_role(self, role: str, leader_id: str | None) -> None:
        if role == "leader":
            return
        error: RakitError = NotLeader(leader_id) if leader_id else NoLeader()
        waiting: list[asyncio.Future[Any]] = [f for fs in self._grants.values() for f in fs]
        waiting += [f for fs in self._observers.values() for f in fs]
        self._grants.clear()
        self._observers.clear()
        for future in waiting:
            if not future.done():
                future.set_exception(error)

    async def propose(self, command: Any) -> Any:
        return await self.driver.propose(self.machines.encode(command))

    # -- sessions ----------------------------------------------------------------------

    async def grant_session(self, client_id: str, ttl: float, lock_delay: float) -> SS.SessionGranted:
        result = await self.propose(SS.SessionGrant(uuid.uuid4().hex, client_id, ttl, lock_delay))
        if isinstance(result, Refused):
            raise refusal(result)
        assert isinstance(result, SS.SessionGranted), result
        return result

    async def keepalive(self, session_id: str) -> SS.SessionKept:
        result = await self.propose(SS.SessionKeepalive(session_id))
        if isinstance(result, SS.SessionKept):
            return result
        raise SessionNotFound(f"no session {session_id!r} (never granted, revoked, or expired)")

    async def revoke(self, session_id: str) -> SS.SessionEnded:
        result = await self.propose(SS.SessionRevoke(session_id))
        if isinstance(result, SS.SessionEnded):
            return result
        raise SessionNotFound(f"no session {session_id!r} (never granted, revoked, or expired)")

    async def session(self, session_id: str) -> dict[str, Any]:
        await self.driver.read_barrier()
        view = self.machine.session_view(session_id)
        if view is None:
            raise SessionNotFound(f"no session {session_id!r} (never granted, revoked, or expired)")
        remaining = self.keeper.remaining(session_id)
        return {
            "session_id": view["session_id"],
            "client_id": view["client_id"],
            "ttl": view["ttl"],
            "remaining": round(view["ttl"] if remaining is None else remaining, 3),
            "lock_delay": view["lock_delay"],
            "locks": view.get("locks", []),
            "semaphores": view["semaphores"],
            "elections": view["elections"],
            "keys": view.get("keys", []),
        }

    # -- semaphores --------------------------------------------------------------------

    async def acquire(self, command: SM.SemAcquire) -> SM.SemGranted:
        """Grant, wait up to ``command.wait`` seconds, or raise (``conflict``, ``timeout``, ...)."""
        key = ("semaphore", command.name, command.client_id)
        result = await self._waiting(key, command, command.wait)
        if isinstance(result, SM.SemWaiting):
            return await self._semaphore_wait(key, command)
        if isinstance(result, Refused):
            raise refusal(result, acquired=False)
        assert isinstance(result, SM.SemGranted), result
        return result

    async def _semaphore_wait(self, key: Key, command: SM.SemAcquire) -> SM.SemGranted:
        interest = self._interest(key)
        try:
            grant = await asyncio.wait_for(asyncio.shield(interest), command.wait)
            return self._sem_granted(grant)
        except TimeoutError:
            cancelled = await self.propose(SM.SemCancelWait(command.name, command.client_id, command.secret))
            if isinstance(cancelled, SM.SemCancelled) and cancelled.holding is not None:
                return cancelled.holding
            raise Conflict(
                "timeout", f"{command.name!r} was not granted within {command.wait:g}s", acquired=False
            ) from None
        except asyncio.CancelledError:
            if self.driver.is_leader:  # the client went away: leave the wait list, in the background
                cancel = SM.SemCancelWait(command.name, command.client_id, command.secret)
                asyncio.get_running_loop().create_task(self._quietly(cancel))
            raise
        finally:
            self._forget(self._grants, key, interest)

    def _sem_granted(self, grant: Grant) -> SM.SemGranted:
        record = self.machine.semaphores.book.get(grant.name)
        limit = record.capacity if record is not None else grant.amount
        available = record.available if record is not None else 0
        return SM.SemGranted(
            grant.name, grant.holder, grant.amount, limit, available, grant.token, grant.ttl, grant.lease
        )

    async def release(self, name: str, client_id: str, secret: str | None = None) -> SM.SemReleased:
        result = await self.propose(SM.SemRelease(name, client_id, secret))
        if isinstance(result, SM.SemReleased):
            return result
        raise Conflict("not_holder", f"{client_id!r} does not hold {name!r}")

    async def renew(self, name: str, client_id: str, ttl: float | None, secret: str | None = None) -> SM.SemRenewed:
        if ttl is None:
            await self.driver.read_barrier()
            record = self.machine.semaphores.book.get(name)
            hold = record.hold_for(client_id, secret) if record is not None else None
            if hold is None:
                raise Conflict("not_holder", f"{client_id!r} does not hold {name!r}")
            ttl = hold.ttl
        result = await self.propose(SM.SemRenew(name, client_id, ttl, secret))
        if isinstance(result, SM.SemRenewed):
            return result
        if isinstance(result, Refused):
            raise refusal(result)
        raise Conflict("not_holder", f"{client_id!r} does not hold {name!r}")

    async def semaphore_status(self, name: str) -> dict[str, Any]:
        await self.driver.read_barrier()
        return self.machine.semaphores.status(name)

    # -- elections ---------------------------------------------------------------------

    async def campaign(self, command: EL.Campaign) -> EL.Elected:
        key = ("election", command.name, command.candidate_id)
        result = await self._waiting(key, command, command.wait)
        if isinstance(result, EL.CandidateWaiting):
            return await self._campaign_wait(key, command)
        if isinstance(result, Refused):
            raise refusal(result, elected=False)
        assert isinstance(result, EL.Elected), result
        return result

    async def _campaign_wait(self, key: Key, command: EL.Campaign) -> EL.Elected:
        interest = self._interest(key)
        try:
            await asyncio.wait_for(asyncio.shield(interest), command.wait)
            return self._elected(command.name)
        except TimeoutError:
            withdrawn = await self.propose(EL.Withdraw(command.name, command.candidate_id, command.secret))
            if isinstance(withdrawn, EL.Withdrawn) and withdrawn.leading is not None:
                return withdrawn.leading
            raise Conflict(
                "timeout", f"{command.candidate_id!r} was not elected within {command.wait:g}s", elected=False
            ) from None
        except asyncio.CancelledError:
            if self.driver.is_leader:
                withdraw = EL.Withdraw(command.name, command.candidate_id, command.secret)
                asyncio.get_running_loop().create_task(self._quietly(withdraw))
            raise
        finally:
            self._forget(self._grants, key, interest)

    def _elected(self, name: str) -> EL.Elected:
        record = self.machine.elections.book.get(name)
        assert record is not None and record.holders, name
        h = record.holders[0]
        return EL.Elected(record.name, h.holder, h.value, h.token, h.ttl, h.lease, False, h.session_id)

    async def renew_leadership(
        self, name: str, candidate_id: str, ttl: float | None, secret: str | None = None
    ) -> EL.ElectionRenewed:
        if ttl is None:
            await self.driver.read_barrier()
            record = self.machine.elections.book.get(name)
            hold = record.hold_for(candidate_id, secret) if record is not None else None
            if hold is None:
                raise NotElected(f"{candidate_id!r} does not lead {name!r}")
            ttl = hold.ttl
        result = await self.propose(EL.ElectionRenew(name, candidate_id, ttl, secret))
        if isinstance(result, EL.ElectionRenewed):
            return result
        if isinstance(result, Refused):
            raise refusal(result)
        raise NotElected(f"{candidate_id!r} does not lead {name!r}")

    async def proclaim(
        self, name: str, candidate_id: str, term: int, value: bytes, secret: str | None = None
    ) -> EL.Proclaimed:
        result = await self.propose(EL.Proclaim(name, candidate_id, term, value, secret))
        if isinstance(result, EL.Proclaimed):
            return result
        raise NotElected(f"{candidate_id!r} does not lead {name!r} with term {term}")

    async def resign(self, name: str, candidate_id: str, secret: str | None = None) -> EL.Resigned:
        result = await self.propose(EL.Resign(name, candidate_id, secret))
        if isinstance(result, EL.Resigned):
            return result
        raise NotElected(f"{candidate_id!r} neither leads {name!r} nor is a candidate")

    async def leader(self, name: str) -> dict[str, Any]:
        await self.driver.read_barrier()
        return self.machine.elections.leader(name)

    async def observe(self, name: str, after_term: int | None, timeout: float) -> dict[str, Any]:
        """The election as soon as its term is greater than ``after_term``, or as it is at ``timeout``."""
        await self.driver.read_barrier()
        deadline = time.monotonic() + timeout
        while True:
            view = self.machine.elections.observe(name)
            term = view["term"]
            if term is not None and (after_term is None or term > after_term):
                return {**view, "changed": True}
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return {**view, "changed": False}
            change: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._observers[name].append(change)
            try:
                await asyncio.wait_for(asyncio.shield(change), remaining)
            except TimeoutError:
                pass
            finally:
                self._forget(self._observers, name, change)

    # -- helpers ---------------------------------------------------------------------------

    def _interest(self, key: Key) -> asyncio.Future[Grant]:
        future: asyncio.Future[Grant] = asyncio.get_running_loop().create_future()
        self._grants[key].append(future)
        return future

    async def _waiting(self, key: Key, command: Any, wait: float) -> Any:
        """Propose ``command``; a grant applied between its commit and our look is not missed."""
        if wait <= 0:
            return await self.propose(command)
        early = self._interest(key)  # a grant by a later entry may be applied before we look
        try:
            result = await self.propose(command)
            queued = isinstance(result, SM.SemWaiting | EL.CandidateWaiting)
            # Only a command the machine queued owns a grant to its holder id: a refused one (limit_mismatch,
            # conflict) must answer its refusal even if an earlier request with the same id was granted meanwhile.
            if queued and early.done() and not early.cancelled() and early.exception() is None:
                if isinstance(command, SM.SemAcquire):
                    return self._sem_granted(early.result())
                return self._elected(command.name)
            return result
        finally:
            self._forget(self._grants, key, early)

    async def _quietly(self, command: Any) -> None:
        try:
            await self.propose(command)
        except RakitError:
            pass  # the keeper's timer cleans up

    @staticmethod
    def _forget(table: dict[Any, list[Any]], key: Any, future: asyncio.Future[Any]) -> None:
        futures = table.get(key)
        if futures and future in futures:
            futures.remove(future)
            if not futures:
                del table[key]


def refusal(result: Refused, **extra: Any) -> RakitError:
    """The error tree's class for a refusal of the coordination machine."""
    detail = result.detail or result.code
    if result.code == "invalid":
        return InvalidRequest(detail)
    if result.code == "session_not_found":
        return SessionNotFound(detail, **extra)
    if result.code == "too_many_waiters":
        return TooManyWaiters(detail, **extra)
    if result.code == "limit_mismatch":
        return Conflict("limit_mismatch", detail, limit=result.limit, **extra)
    if result.code in ("already_holder", "session_exists"):
        return Conflict(result.code, detail, **extra)
    return Conflict("conflict", detail, **extra)
