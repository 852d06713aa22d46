"""The asyncio twins of ``rakit.client.keepers``, and ``OwnerGuard``: how a loss cancels a block.

``TaskKeeper`` renews from a task, as ``ThreadKeeper`` from a thread, each
renewal held to what is left of the lease.  ``OwnerGuard`` remembers the
task that entered an ``async with`` block; ``cancel()`` cancels it, and
``exited()`` tells ``__aexit__`` whether the ``CancelledError`` leaving the
block was that cancellation (then the block raises the loss instead), the
way ``AsyncLock`` does it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from rakit.client.coord_calls import next_wait
from rakit.client.errors import LockConflict, LockTimeout, RakitError

__all__ = ["OwnerGuard", "TaskKeeper", "acquire_within"]

log = logging.getLogger(__name__)

Renew = Callable[[float], Awaitable[object]]


class TaskKeeper:
    """Keeps one lease alive from a task; calls ``on_lost(cause)`` once if it cannot."""

    def __init__(
        self,
        what: str,
        ttl: float,
        renew: Renew,
        fatal: tuple[type[RakitError], ...],
        on_lost: Callable[[BaseException], None],
        interval: float | None = None,
    ) -> None:
        self.what = what
        self.ttl = ttl
        self.interval = interval if interval is not None else ttl / 3
        self._renew = renew
        self._fatal = fatal
        self._on_lost = on_lost
        self.expires_at = 0.0
        self._confirm = False  # the grant waited in line: renew at once (``start``)
        self.task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def start(self, granted_at: float) -> None:
        """As ``ThreadKeeper.start``: a grant that waited longer than ``interval`` is renewed at once."""
        self.expires_at = granted_at + self.ttl
        self._confirm = self.expires_at - time.monotonic() < self.ttl - self.interval
        self.task = asyncio.create_task(self._loop(), name=f"rakit-keep-{self.what}")

    async def renew_now(self, budget: float | None = None) -> None:
        started = time.monotonic()
        budget = self.expires_at - started if budget is None else budget
        await asyncio.wait_for(self._renew(budget), timeout=max(0.01, budget))
        self.expires_at = started + self.ttl

    async def stop(self) -> None:
        task, self.task = self.task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        interval = 0.0 if self._confirm else self.interval
        while True:
            await asyncio.sleep(interval)
            confirm, self._confirm = self._confirm, False
            try:
                await self.renew_now(self.interval if confirm else None)
            except self._fatal as exc:
                self._lose(exc)
                return
            except (RakitError, TimeoutError) as exc:
                left = self.expires_at - time.monotonic()
                if left <= 0:
                    self._lose(exc)
                    return
                log.warning("keeping %s alive failed (%s); retrying until its lease ends", self.what, exc)
                interval = min(self.interval / 2, max(0.01, left / 2))
                continue
            interval = self.interval

    def _lose(self, cause: BaseException) -> None:
        log.warning("lost %s: %s", self.what, cause)
        self.task = None  # done: nothing to stop any more
        self._on_lost(cause)


class OwnerGuard:
    """The task running an ``async with`` block, to cancel when what the block needs is lost."""

    def __init__(self) -> None:
        self._owner: asyncio.Task[Any] | None = None
        self._cancelled = False

    def entered(self) -> None:
        self._owner = asyncio.current_task()
        self._cancelled = False

    def cancel(self) -> None:
        if self._owner is not None and not self._owner.done():
            self._cancelled = True
            self._owner.cancel()

    def exited(self, exc_type: type[BaseException] | None) -> bool:
        """Whether the block ended by this guard's cancellation (and nobody else's): then raise the loss."""
        owner, self._owner = self._owner, None
        if not self._cancelled or owner is None:
            return False
        self._cancelled = False
        return owner.uncancel() == 0 and exc_type is asyncio.CancelledError


async def acquire_within(ask: Callable[[float], Awaitable[object]], blocking: bool, timeout: float | None) -> bool:
    """``keepers.acquire_within`` awaited: True once granted, False if not within the wait."""
    deadline = None if not blocking or timeout is None else time.monotonic() + timeout
    while True:
        wait = next_wait(deadline, time.monotonic()) if blocking else 0.0
        try:
            await ask(wait)
            return True
        except (LockConflict, LockTimeout):
            if not blocking or (deadline is not None and time.monotonic() >= deadline):
                return False
