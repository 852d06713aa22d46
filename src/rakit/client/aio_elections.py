"""Leader election for the asyncio client: the twin of ``rakit.client.elections``.

A leadership lost while its ``async with`` block runs *cancels the block*,
which then raises ``LeadershipLost``: the work that needs to be the only
leader stops at its next ``await``.

>>> async with client.campaign("scheduler", value={"host": "a"}, ttl=10) as leadership:
...     await scheduler_loop(fencing_token=leadership.term)
>>> async for change in client.observe("scheduler"):
...     print(change.leader, change.term)
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
import time
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from rakit.client import calls, coord_calls
from rakit.client.aio_keepers import OwnerGuard, TaskKeeper, acquire_within
from rakit.client.coord_calls import LeaderChange
from rakit.client.errors import LeadershipLost, LockConflict, LockTimeout, NotElected

if TYPE_CHECKING:
    from rakit.client.aio import AsyncClient
    from rakit.client.aio_sessions import AsyncSession

__all__ = ["AsyncLeadership", "leader_only", "observe"]

F = TypeVar("F", bound=Callable[..., Any])


class AsyncLeadership:
    """A candidacy and, once elected, the leadership (``term``, ``lost``, ``proclaim()``)."""

    def __init__(
        self,
        client: AsyncClient,
        name: str,
        candidate_id: str,
        value: Any,
        ttl: float,
        timeout: float | None,
        session: AsyncSession | None = None,
    ) -> None:
        self.client = client
        self.name = name
        self.session = session
        self.candidate_id = session.client_id if session is not None else candidate_id
        self.secret = calls.new_lock_secret()  # never shown by a read: a candidate id alone cannot resign this
        self.value = value
        self.ttl = ttl
        self.timeout = timeout
        self.term: int | None = None
        self.elected = False
        self.lost = asyncio.Event()
        self._guard = OwnerGuard()
        self._keeper = TaskKeeper(f"the leadership of {name!r}", ttl, self._renew, (NotElected,), self._lose)

    async def elect(self) -> AsyncLeadership:
        """Campaign until elected (``async with`` does it); ``LockTimeout`` / ``LockConflict`` if not."""
        if self.timeout is not None and self.timeout <= coord_calls.MAX_WAIT:
            await self._campaign(self.timeout)
        elif not await acquire_within(self._campaign, True, self.timeout):
            raise LockTimeout(f"not elected leader of {self.name!r} in time")
        return self

    async def _campaign(self, wait: float) -> None:
        started = time.monotonic()
        session_id = self.session.require() if self.session is not None else None
        call = coord_calls.campaign(self.name, self.candidate_id, self.value, self.ttl, wait, session_id, self.secret)
        answer = await self.client._run(call)
        self.term = answer["term"]
        self.value = answer.get("value", self.value)
        self.elected = True
        self.lost.clear()
        if self.session is not None:
            self._keeper.expires_at = math.inf
            self.session.attach(self)
        elif not self._keeper.running:
            self._keeper.start(started)

    async def _renew(self, budget: float) -> None:
        call = coord_calls.election_renew(self.name, self.candidate_id, self.ttl, self.secret)
        await self.client._runner.run(call, budget=budget)

    async def renew(self) -> None:
        """Restart the leadership's lease now (the background task does it every ``ttl / 3``)."""
        await self._keeper.renew_now()

    async def proclaim(self, value: Any) -> None:
        """Set the election's value, keeping the term (``NotElected`` if this term no longer leads)."""
        if self.term is None:
            raise ValueError("AsyncLeadership.proclaim(): not elected yet")
        await self.client._run(coord_calls.proclaim(self.name, self.candidate_id, self.term, value, self.secret))
        self.value = value

    async def resign(self) -> None:
        """Step down (stops renewal); the next candidate is elected at once.  Already lost is fine."""
        await self.end(resign=True)

    async def end(self, resign: bool) -> None:
        """Stop renewing; with ``resign``, step down now, else let the lease run out at its ttl."""
        await self._keeper.stop()
        if not self.elected:
            return
        self.elected = False
        if self.session is not None:
            self.session.detach(self)
        if not resign or self.lost.is_set():
            return
        try:
            await self.client._run(coord_calls.resign(self.name, self.candidate_id, self.secret))
        except NotElected:
            pass

    def check(self) -> None:
        """Raise ``LeadershipLost`` if the leadership was lost (renewal refused or out of time)."""
        if self.lost.is_set() or (self.elected and time.monotonic() >= self._keeper.expires_at):
            raise LeadershipLost(f"lost the leadership of {self.name!r}")

    @property
    def is_leader(self) -> bool:
        return self.elected and not self.lost.is_set()

    def _lose(self, cause: BaseException) -> None:
        self.lost.set()
        self._guard.cancel()

    def _session_lost(self, cause: BaseException) -> None:
        self._lose(cause)

    async def __aenter__(self) -> AsyncLeadership:
        await self.elect()
        self._guard.entered()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        cancelled_by_loss = self._guard.exited(exc_type)
        lost = self.lost.is_set()
        await self.end(resign=True)
        if cancelled_by_loss:
            raise LeadershipLost(f"the leadership of {self.name!r} was lost; the block was cancelled") from None
        if lost and exc_type is None:
            raise LeadershipLost(f"the leadership of {self.name!r} was lost while the block ran")

    def __repr__(self) -> str:
        return f"<AsyncLeadership {self.name!r} {self.candidate_id!r} term={self.term} lost={self.lost.is_set()}>"


async def observe(client: AsyncClient, name: str, after_term: int, poll: float) -> AsyncIterator[LeaderChange]:
    """Each change of the election after ``after_term``; never a term going back."""
    last = after_term
    while True:
        change, _changed = await client._run(coord_calls.observe(name, last, poll))
        if change.term is not None and change.term > last:
            last = change.term
            yield change


def leader_only(client: AsyncClient, name: str, ttl: float, value: Any, resign: bool) -> Callable[[F], F]:
    """The decorator of ``AsyncClient.leader_only`` (documented there): coroutine functions only."""

    def decorate(fn: F) -> F:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(
                f"AsyncClient.leader_only(): {fn.__qualname__} is not a coroutine function "
                "(decorate it with a blocking rakit.Client's leader_only)"
            )

        @functools.wraps(fn)
        async def run(*args: Any, **kwargs: Any) -> Any:
            leadership = AsyncLeadership(client, name, client.client_id, value, ttl, 0.0)
            try:
                await leadership.elect()
            except (LockConflict, LockTimeout):
                return None
            leadership._guard.entered()
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                cancelled_by_loss = leadership._guard.exited(type(exc))
                await leadership.end(resign)
                if cancelled_by_loss:
                    raise LeadershipLost(
                        f"the leadership of {name!r} was lost; {fn.__qualname__} was cancelled"
                    ) from None
                raise
            leadership._guard.exited(None)
            lost = leadership.lost.is_set()
            await leadership.end(resign)
            if lost:
                raise LeadershipLost(f"the leadership of {name!r} was lost while {fn.__qualname__} ran")
            return result

        return run  # type: ignore[return-value]

    return decorate
