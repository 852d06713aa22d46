"""What the blocking client's sessions, semaphores and elections share: a lease kept alive by a thread,
and a wait cut into bounded long-polls.

``ThreadKeeper`` renews every ``interval`` (default ``ttl / 3``).  A refusal
of a kind in ``fatal`` (``session_not_found``, ``not_holder``,
``not_leader``) ends the lease at once; any other failure (no node
reachable, no leader) is retried more often until the lease would have run
out, and each attempt's retries over the nodes are held to what is left of
the lease (``SyncRunner.run(budget=...)``), so a loss is reported by the time
the lease ends, not a retry deadline later.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from rakit.client.coord_calls import next_wait
from rakit.client.errors import LockConflict, LockTimeout, RakitError

__all__ = ["ThreadKeeper", "acquire_within"]

log = logging.getLogger(__name__)

Renew = Callable[[float], object]  # renew(budget): one renewal, its retries held to ``budget`` seconds


class ThreadKeeper:
    """Keeps one lease alive from a daemon thread; calls ``on_lost(cause)`` once if it cannot."""

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
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ended = False

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._ended and not self._stop.is_set()

    def start(self, granted_at: float) -> None:
        """Count the lease from ``granted_at`` (when its grant was *asked*: the server's starts later).

        A grant that waited in line longer than ``interval`` (a campaign or an acquire answered when
        the previous holder left) started at an unknown moment of that wait: counted from the
        request, its lease may seem over already.  The first renewal then goes at once, with
        ``interval`` s to answer; its success restarts the count (a refusal is a loss, as always)."""
        self.expires_at = granted_at + self.ttl
        self._confirm = self.expires_at - time.monotonic() < self.ttl - self.interval
        self._stop.clear()
        self._ended = False
        self._thread = threading.Thread(target=self._loop, name=f"rakit-keep-{self.what}", daemon=True)
        self._thread.start()

    def renew_now(self, budget: float | None = None) -> None:
        """One renewal, its retries held to ``budget`` s (default: what is left of the lease)."""
        started = time.monotonic()
        self._renew(self.expires_at - started if budget is None else budget)
        self.expires_at = started + self.ttl

    def stop(self, join_timeout: float) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=join_timeout)

    def _loop(self) -> None:
        interval = 0.0 if self._confirm else self.interval
        while not self._stop.wait(interval):
            confirm, self._confirm = self._confirm, False
            try:
                self.renew_now(self.interval if confirm else None)
            except self._fatal as exc:
                self._lose(exc)
                return
            except RakitError as exc:
                left = self.expires_at - time.monotonic()
                if left <= 0:
                    self._lose(exc)
                    return
                log.warning("keeping %s alive failed (%s); retrying until its lease ends", self.what, exc)
                interval = min(self.interval / 2, max(0.01, left / 2))
                continue
            interval = self.interval

    def _lose(self, cause: BaseException) -> None:
        self._ended = True
        if not self._stop.is_set():
            log.warning("lost %s: %s", self.what, cause)
            self._on_lost(cause)


def acquire_within(ask: Callable[[float], object], blocking: bool, timeout: float | None) -> bool:
    """``threading.Lock.acquire`` over the API: ``ask(wait)`` sends one acquire asking the server to
    wait ``wait`` s (≤ 300); True once one is granted, False when ``conflict``/``timeout`` comes
    after the wait is over (``blocking=False``: one try; ``timeout`` None: no end).  Other errors
    (``Deadlock``, ``LimitMismatch``...) are raised."""
    deadline = None if not blocking or timeout is None else time.monotonic() + timeout
    while True:
        wait = next_wait(deadline, time.monotonic()) if blocking else 0.0
        try:
            ask(wait)
            return True
        except (LockConflict, LockTimeout):
            if not blocking or (deadline is not None and time.monotonic() >= deadline):
                return False
