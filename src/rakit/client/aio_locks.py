"""``rakit.AsyncLock``: the asyncio client's lock handle, also usable where code expects an
``asyncio.Lock`` (``async with``, ``await acquire()`` -> True, ``locked()``).

One difference from ``asyncio.Lock``: ``release()`` is awaited (it is a
request).  ``await acquire()`` without arguments keeps its first meaning
(wait up to the lock's ``timeout``, return the lease, raise on refusal); with
``blocking``/``timeout`` it answers True or False like ``threading.Lock``.
A lock lost while its ``async with`` block runs cancels the block, which
raises ``LockLost``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, overload

from rakit.client import calls
from rakit.client.aio_keepers import acquire_within
from rakit.client.calls import LockMode
from rakit.client.errors import LockLost, LockTimeout, NotHolder, RakitError
from rakit.client.locks import stdlib_wait

if TYPE_CHECKING:
    from rakit.client.aio import AsyncClient
    from rakit.client.aio_sessions import AsyncSession

__all__ = ["AsyncLock"]

log = logging.getLogger(__name__)


class AsyncLock:
    """A lock and, once acquired, its lease (``fencing_token``, ``lost``)."""

    def __init__(
        self,
        client: AsyncClient,
        resource: str,
        client_id: str,
        mode: LockMode,
        ttl: float,
        timeout: float | None,
        lock_delay: float | None,
        renew: bool,
        session: AsyncSession | None = None,
    ) -> None:
        self.client = client
        self.resource = resource
        self.session = session
        self.client_id = session.client_id if session is not None else client_id
        self.mode = mode
        self.ttl = ttl
        self.timeout = timeout
        self.lock_delay = lock_delay
        self.renew_in_background = renew and session is None
        self.fencing_token: int | None = None
        self.secret = calls.new_lock_secret()  # never shown by a read: a client id alone cannot release this
        self.lost = asyncio.Event()
        self.held = False
        self._renewer: asyncio.Task[None] | None = None
        self._owner: asyncio.Task[Any] | None = None
        self._cancelled_owner = False
        self._expires_at = 0.0

    @overload
    async def acquire(self) -> AsyncLock: ...
    @overload
    async def acquire(self, blocking: bool, timeout: float | None = -1) -> bool: ...
    @overload
    async def acquire(self, *, timeout: float | None) -> bool: ...

    async def acquire(self, blocking: bool | None = None, timeout: float | None = -1) -> AsyncLock | bool:
        """Take the lock.  No arguments: wait up to the lock's ``timeout`` and return the lease, or raise
        ``LockConflict``/``LockTimeout``/``Deadlock``.  ``blocking``/``timeout``: True or False.

        >>> lease = await client.lock("orders", ttl=10).acquire()
        >>> if await client.lock("orders").acquire(timeout=5): ...
        """
        if blocking is None and timeout == -1:
            if self.timeout is not None and self.timeout <= 300:
                await self._grant(self.timeout)
            elif not await acquire_within(self._grant, True, self.timeout):
                raise LockTimeout(f"the lock on {self.resource!r} was not granted in time")
            return self
        wait = stdlib_wait("AsyncLock.acquire()", blocking is not False, timeout)
        return await acquire_within(self._grant, wait != 0.0, wait)

    async def _grant(self, wait: float) -> None:
        started = time.monotonic()
        session_id = self.session.require() if self.session is not None else None
        grant = await self.client._run(
            calls.acquire(
                self.resource, self.client_id, self.mode, self.ttl, wait, self.lock_delay, self.secret, session_id
            )
        )
        self.fencing_token = grant["fencing_token"]
        self.held = True
        self.lost.clear()
        if self.session is not None:
            self._expires_at = math.inf
            self.session.attach(self)
        else:
            self._expires_at = started + self.ttl
        if self.renew_in_background and self._renewer is None:
            self._renewer = asyncio.create_task(self._renew_loop(), name=f"rakit-renew-{self.resource}")

    def locked(self) -> bool:
        """Whether this handle holds the lock (and has not lost it): not whether anyone does."""
        return self.held and not self.lost.is_set()

    async def renew(self) -> None:
        """Renew the lease now (the background task does this every ``ttl / 3``).

        >>> await lease.renew()
        """
        started = time.monotonic()
        await self.client._run(calls.renew(self.resource, self.client_id, self.ttl, self.secret))
        self._expires_at = started + self.ttl

    def check(self) -> None:
        """Raise ``LockLost`` if the lock was lost.

        >>> lease.check()  # before a write the lock must protect
        """
        if self.lost.is_set() or (self.held and time.monotonic() >= self._expires_at):
            raise LockLost(f"lost the lock on {self.resource!r}")

    @property
    def is_lost(self) -> bool:
        """Whether the lock was lost (``lease.lost`` is the event itself).

        >>> if lease.is_lost: abort()
        """
        return self.lost.is_set()

    async def release(self) -> None:
        """Release the lock (stops renewal); a lock already lost is not an error here.

        >>> await lease.release()
        """
        await self._stop_renewal()
        if not self.held:
            return
        self.held = False
        if self.session is not None:
            self.session.detach(self)
            if self.lost.is_set():
                return  # it ended with its session
        try:
            await self.client._run(calls.release(self.resource, self.client_id, self.fencing_token, self.secret))
        except NotHolder:
            if not self.lost.is_set():
                raise

    async def _stop_renewal(self) -> None:
        task, self._renewer = self._renewer, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _renew_loop(self) -> None:
        interval = self.ttl / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.wait_for(self.renew(), timeout=max(0.05, self._expires_at - time.monotonic()))
            except NotHolder as exc:
                self._lose(exc)
                return
            except (RakitError, TimeoutError) as exc:
                if time.monotonic() >= self._expires_at:
                    self._lose(exc)
                    return
                log.warning("renewing %r failed (%s); retrying until the lease ends", self.resource, exc)
                interval = min(self.ttl / 6, max(0.05, self._expires_at - time.monotonic()) / 2)
                continue
            interval = self.ttl / 3

    def _lose(self, cause: BaseException) -> None:
        log.warning("lost the lock on %r: %s", self.resource, cause)
        self.lost.set()
        if self._owner is not None and not self._owner.done():
            self._cancelled_owner = True
            self._owner.cancel()

    def _session_lost(self, cause: BaseException) -> None:
        self._lose(cause)

    async def __aenter__(self) -> AsyncLock:
        await self.acquire()
        self._owner = asyncio.current_task()
        self._cancelled_owner = False
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        owner, self._owner = self._owner, None
        lost = self.lost.is_set()
        await self.release()
        if self._cancelled_owner and owner is not None:
            self._cancelled_owner = False
            if owner.uncancel() == 0 and exc_type is asyncio.CancelledError:
                raise LockLost(f"the lock on {self.resource!r} was lost; the block was cancelled") from None
        if lost and exc_type is None:
            raise LockLost(f"the lock on {self.resource!r} was lost while the block ran")
