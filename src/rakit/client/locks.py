"""``rakit.Lock``: the blocking client's lock handle (``client.lock(...)``), also usable where code
expects a ``threading.Lock``.

>>> with client.lock("orders", ttl=10, timeout=5) as lease:
...     db.save(order, fencing_token=lease.fencing_token)
>>> guard = client.lock("orders", ttl=10)           # as a threading.Lock:
>>> if guard.acquire(timeout=5): ...; guard.release()
>>> guard.acquire(blocking=False)                   # one try: True or False
>>> with client.session() as s, client.lock("orders", session=s): ...  # lives as long as the session

``acquire()`` without arguments keeps its first meaning: wait up to the
lock's own ``timeout`` (None: without end), return the lease, raise
``LockConflict``/``LockTimeout``/``Deadlock`` if not granted.  With
``blocking``/``timeout`` it is ``threading.Lock.acquire``: True or False
(a deadlock still raises ``Deadlock``: the stdlib would hang).  A wait
longer than the API's 300 s is a loop of bounded long-polls.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, overload

from rakit.client import calls
from rakit.client.calls import LockMode
from rakit.client.errors import LockLost, LockTimeout, NotHolder, RakitError
from rakit.client.keepers import acquire_within

if TYPE_CHECKING:
    from rakit.client.sessions import Session
    from rakit.client.sync import Client

__all__ = ["Lock", "stdlib_wait"]

log = logging.getLogger(__name__)


def stdlib_wait(where: str, blocking: bool, timeout: float | None) -> float | None:
    """``threading.Lock.acquire``'s (blocking, timeout) as a wait in seconds (None: without end)."""
    if not blocking:
        if timeout is not None and timeout != -1:
            raise ValueError(f"{where}: a timeout cannot be given to a non-blocking acquire")
        return 0.0
    return None if timeout is None or timeout < 0 else timeout


class Lock:
    """A lock and, once acquired, its lease (``fencing_token``, ``lost``)."""

    def __init__(
        self,
        client: Client,
        resource: str,
        client_id: str,
        mode: LockMode,
        ttl: float,
        timeout: float | None,
        lock_delay: float | None,
        renew: bool,
        session: Session | None = None,
    ) -> None:
        self.client = client
        self.resource = resource
        self.session = session
        self.client_id = session.client_id if session is not None else client_id
        self.mode = mode
        self.ttl = ttl
        self.timeout = timeout
        self.lock_delay = lock_delay
        self.renew_in_background = renew and session is None  # a session's keepalive keeps it
        self.fencing_token: int | None = None
        self.secret = calls.new_lock_secret()  # never shown by a read: a client id alone cannot release this
        self.lost = threading.Event()
        self.held = False
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._expires_at = 0.0

    @overload
    def acquire(self) -> Lock: ...
    @overload
    def acquire(self, blocking: bool, timeout: float | None = -1) -> bool: ...
    @overload
    def acquire(self, *, timeout: float | None) -> bool: ...

    def acquire(self, blocking: bool | None = None, timeout: float | None = -1) -> Lock | bool:
        """Take the lock.  No arguments: wait up to the lock's ``timeout`` and return the lease, or raise
        ``LockConflict``/``LockTimeout``/``Deadlock``.  ``blocking``/``timeout`` as ``threading.Lock``:
        True if taken, False if not within ``timeout`` (-1: no end; ``blocking=False``: one try).

        >>> lease = client.lock("orders", ttl=10).acquire()
        >>> if client.lock("orders").acquire(timeout=5): ...
        """
        if blocking is None and timeout == -1:
            if self.timeout is not None and self.timeout <= 300:
                self._grant(self.timeout)  # one request, as always: its refusal is raised
            elif not acquire_within(self._grant, True, self.timeout):
                raise LockTimeout(f"the lock on {self.resource!r} was not granted in time")
            return self
        wait = stdlib_wait("Lock.acquire()", blocking is not False, timeout)
        return acquire_within(self._grant, wait != 0.0, wait)

    def _grant(self, wait: float) -> None:
        started = time.monotonic()
        session_id = self.session.require() if self.session is not None else None
        grant = self.client._run(
            calls.acquire(
                self.resource, self.client_id, self.mode, self.ttl, wait, self.lock_delay, self.secret, session_id
            )
        )
        self.fencing_token = grant["fencing_token"]
        self.held = True
        self.lost.clear()
        if self.session is not None:
            self._expires_at = math.inf  # the session's keepalive keeps it; its loss sets ``lost``
            self.session.attach(self)
        else:
            self._expires_at = started + self.ttl  # the server's lease starts later than our request: safe
        if self.renew_in_background and self._renewer is None:
            self._stop.clear()
            self._renewer = threading.Thread(target=self._renew_loop, name=f"rakit-renew-{self.resource}", daemon=True)
            self._renewer.start()

    def locked(self) -> bool:
        """Whether this handle holds the lock (and has not lost it): not whether anyone does
        (``client.lock_status()`` tells that)."""
        return self.held and not self.lost.is_set()

    def renew(self) -> None:
        """Renew the lease now (the background thread does this every ``ttl / 3``).

        >>> lease.renew()
        """
        started = time.monotonic()
        self.client._run(calls.renew(self.resource, self.client_id, self.ttl, self.secret))
        self._expires_at = started + self.ttl

    def check(self) -> None:
        """Raise ``LockLost`` if the lock was lost (renewal refused or out of time).

        >>> lease.check()  # before a write the lock must protect
        """
        if self.lost.is_set() or (self.held and time.monotonic() >= self._expires_at):
            raise LockLost(f"lost the lock on {self.resource!r}", node=None)

    @property
    def is_lost(self) -> bool:
        """Whether the lock was lost (``lease.lost`` is the event itself).

        >>> if lease.is_lost: abort()
        """
        return self.lost.is_set()

    def release(self) -> None:
        """Release the lock (stops renewal); a lock already lost is not an error here.

        >>> lease.release()
        """
        self._stop_renewal()
        if not self.held:
            return
        self.held = False
        if self.session is not None:
            self.session.detach(self)
            if self.lost.is_set():
                return  # it ended with its session
        try:
            self.client._run(calls.release(self.resource, self.client_id, self.fencing_token, self.secret))
        except NotHolder:
            if not self.lost.is_set():
                raise

    def _stop_renewal(self) -> None:
        self._stop.set()
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join(timeout=self.client._runner.policy.timeout + 1)
        self._renewer = None

    def _renew_loop(self) -> None:
        interval = self.ttl / 3
        while not self._stop.wait(interval):
            try:
                self.renew()
            except NotHolder as exc:
                self._lose(exc)
                return
            except RakitError as exc:
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

    def _session_lost(self, cause: BaseException) -> None:
        self._lose(cause)

    def __enter__(self) -> Lock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        lost = self.lost.is_set()
        self.release()
        if lost and exc_type is None:
            raise LockLost(f"the lock on {self.resource!r} was lost while the block ran")
