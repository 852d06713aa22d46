"""The lock service on the leader: proposes lock commands and waits for their outcome.

A waiting acquire is answered when the grant is *applied*: the service
registers interest in (resource, client) before proposing, and the apply
listener hands it every grant that a later release, expiry, cancel or delay
end makes.  A waiter whose time is up proposes ``CancelWait``; if it was
granted meanwhile, the answer is still the grant (no lost grant).  If this
node stops leading while requests wait, they fail with ``NotLeader`` and the
HTTP layer repeats them at the new leader: the waiter is already in the
replicated table, so the repeat finds the grant or keeps waiting — never a
double grant.

``/lock/watch`` waiters are answered when the watched hold ends.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from rakit.errors import Conflict, InvalidRequest, NoLeader, NotLeader, RakitError, SessionNotFound, TooManyWaiters
from rakit.node.coordination_results import lock_results
from rakit.raft.messages import Entry
from rakit.statemachines import locks as L
from rakit.statemachines.coordination import SessionLockAcquire
from rakit.statemachines.holds import Refused

if TYPE_CHECKING:
    from rakit.metrics import NodeMetrics
    from rakit.node.driver import RaftDriver
    from rakit.statemachines.registry import Registry

Key = tuple[str, str]


class LockService:
    def __init__(self, driver: RaftDriver, table: L.LockTable, machines: Registry, metrics: NodeMetrics) -> None:
        self.driver = driver
        self.metrics = metrics
        self.table = table
        self.machines = machines
        self._grants: dict[Key, list[asyncio.Future[L.Grant]]] = defaultdict(list)
        self._watchers: dict[Key, list[asyncio.Future[L.EndedHold]]] = defaultdict(list)
        driver.add_apply_listener(self.on_applied)
        driver.add_role_listener(self.on_role)

    # -- listeners -----------------------------------------------------------------

    def on_applied(self, entry: Entry, result: Any) -> None:
        for inner in lock_results(result):  # a lock result, or one nested in a session's end
            self._on_result(inner)

    def _on_result(self, result: Any) -> None:
        for grant in getattr(result, "grants", ()):
            for future in self._grants.pop((grant.resource, grant.client_id), ()):
                if not future.done():
                    future.set_result(grant)
        for ended in getattr(result, "removed_holds", ()):
            for watcher in self._watchers.pop((ended.resource, ended.client_id), ()):
                if not watcher.done():
                    watcher.set_result(ended)

    def on_role(self, role: str, leader_id: str | None) -> None:
        if role == "leader":
            return
        error: RakitError = NotLeader(leader_id) if leader_id else NoLeader()
        for table in (self._grants, self._watchers):
            for futures in table.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(error)
            table.clear()

    # -- operations (run on the leader) -----------------------------------------------

    async def propose(self, command: Any, *, lazy: bool = False) -> Any:
        if isinstance(command, L.Acquire) and command.session_id is not None:
            # Checked and attached in one entry by the coordination machine (its rule 2).
            command = SessionLockAcquire(command)
        return await self.driver.propose(self.machines.encode(command), lazy=lazy)

    async def acquire(self, command: L.Acquire) -> L.Granted:
        """Grant, wait up to ``command.wait`` seconds, or raise a ``Conflict``."""
        key = (command.resource, command.client_id)
        interest: asyncio.Future[L.Grant] = asyncio.get_running_loop().create_future()
        self._grants[key].append(interest)
        try:
            # An acquire that will queue is answered at its grant, not at its commit: it may
            # share the next release's replication round (``RaftDriver.propose``, lazy).
            lazy = command.wait > 0 and self.table.would_wait(command.resource, command.client_id, command.mode)
            result = await self.propose(command, lazy=lazy)
            if isinstance(result, L.Refused | Refused):  # the lock table's, or the session check's
                raise refusal(result)
            if isinstance(result, L.Waiting):
                self.metrics.lock_waiting.inc()
                try:
                    result = as_granted(await asyncio.wait_for(asyncio.shield(interest), command.wait))
                except TimeoutError:
                    result = await self._give_up(command)
                finally:
                    self.metrics.lock_waiting.dec()
            assert isinstance(result, L.Granted), result
            self.metrics.lock_grants.inc()
            return result
        except asyncio.CancelledError:
            # The client went away: leave the wait list (best effort, in the background).
            if self.driver.is_leader:
                asyncio.get_running_loop().create_task(self._cancel_quietly(command))
            raise
        finally:
            self._forget(self._grants, key, interest)

    async def _give_up(self, command: L.Acquire) -> L.Granted:
        result = await self.propose(_cancel(command))
        if isinstance(result, L.Cancelled) and result.holding:
            grant = self.table.holding(command.resource, command.client_id)
            if grant is not None:
                return as_granted(grant)
        raise Conflict("timeout", f"{command.resource!r} was not granted within {command.wait:g}s", acquired=False)

    async def _cancel_quietly(self, command: L.Acquire) -> None:
        try:
            await self.propose(_cancel(command))
        except RakitError:
            pass  # the lease keeper's timer cleans up

    async def release(self, command: L.Release) -> L.Released:
        result = await self.propose(command)
        if isinstance(result, L.Released):
            return result
        if isinstance(result, L.TokenMismatch):
            raise Conflict(
                "token_mismatch", f"fencing token {result.given} is not the current one", current=result.current
            )
        raise Conflict("not_holder", f"{command.client_id!r} does not hold {command.resource!r}")

    async def renew(
        self, resource: str, client_id: str, ttl: float | None, owner: str | None = None, secret: str | None = None
    ) -> L.Renewed:
        if ttl is None:
            await self.driver.read_barrier()
            held = self.table.holding(resource, client_id)
            if held is None or self.table.hold_owner(resource, client_id) != owner:
                raise not_holder(resource, client_id)
            ttl = held.ttl
        result = await self.propose(L.Renew(resource, client_id, ttl, owner, secret))
        if isinstance(result, L.Renewed):
            return result
        if isinstance(result, L.Refused):
            raise refusal(result)
        raise not_holder(resource, client_id)

    async def status(self, resource: str) -> dict[str, Any]:
        await self.driver.read_barrier()
        return self.table.status(resource)

    async def watch(self, resource: str, client_id: str, timeout: float) -> dict[str, Any]:
        """Answer when ``client_id``'s hold on ``resource`` ends, or after ``timeout``."""
        await self.driver.read_barrier()
        held = self.table.holding(resource, client_id)
        if held is None:
            return {"resource": resource, "client_id": client_id, "held": False, "reason": "not_holder"}
        key = (resource, client_id)
        ended: asyncio.Future[L.EndedHold] = asyncio.get_running_loop().create_future()
        self._watchers[key].append(ended)
        self.metrics.lock_watchers.inc()
        try:
            hold = await asyncio.wait_for(asyncio.shield(ended), timeout)
        except TimeoutError:
            return {"resource": resource, "client_id": client_id, "held": True, "fencing_token": held.token}
        finally:
            self.metrics.lock_watchers.dec()
            self._forget(self._watchers, key, ended)
        return {
            "resource": resource,
            "client_id": client_id,
            "held": False,
            "reason": hold.reason,
            "fencing_token": hold.token,
        }

    @staticmethod
    def _forget(table: dict[Key, list[Any]], key: Key, future: asyncio.Future[Any]) -> None:
        futures = table.get(key)
        if futures and future in futures:
            futures.remove(future)
            if not futures:
                del table[key]


