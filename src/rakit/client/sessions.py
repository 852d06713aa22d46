"""``client.session()``: one lease that many holds share (API v2 "Sessions"), for the blocking client.

>>> with client.session(ttl=10) as s:
...     with client.lock("orders", session=s), client.semaphore("gpu", 4, session=s):
...         work()  # one keepalive keeps both; if the session ends, both end with it
...     s.check()   # SessionLost if it ended meanwhile

Holds attached to a session send its ``session_id`` and do not renew on
their own.  When the session is lost (a keepalive answered
``session_not_found``, or none reached the cluster before the ttl ran out)
``s.lost`` is set and so is every attached hold's ``lost``.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from rakit.client import coord_calls
from rakit.client.errors import SessionLost, SessionNotFound
from rakit.client.keepers import ThreadKeeper

if TYPE_CHECKING:
    from rakit.client.sync import Client

__all__ = ["Session"]


class Attached(Protocol):
    """A hold living as long as a session: told when the session is lost."""

    def _session_lost(self, cause: BaseException) -> None: ...


class Session:
    """A session and, once granted, its keepalive (``session_id``, ``lost``)."""

    def __init__(
        self,
        client: Client,
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
        self.lost = threading.Event()
        self._attached: set[Attached] = set()
        self._attach_lock = threading.Lock()
        self._keeper = ThreadKeeper(
            "a session", ttl, self._keepalive, (SessionNotFound,), self._lose, keepalive_interval
        )

    def grant(self) -> Session:
        """Open the session (``with`` does it) and start its keepalive.

        >>> s = client.session(ttl=10).grant(); ...; s.revoke()
        """
        started = time.monotonic()
        answer = self.client._run(coord_calls.session_grant(self.client_id, self.ttl, self.lock_delay))
        self.session_id = answer["session_id"]
        self.lost.clear()
        self._keeper.what = f"session {self.session_id!r}"
        self._keeper.start(started)
        return self

    def _keepalive(self, budget: float) -> None:
        self.client._runner.run(coord_calls.session_keepalive(self.require()), budget=budget)

    def keepalive(self) -> None:
        """Restart the session's lease now (the background thread does it every ``ttl / 3``)."""
        self._keeper.renew_now()

    def info(self) -> dict[str, Any]:
        """``{"session_id", "client_id", "ttl", "remaining", "locks", "semaphores", "elections", "keys"}``.

        >>> client.session().grant().info()["remaining"]
        """
        return self.client._run(coord_calls.session_info(self.require()))  # type: ignore[no-any-return]

    def revoke(self) -> None:
        """End the session and every hold attached to it (in one Raft entry); already gone is fine."""
        self._keeper.stop(self.client._runner.policy.timeout + 1)
        if self.session_id is None or self.lost.is_set():
            return
        try:
            self.client._run(coord_calls.session_revoke(self.session_id))
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
            raise ValueError("the session is not granted yet: use it inside `with client.session() as s:`")
        return self.session_id

    def attach(self, hold: Attached) -> None:
        with self._attach_lock:
            self._attached.add(hold)

    def detach(self, hold: Attached) -> None:
        with self._attach_lock:
            self._attached.discard(hold)

    def _lose(self, cause: BaseException) -> None:
        self._end_attached(cause)  # before ``lost``: who sees the session lost sees its holds lost
        self.lost.set()

    def _end_attached(self, cause: BaseException | None) -> None:
        with self._attach_lock:
            holds, self._attached = list(self._attached), set()
        for hold in holds:
            hold._session_lost(cause or SessionLost(f"session {self.session_id!r} was revoked"))

    def __enter__(self) -> Session:
        return self.grant()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        lost = self.lost.is_set()
        self.revoke()
        if lost and exc_type is None:
            raise SessionLost(f"session {self.session_id!r} was lost while the block ran")

    def __repr__(self) -> str:
        return f"<Session {self.session_id!r} ttl={self.ttl} lost={self.lost.is_set()}>"
