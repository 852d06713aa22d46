"""``AsyncClient.semaphore()``: the asyncio twin of ``rakit.client.semaphores``.

It stands where code expects an ``asyncio.Semaphore`` (``async with``,
``await acquire()`` -> True, ``locked()``), except that ``release()`` is
awaited (it is a request).  Permits lost while the ``async with`` block
runs cancel the block, which raises ``PermitsLost``.

>>> async with client.semaphore("gpu", limit=4) as gpu:
...     await train(fencing_token=gpu.fencing_token)
"""

from __future__ import annotations

import asyncio
import math
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from rakit.client import calls, coord_calls
from rakit.client.aio_keepers import OwnerGuard, TaskKeeper, acquire_within
from rakit.client.errors import NotHolder, PermitsLost

if TYPE_CHECKING:
    from rakit.client.aio import AsyncClient
    from rakit.client.aio_sessions import AsyncSession

__all__ = ["AsyncSemaphore"]


class AsyncSemaphore:
    """A semaphore handle and, once acquired, its permits' lease (``fencing_token``, ``lost``)."""

    def __init__(
        self,
        client: AsyncClient,
        name: str,
        limit: int,
        permits: int,
        ttl: float,
        client_id: str,
        session: AsyncSession | None = None,
        renew: bool = True,
    ) -> None:
        self.client = client
        self.name = name
        self.limit = limit
        self.permits = permits
        self.ttl = ttl
        self.session = session
        self.client_id = session.client_id if session is not None else client_id
        self.secret = calls.new_lock_secret()  # never shown by a read: a client id alone cannot release this
        self.renew_in_background = renew and session is None
        self.fencing_token: int | None = None
        self.available: int | None = None
        self.held = False
        self.lost = asyncio.Event()
        self._guard = OwnerGuard()
        self._keeper = TaskKeeper(f"semaphore {name!r}", ttl, self._renew, (NotHolder,), self._lose)

    async def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take ``permits``: True once granted, False if not within ``timeout`` (None: no end).

        >>> await client.semaphore("gpu", 4).acquire(timeout=30)
        True
        """
        if not blocking and timeout is not None:
            raise ValueError("AsyncSemaphore.acquire(): a timeout cannot be given to a non-blocking acquire")
        return await acquire_within(self._grant, blocking, timeout)

    async def _grant(self, wait: float) -> None:
        started = time.monotonic()
        session_id = self.session.require() if self.session is not None else None
        call = coord_calls.semaphore_acquire(
            self.name, self.client_id, self.limit, self.permits, self.ttl, wait, session_id, self.secret
        )
        grant = await self.client._run(call)
        self.fencing_token = grant["fencing_token"]
        self.available = grant.get("available")
        self.held = True
        self.lost.clear()
        if self.session is not None:
            self._keeper.expires_at = math.inf
            self.session.attach(self)
        elif self.renew_in_background and not self._keeper.running:
            self._keeper.start(started)
        else:
            self._keeper.expires_at = started + self.ttl

    async def _renew(self, budget: float) -> None:
        await self.client._runner.run(
            coord_calls.semaphore_renew(self.name, self.client_id, self.ttl, self.secret), budget=budget
        )

    async def renew(self) -> None:
        """Restart the permits' lease now (the background task does it every ``ttl / 3``)."""
        await self._keeper.renew_now()

    async def release(self) -> None:
        """Give the permits back (stops renewal); permits already lost are not an error here."""
        await self._keeper.stop()
        if not self.held:
            return
        self.held = False
        if self.session is not None:
            self.session.detach(self)
            if self.lost.is_set():
                return
        try:
            await self.client._run(coord_calls.semaphore_release(self.name, self.client_id, self.secret))
        except NotHolder:
            if not self.lost.is_set():
                raise

    def locked(self) -> bool:
        """Whether this handle holds its permits (and has not lost them)."""
        return self.held and not self.lost.is_set()

    def check(self) -> None:
        """Raise ``PermitsLost`` if the permits were lost (renewal refused or out of time)."""
        if self.lost.is_set() or (self.held and time.monotonic() >= self._keeper.expires_at):
            raise PermitsLost(f"lost the permits of semaphore {self.name!r}")

    async def status(self) -> dict[str, Any]:
        """``{"name", "limit", "available", "holders", "waiters"}`` (a linearizable read)."""
        return await self.client._run(coord_calls.semaphore_status(self.name))  # type: ignore[no-any-return]

    def _lose(self, cause: BaseException) -> None:
        self.lost.set()
        self._guard.cancel()

    def _session_lost(self, cause: BaseException) -> None:
        self._lose(cause)

    async def __aenter__(self) -> AsyncSemaphore:
        await self.acquire()
        self._guard.entered()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        cancelled_by_loss = self._guard.exited(exc_type)
        lost = self.lost.is_set()
        await self.release()
        if cancelled_by_loss:
            raise PermitsLost(f"the permits of semaphore {self.name!r} were lost; the block was cancelled") from None
        if lost and exc_type is None:
            raise PermitsLost(f"the permits of semaphore {self.name!r} were lost while the block ran")

    def __repr__(self) -> str:
        return f"<AsyncSemaphore {self.name!r} {self.permits}/{self.limit} held={self.held}>"