def _cancel(command: L.Acquire) -> L.CancelWait:
    """Leave the wait list: only this request's own wait (same owner), never another token's."""
    return L.CancelWait(command.resource, command.client_id, command.owner, any_owner=False)


def as_granted(grant: L.Grant) -> L.Granted:
    return L.Granted(grant.resource, grant.client_id, grant.mode, grant.token, grant.ttl, grant.lease)


def not_holder(resource: str, client_id: str) -> Conflict:
    return Conflict("not_holder", f"{client_id!r} does not hold {resource!r}")


def refusal(result: L.Refused | Refused) -> RakitError:
    if result.code == "invalid":
        return InvalidRequest(result.detail or "invalid lock request")
    if result.code == "session_not_found":
        return SessionNotFound(result.detail or "no such session", acquired=False)
    if result.code == "too_many_waiters":
        return TooManyWaiters(result.detail or "too many waiters", acquired=False)
    if result.code == "quota":
        return Conflict("quota", result.detail or "the token's lock quota is used up", acquired=False)
    if result.code == "deadlock" and isinstance(result, L.Refused):
        return Conflict(
            "deadlock",
            "waiting would close a cycle in the wait-for graph: " + " -> ".join([*result.cycle, result.cycle[0]]),
            acquired=False,
            cycle=result.cycle,
        )
    return Conflict(
        "conflict", result.detail or "the lock is held in an incompatible mode, or others wait for it", acquired=False
    )
