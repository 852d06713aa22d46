"""Session, semaphore and election leases and waits, timed by the leader's monotonic clock.

The coordination machine never reads a clock; this keeper does, on the
leader only, and turns "time is up" into commands, as ``rakit.node.leases``
does for locks:

1. When this node becomes leader, every session, every semaphore hold and
   every leadership with a lease of its own restarts at its full ttl, and
   every waiter's timeout at its full wait (a new leader never ends
   anything early).  Holds attached to a session have no timer: their
   session's is theirs.
2. While leader, each applied result updates the timers: a grant, renewal or
   keepalive (re)starts a lease; an end drops it; a waiter sets a timeout
   (plus ``WAIT_GRACE``: the waiting request cancels itself on time; the
   keeper only cleans up after requests that are gone).
3. Expiries that fall due together are proposed as one ``ExpireBatch``
   (one Raft entry); a wait's end is a ``SemCancelWait`` or ``Withdraw``.
   A command that fails is retried after ``RETRY_AFTER`` while still leader.
4. On losing leadership every timer is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rakit.node.coordination_results import flatten
from rakit.node.deadlines import Deadlines
from rakit.raft.messages import Entry
from rakit.statemachines import elections as EL
from rakit.statemachines import semaphores as SM
from rakit.statemachines import sessions as SS
from rakit.statemachines.coordination import CoordinationMachine, ExpireBatch
from rakit.statemachines.holds import Ended, Grant, Left

if TYPE_CHECKING:
    from rakit.metrics import NodeMetrics
    from rakit.node.driver import RaftDriver
    from rakit.statemachines.registry import Registry

log = logging.getLogger(__name__)

WAIT_GRACE = 1.0
RETRY_AFTER = 0.5
IDLE_CHECK = 1.0
EXPIRIES = (SM.SemExpire, EL.ElectionExpire, SS.SessionExpire)
EXPIRY_KINDS: dict[type, str] = {SM.SemExpire: "semaphore", EL.ElectionExpire: "election", SS.SessionExpire: "session"}


class CoordinationKeeper:
    def __init__(
        self, driver: RaftDriver, machine: CoordinationMachine, machines: Registry, metrics: NodeMetrics | None = None
    ) -> None:
        self.driver = driver
        self.metrics = metrics
        self.machine = machine
        self.machines = machines
        self.timers = Deadlines()
        self._wake = asyncio.Event()
        self._leading = False
        self._inflight: set[asyncio.Task[Any]] = set()
        driver.add_role_listener(self.on_role)
        driver.add_apply_listener(self.on_applied)

    @staticmethod
    def now() -> float:
        return asyncio.get_running_loop().time()

    def remaining(self, session_id: str) -> float | None:
        """Seconds until the session's lease runs out, by this leader's clock (None: not timed here)."""
        due = self.timers.deadline(("session", session_id))
        return None if due is None else max(0.0, due - self.now())

    # -- listeners (called by the driver, in its loop) -----------------------------

    def on_role(self, role: str, leader_id: str | None) -> None:
        leading = role == "leader"
        if leading and not self._leading:
            self._restart_all()  # rule 1
        elif not leading:
            self.timers.clear()  # rule 4
        self._leading = leading
        self._wake.set()

    def on_applied(self, entry: Entry, result: Any) -> None:
        if not self._leading:
            return
        now = self.now()
        for inner in flatten(result):  # rule 2
            self._on_result(now, inner)
        self._wake.set()

    def _on_result(self, now: float, result: Any) -> None:
        match result:
            case SS.SessionGranted() | SS.SessionKept():
                self.timers.set(
                    ("session", result.session_id), now + result.ttl, SS.SessionExpire(result.session_id, result.lease)
                )
            case SS.SessionEnded():
                self.timers.cancel(("session", result.session_id))
            case SM.SemGranted() if result.session_id is None:
                self._hold(now, "semaphore", result.name, result.client_id, result.ttl, result.lease)
            case SM.SemRenewed() if result.session_id is None:
                self._hold(now, "semaphore", result.name, result.client_id, result.ttl, result.lease)
            case SM.SemWaiting():
                self._wait(now, "semaphore", result.name, result.client_id)
            case EL.Elected() if result.session_id is None:
                self._hold(now, "election", result.name, result.leader, result.ttl, result.lease)
            case EL.ElectionRenewed() if result.session_id is None:
                self._hold(now, "election", result.name, result.candidate_id, result.ttl, result.lease)
            case EL.CandidateWaiting():
                self._wait(now, "election", result.name, result.candidate_id)
        for grant in getattr(result, "grants", ()):
            if isinstance(grant, Grant):
                self.timers.cancel(("wait", grant.kind, grant.name, grant.holder))
                if grant.session_id is None:
                    self._hold(now, grant.kind, grant.name, grant.holder, grant.ttl, grant.lease)
        for ended in getattr(result, "removed", ()):
            if isinstance(ended, Ended):
                self.timers.cancel(("hold", ended.kind, ended.name, ended.holder))
        for left in getattr(result, "left", ()):
            if isinstance(left, Left):
                self.timers.cancel(("wait", left.kind, left.name, left.holder))
        if isinstance(result, SM.SemGranted | SM.SemCancelled):
            self.timers.cancel(("wait", "semaphore", result.name, result.client_id))
        if isinstance(result, EL.Elected):
            self.timers.cancel(("wait", "election", result.name, result.leader))
        if isinstance(result, EL.Withdrawn):
            self.timers.cancel(("wait", "election", result.name, result.candidate_id))

    def _restart_all(self) -> None:
        now = self.now()
        self.timers.clear()
        for ttl, expiry in self.machine.leases():
            self.timers.set(_hold_key(expiry), now + ttl, expiry)
        for kind, book in (("semaphore", self.machine.semaphores.book), ("election", self.machine.elections.book)):
            for name, holder, wait in book.waits():
                self.timers.set(("wait", kind, name, holder), now + wait + WAIT_GRACE, _give_up(kind, name, holder))

    # Each timer's payload is the command to propose when it fires.

    def _hold(self, now: float, kind: str, name: str, holder: str, ttl: float, lease: int) -> None:
        expiry = SM.SemExpire(name, holder, lease) if kind == "semaphore" else EL.ElectionExpire(name, holder, lease)
        self.timers.set(("hold", kind, name, holder), now + ttl, expiry)

    def _wait(self, now: float, kind: str, name: str, holder: str) -> None:
        book = self.machine.semaphores.book if kind == "semaphore" else self.machine.elections.book
        record = book.get(name)
        waiter = record.waiter_of(holder) if record is not None else None
        if waiter is not None:
            self.timers.set(("wait", kind, name, holder), now + waiter.wait + WAIT_GRACE, _give_up(kind, name, holder))

    # -- the timer loop (rule 3) -----------------------------------------------------------

    async def run(self) -> None:
        try:
            while True:
                self._wake.clear()
                next_at = self.timers.next_deadline()
                timeout = IDLE_CHECK if next_at is None else min(IDLE_CHECK, max(0.0, next_at - self.now()))
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                except TimeoutError:
                    pass
                if self._leading:
                    due = self.timers.pop_due(self.now())
                    expiries = [(name, cmd) for name, cmd in due if isinstance(cmd, EXPIRIES)]
                    if expiries:
                        self._count(cmd for _, cmd in expiries)
                        self._propose(expiries, ExpireBatch([cmd for _, cmd in expiries]))
                    for name, command in due:
                        if not isinstance(command, EXPIRIES):
                            self._propose([(name, command)], command)
        finally:
            for task in self._inflight:
                task.cancel()

    def _count(self, expiries: Iterator[Any]) -> None:
        if self.metrics is not None:
            for expiry in expiries:
                self.metrics.coordination_expiries.labels(kind=EXPIRY_KINDS[type(expiry)]).inc()

    def _propose(self, timers: list[tuple[Any, Any]], command: Any) -> None:
        async def propose() -> None:
            try:
                await self.driver.propose(self.machines.encode(command))
            except Exception as exc:
                for name, payload in timers:
                    if self._leading and name not in self.timers:
                        self.timers.set(name, self.now() + RETRY_AFTER, payload)
                log.debug("coordination timer command %s failed: %s", command, exc)

        task = asyncio.create_task(propose())
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)


def _hold_key(expiry: Any) -> tuple[str, ...]:
    if isinstance(expiry, SS.SessionExpire):
        return ("session", expiry.session_id)
    if isinstance(expiry, SM.SemExpire):
        return ("hold", "semaphore", expiry.name, expiry.client_id)
    return ("hold", "election", expiry.name, expiry.candidate_id)


def _give_up(kind: str, name: str, holder: str) -> Any:
    return SM.SemCancelWait(name, holder) if kind == "semaphore" else EL.Withdraw(name, holder)
