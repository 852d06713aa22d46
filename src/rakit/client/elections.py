"""Leader election (API v2) for the blocking client: ``client.campaign()``, ``client.observe()`` and
``@client.leader_only``.

>>> with client.campaign("scheduler", value={"host": "a"}, ttl=10) as leadership:
...     while not leadership.lost.is_set():   # renewed in the background meanwhile
...         run_one_round(fencing_token=leadership.term)
>>> for change in client.observe("scheduler"):  # each new leader (or vacancy), terms only going up
...     print(change.leader, change.term)

The block runs only once this process leads: the campaign waits in the FIFO
list of candidates with long-polls of at most 300 s until elected (or
``timeout`` passes: ``LockTimeout``; ``timeout=0`` with another leader:
``LockConflict``).  The lease is renewed every ``ttl / 3``; if a renewal is
refused (``not_leader``) or cannot reach the cluster before the lease ends,
``leadership.lost`` is set and leaving the block raises ``LeadershipLost``.
Leaving the block resigns, and the next candidate is elected at once.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from rakit.client import calls, coord_calls
from rakit.client.coord_calls import LeaderChange
from rakit.client.errors import LeadershipLost, LockConflict, LockTimeout, NotElected
from rakit.client.keepers import ThreadKeeper, acquire_within

if TYPE_CHECKING:
    from rakit.client.sessions import Session
    from rakit.client.sync import Client

__all__ = ["LeaderChange", "Leadership", "leader_only", "observe"]

F = TypeVar("F", bound=Callable[..., Any])


class Leadership:
    """A candidacy and, once elected, the leadership (``term``, ``lost``, ``proclaim()``)."""

    def __init__(
        self,
        client: Client,
        name: str,
        candidate_id: str,
        value: Any,
        ttl: float,
        timeout: float | None,
        session: Session | None = None,
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
        self.lost = threading.Event()
        self._keeper = ThreadKeeper(f"the leadership of {name!r}", ttl, self._renew, (NotElected,), self._lose)

    def elect(self) -> Leadership:
        """Campaign until elected (``with`` does it); ``LockTimeout`` if not within ``timeout``,
        ``LockConflict`` if ``timeout`` is 0 and another candidate leads."""
        if self.timeout is not None and self.timeout <= coord_calls.MAX_WAIT:
            self._campaign(self.timeout)  # one request: its refusal is raised as answered
        elif not acquire_within(self._campaign, True, self.timeout):
            raise LockTimeout(f"not elected leader of {self.name!r} in time")
        return self

    def _campaign(self, wait: float) -> None:
        started = time.monotonic()
        session_id = self.session.require() if self.session is not None else None
        call = coord_calls.campaign(self.name, self.candidate_id, self.value, self.ttl, wait, session_id, self.secret)
        answer = self.client._run(call)
        self.term = answer["term"]
        self.value = answer.get("value", self.value)
        self.elected = True
        self.lost.clear()
        if self.session is not None:
            self._keeper.expires_at = math.inf
            self.session.attach(self)
        elif not self._keeper.running:
            self._keeper.start(started)

    def _renew(self, budget: float) -> None:
        self.client._runner.run(
            coord_calls.election_renew(self.name, self.candidate_id, self.ttl, self.secret), budget=budget
        )

    def renew(self) -> None:
        """Restart the leadership's lease now (the background thread does it every ``ttl / 3``)."""
        self._keeper.renew_now()

    def proclaim(self, value: Any) -> None:
        """Set the election's value, keeping the term (``NotElected`` if this term no longer leads).

        >>> leadership.proclaim({"host": "a", "since": now})
        """
        if self.term is None:
            raise ValueError("Leadership.proclaim(): not elected yet")
        self.client._run(coord_calls.proclaim(self.name, self.candidate_id, self.term, value, self.secret))
        self.value = value

    def resign(self) -> None:
        """Step down (stops renewal); the next candidate is elected at once.  Already lost is fine."""
        self.end(resign=True)

    def end(self, resign: bool) -> None:
        """Stop renewing; with ``resign``, step down now, else let the lease run out at its ttl."""
        self._keeper.stop(self.client._runner.policy.timeout + 1)
        if not self.elected:
            return
        self.elected = False
        if self.session is not None:
            self.session.detach(self)
        if not resign or self.lost.is_set():
            return
        try:
            self.client._run(coord_calls.resign(self.name, self.candidate_id, self.secret))
        except NotElected:
            pass  # its lease ran out meanwhile: nothing left to resign

    def check(self) -> None:
        """Raise ``LeadershipLost`` if the leadership was lost (renewal refused or out of time)."""
        if self.lost.is_set() or (self.elected and time.monotonic() >= self._keeper.expires_at):
            raise LeadershipLost(f"lost the leadership of {self.name!r}")

    @property
    def is_leader(self) -> bool:
        """Whether this candidate leads (elected and not lost)."""
        return self.elected and not self.lost.is_set()

    def _lose(self, cause: BaseException) -> None:
        self.lost.set()

    def _session_lost(self, cause: BaseException) -> None:
        self._lose(cause)

    def __enter__(self) -> Leadership:
        return self.elect()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        lost = self.lost.is_set()
        self.end(resign=True)
        if lost and exc_type is None:
            raise LeadershipLost(f"the leadership of {self.name!r} was lost while the block ran")

    def __repr__(self) -> str:
        return f"<Leadership {self.name!r} {self.candidate_id!r} term={self.term} lost={self.lost.is_set()}>"


def observe(client: Client, name: str, after_term: int, poll: float) -> Iterator[LeaderChange]:
    """Each change of the election after ``after_term``, by long-polls of ``poll`` s; never a term
    going back (an answer that is not newer, e.g. from a lagging retry, is skipped)."""
    last = after_term
    while True:
        change, _changed = client._run(coord_calls.observe(name, last, poll))
        if change.term is not None and change.term > last:
            last = change.term
            yield change


def leader_only(client: Client, name: str, ttl: float, value: Any, resign: bool) -> Callable[[F], F]:
    """The decorator of ``Client.leader_only`` (documented there)."""

    def decorate(fn: F) -> F:
        def start() -> Leadership | None:
            leadership = Leadership(client, name, client.client_id, value, ttl, 0.0)
            try:
                return leadership.elect()
            except (LockConflict, LockTimeout):
                return None  # another process leads: it runs the job

        def finish(leadership: Leadership, failed: bool) -> None:
            lost = leadership.lost.is_set()
            leadership.end(resign)
            if lost and not failed:
                raise LeadershipLost(f"the leadership of {name!r} was lost while {fn.__qualname__} ran")

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                leadership = await asyncio.to_thread(start)
                if leadership is None:
                    return None
                try:
                    result = await fn(*args, **kwargs)
                except BaseException:
                    await asyncio.to_thread(finish, leadership, True)
                    raise
                await asyncio.to_thread(finish, leadership, False)
                return result

            return run_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            leadership = start()
            if leadership is None:
                return None
            try:
                result = fn(*args, **kwargs)
            except BaseException:
                finish(leadership, True)
                raise
            finish(leadership, False)
            return result

        return run  # type: ignore[return-value]

    return decorate
