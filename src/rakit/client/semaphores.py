"""``client.semaphore()``: a counting semaphore across processes (API v2 "Semaphores"), blocking client.

It stands where code expects a ``threading.Semaphore``: ``with``,
``acquire(blocking=True, timeout=None)`` -> bool, ``release()``.  One
handle is one holder (its ``client_id``) taking ``permits`` of the
semaphore's ``limit`` at once; acquiring again while holding changes
nothing.  While held, a thread renews the lease every ``ttl / 3`` (unless
the handle is attached to a session, whose keepalive keeps it); if that
fails ``lost`` is set and leaving the ``with`` block raises ``PermitsLost``.

>>> gpu = client.semaphore("gpu", limit=4, ttl=30)
>>> with gpu:
...     train(fencing_token=gpu.fencing_token)
>>> if gpu.acquire(timeout=10): ...; gpu.release()
>>> client.semaphore("gpu", 4).status()["available"]
"""

from __future__ import annotations

import math
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from rakit.client import calls, coord_calls
from rakit.client.errors import NotHolder, PermitsLost
from rakit.client.keepers import ThreadKeeper, acquire_within

if TYPE_CHECKING:
    from rakit.client.sessions import Session
    from rakit.client.sync import Client

__all__ = ["Semaphore"]


class Semaphore:
    """A semaphore handle and, once acquired, its permits' lease (``fencing_token``, ``lost``)."""

    def __init__(
        self,
        client: Client,
        name: str,
        limit: int,
        permits: int,
        ttl: float,
        client_id: str,
        session: Session | None = None,
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
        self.available: int | None = None  # free permits as the last grant saw them
        self.held = False
        self.lost = threading.Event()
        self._keeper = ThreadKeeper(f"semaphore {name!r}", ttl, self._renew, (NotHolder,), self._lose)

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take ``permits``: True once granted, False if not within ``timeout`` (None: no end;
        ``blocking=False``: one try), as ``threading.Semaphore.acquire``.  ``LimitMismatch`` if the
        semaphore is in use with another limit, ``AlreadyHolder`` if this holder holds other permits.

        >>> client.semaphore("gpu", 4).acquire(timeout=30)
        True
        """
        if not blocking and timeout is not None:
            raise ValueError("Semaphore.acquire(): a timeout cannot be given to a non-blocking acquire")
        return acquire_within(self._grant, blocking, timeout)

    def _grant(self, wait: float) -> None:
        started = time.monotonic()
        session_id = self.session.require() if self.session is not None else None
        call = coord_calls.semaphore_acquire(
            self.name, self.client_id, self.limit, self.permits, self.ttl, wait, session_id, self.secret
        )
        grant = self.client._run(call)
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

    def _renew(self, budget: float) -> None:
        self.client._runner.run(
            coord_calls.semaphore_renew(self.name, self.client_id, self.ttl, self.secret), budget=budget
        )

    def renew(self) -> None:
        """Restart the permits' lease now (the background thread does it every ``ttl / 3``)."""
        self._keeper.renew_now()

    def release(self) -> None:
        """Give the permits back (stops renewal); permits already lost are not an error here."""
        self._keeper.stop(self.client._runner.policy.timeout + 1)
        if not self.held:
            return
        self.held = False
        if self.session is not None:
            self.session.detach(self)
            if self.lost.is_set():
                return
        try:
            self.client._run(coord_calls.semaphore_release(self.name, self.client_id, self.secret))
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

    def status(self) -> dict[str, Any]:
        """``{"name", "limit", "available", "holders": [{"client_id", "permits", "fencing_token"}],
        "waiters": [{"client_id", "permits"}]}`` (a linearizable read)."""
        return self.client._run(coord_calls.semaphore_status(self.name))  # type: ignore[no-any-return]

    def _lose(self, cause: BaseException) -> None:
        self.lost.set()

    def _session_lost(self, cause: BaseException) -> None:
        self._lose(cause)

    def __enter__(self) -> Semaphore:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        lost = self.lost.is_set()
        self.release()
        if lost and exc_type is None:
            raise PermitsLost(f"the permits of semaphore {self.name!r} were lost while the block ran")

    def __repr__(self) -> str:
        return f"<Semaphore {self.name!r} {self.permits}/{self.limit} held={self.held} lost={self.lost.is_set()}>"
