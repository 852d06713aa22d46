"""``AsyncClient.session()``: the asyncio twin of ``rakit.client.sessions``.

A session lost while its ``async with`` block runs *cancels the block*, which
then raises ``SessionLost``; holds attached to it (``client.lock(...,
session=s)`` ...) are marked lost too, and cancel the blocks they guard.

>>> async with client.session(ttl=10) as s:
...     async with client.lock("orders", session=s):
...         await work()
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from rakit.client import coord_calls
from rakit.client.aio_keepers import OwnerGuard, TaskKeeper
from rakit.client.errors import SessionLost, SessionNotFound
from rakit.client.sessions import Attached

if TYPE_CHECKING:
    from rakit.client.aio import AsyncClient

__all__ = ["AsyncSession"]


class AsyncSession:
    """A session and, once granted, its keepalive task (``session_id``, ``lost``)."""

    def __init__(
        self,
        client: AsyncClient,
        client_id: str,
        ttl: float,
        lock_delay: float | None,
        keepalive_interval: float | None = None,
    ) -> None:
        self.client = client
        self.client_id = client_id
        self.ttl = ttl
        self.lock_delay = lock_delay
        self.session_id: str | None = None
        self.lost = asyncio.Event()
        self._attached: set[Attached] = set()
        self._guard = OwnerGuard()
        self._keeper = TaskKeeper("a session", ttl, self._keepalive, (SessionNotFound,), self._lose, keepalive_interval)

    async def grant(self) -> AsyncSession:
        """Open the session (``async with`` does it) and start its keepalive."""
        started = time.monotonic()
        answer = await self.client._run(coord_calls.session_grant(self.client_id, self.ttl, self.lock_delay))
        self.session_id = answer["session_id"]
        self.lost.clear()
        self._keeper.what = f"session {self.session_id!r}"
        self._keeper.start(started)
        return self

    async def _keepalive(self, budget: float) -> None:
        await self.client._runner.run(coord_calls.session_keepalive(self.require()), budget=budget)

    async def keepalive(self) -> None:
        """Restart the session's lease now (the background task does it every ``ttl / 3``)."""
        await self._keeper.renew_now()

    async def info(self) -> dict[str, Any]:
        """``{"session_id", "client_id", "ttl", "remaining", "locks", "semaphores", "elections", "keys"}``."""
        return await self.client._run(coord_calls.session_info(self.require()))  # type: ignore[no-any-return]

    async def revoke(self) -> None:
        """End the session and every hold attached to it; already gone is fine."""
        await self._keeper.stop()
        if self.session_id is None or self.lost.is_set():
            return
        try:
            await self.client._run(coord_calls.session_revoke(self.session_id))
        except SessionNotFound:
            pass
        self._end_attached(None)

    def check(self) -> None:
        """Raise ``SessionLost`` if the session ended (or its lease ran out unrenewed)."""
        if self.lost.is_set() or (self.session_id is not None and time.monotonic() >= self._keeper.expires_at):
            raise SessionLost(f"session {self.session_id!r} was lost")

    def require(self) -> str:
        """The session id, for a hold to attach to (``ValueError`` before ``grant``)."""
        if self.session_id is None:
            raise ValueError("the session is not granted yet: use it inside `async with client.session() as s:`")
        return self.session_id

    def attach(self, hold: Attached) -> None:
        self._attached.add(hold)

    def detach(self, hold: Attached) -> None:
        self._attached.discard(hold)

    def _lose(self, cause: BaseException) -> None:
        self._end_attached(cause)  # before ``lost``: who sees the session lost sees its holds lost
        self.lost.set()
        self._guard.cancel()

    def _end_attached(self, cause: BaseException | None) -> None:
        holds, self._attached = list(self._attached), set()
        for hold in holds:
            hold._session_lost(cause or SessionLost(f"session {self.session_id!r} was revoked"))

    async def __aenter__(self) -> AsyncSession:
        await self.grant()
        self._guard.entered()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        cancelled_by_loss = self._guard.exited(exc_type)
        lost = self.lost.is_set()
        await self.revoke()
        if cancelled_by_loss:
            raise SessionLost(f"session {self.session_id!r} was lost; the block was cancelled") from None
        if lost and exc_type is None:
            raise SessionLost(f"session {self.session_id!r} was lost while the block ran")

    def __repr__(self) -> str:
        return f"<AsyncSession {self.session_id!r} ttl={self.ttl} lost={self.lost.is_set()}>"
