"""The coordination machine: sessions, semaphores and elections behind one name, ending a session whole.

One registered machine (``name = "coordination"``) owning a
``SessionTable``, a ``SemaphoreTable`` and an ``ElectionTable`` (each
usable alone, each with its own numbered rules), so that a session's end
reaches every permit and candidacy attached to it inside one ``apply``.
Other machines whose holds may be attached to a session (the lock table's
locks, the KV store's keys) join through ``SessionAttachment`` hooks given
at construction: the same ``apply`` ends theirs too, and their
session-attached commands travel wrapped in this machine's (so the check
that the session lives and the attaching happen in one entry).

Rules
-----
1.  Every command of the three tables is this machine's; it is applied by
    the table that owns it, with that table's result.
2.  Session-attached acquires: a ``SemAcquire`` or ``Campaign`` with a
    ``session_id`` applies only while that session exists (else
    ``Refused("session_not_found")``) and only for the session's client
    (else ``Refused("invalid")``).  Its own ttl is ignored: the hold is
    stamped with the session's ttl and has no lease of its own (it is not
    in ``leases``; an expiry naming it is ``Stale``).  The same holds for a
    lock: ``SessionLockAcquire`` wraps the lock table's ``Acquire`` (with its
    ``session_id``), is checked here and applied by the "locks" hook (none
    given: ``Refused("invalid")``); the result is the lock table's.  A KV
    key likewise: ``SessionKeyPut`` wraps a ``KvPut`` for the "keys" hook
    (its ``client_id``, if given, must be the session's).
3.  A session's end (``SessionRevoke``, or a current ``SessionExpire``)
    ends, in the same command: every semaphore hold and wait of the
    session, every leadership and candidacy of it (in name order), then each
    attachment hook in the order given (``end_session(index, session_id,
    lock_delay)``).  Waiters are granted in that command (tokens = its
    index).  The ``SessionEnded`` result lists the names, the grants, the
    ended holds and waits, and each hook's result under its name.
4.  ``ExpireBatch``: many expiries (semaphore, election, session) in one
    entry, applied in order, each as if alone; ``BatchResults`` in order.
5.  Reads change nothing: ``session_view`` (the session and the names
    attached to it, per kind and per hook), and the tables' own reads.
6.  ``snapshot``/``restore`` round-trip exactly (the hooks' machines
    snapshot themselves).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import msgspec

from rakit.statemachines.elections import (
    Campaign,
    ElectionCommand,
    ElectionExpire,
    ElectionTable,
)
from rakit.statemachines.holds import MAX_FREE_RECORDS, MAX_WAITERS, Refused
from rakit.statemachines.kv.commands import KvPut
from rakit.statemachines.locks.commands import Acquire
from rakit.statemachines.semaphores import SemAcquire, SemaphoreTable, SemCommand, SemExpire
from rakit.statemachines.sessions import SessionCommand, SessionEnded, SessionExpire, SessionTable


class SessionAttachment(Protocol):
    """What another machine gives so that its session-attached holds end with the session (rule 3)."""

    name: str  # the key in ``SessionEnded.attached`` and ``session_view``: "locks", "keys"

    def attached(self, session_id: str) -> list[str]:
        """The names (resources, keys) attached to ``session_id``, sorted."""
        ...

    def end_session(self, index: int, session_id: str, lock_delay: float) -> Any:
        """End everything attached to ``session_id`` at ``index``; return what the service needs to know."""
        ...

    def apply(self, index: int, command: Any) -> Any:
        """Apply a session-attached command this machine checked (rule 2)."""
        ...


class SessionLockAcquire(msgspec.Struct, tag="coord.lock_acquire", frozen=True):
    acquire: Acquire  # with its session_id set


class SessionKeyPut(msgspec.Struct, tag="coord.key_put", frozen=True):
    put: KvPut  # with its session_id set
    client_id: str | None = None  # if given, must be the session's client


class ExpireBatch(msgspec.Struct, tag="coord.expire", frozen=True):
    items: list[SemExpire | ElectionExpire | SessionExpire]


class BatchResults(msgspec.Struct, frozen=True):
    results: list[Any]


Command = SessionCommand | SemCommand | ElectionCommand | ExpireBatch | SessionLockAcquire | SessionKeyPut


class _Snapshot(msgspec.Struct):
    version: int
    sessions: bytes
    semaphores: bytes
    elections: bytes


SNAPSHOT_VERSION = 1


class CoordinationMachine:
    name = "coordination"
    commands: tuple[type[msgspec.Struct], ...] = (
        *SessionTable.commands,
        *SemaphoreTable.commands,
        *ElectionTable.commands,
        ExpireBatch,
        SessionLockAcquire,
        SessionKeyPut,
    )

    def __init__(
        self,
        attachments: Sequence[SessionAttachment] = (),
        max_waiters: int = MAX_WAITERS,
        max_free: int = MAX_FREE_RECORDS,
    ) -> None:
        self.sessions = SessionTable()
        self.semaphores = SemaphoreTable(max_waiters, max_free)
        self.elections = ElectionTable(max_waiters, max_free)
        self.attachments = tuple(attachments)
        self._session_types = frozenset(SessionTable.commands)
        self._semaphore_types = frozenset(SemaphoreTable.commands)
        self._election_types = frozenset(ElectionTable.commands)

    def apply(self, index: int, command: Command) -> Any:
        if isinstance(command, ExpireBatch):  # rule 4
            return BatchResults([self._apply(index, item) for item in command.items])
        if isinstance(command, SessionLockAcquire):
            return self._lock_acquire(index, command.acquire)
        if isinstance(command, SessionKeyPut):
            return self._key_put(index, command)
        return self._apply(index, command)

    def _key_put(self, index: int, command: SessionKeyPut) -> Any:
        """Rule 2, for a KV key."""
        hook = next((h for h in self.attachments if h.name == "keys"), None)
        put = command.put
        if hook is None or put.session_id is None:
            return Refused("invalid", "a session key needs the kv store and a session_id")
        session = self.sessions.get(put.session_id)
        if session is None:
            return Refused("session_not_found", f"no session {put.session_id!r}")
        if command.client_id is not None and command.client_id != session.client_id:
            return Refused("invalid", f"session {session.session_id!r} belongs to client {session.client_id!r}")
        return hook.apply(index, msgspec.structs.replace(put, ttl=None))

    def _lock_acquire(self, index: int, acquire: Acquire) -> Any:
        """Rule 2, for a lock."""
        hook = next((h for h in self.attachments if h.name == "locks"), None)
        if hook is None or acquire.session_id is None:
            return Refused("invalid", "a session lock needs the lock table and a session_id")
        session = self.sessions.get(acquire.session_id)
        if session is None:
            return Refused("session_not_found", f"no session {acquire.session_id!r}")
        if acquire.client_id != session.client_id:
            return Refused("invalid", f"session {session.session_id!r} belongs to client {session.client_id!r}")
        return hook.apply(index, msgspec.structs.replace(acquire, ttl=session.ttl))

    def _apply(self, index: int, command: Any) -> Any:
        kind = type(command)
        if kind in self._session_types:
            result = self.sessions.apply(index, command)
            return self._end_session(index, result) if isinstance(result, SessionEnded) else result
        if isinstance(command, SemAcquire | Campaign) and command.session_id is not None:
            attached = self._attach(command)
            if isinstance(attached, Refused):
                return attached
            command = attached
        if kind in self._semaphore_types:
            return self.semaphores.apply(index, command)
        if kind in self._election_types:
            return self.elections.apply(index, command)
        raise TypeError(f"not a coordination command: {command!r}")

    def _attach(self, command: SemAcquire | Campaign) -> SemAcquire | Campaign | Refused:
        """Rule 2."""
        assert command.session_id is not None
        session = self.sessions.get(command.session_id)
        if session is None:
            return Refused("session_not_found", f"no session {command.session_id!r}")
        holder = command.client_id if isinstance(command, SemAcquire) else command.candidate_id
        if holder != session.client_id:
            return Refused("invalid", f"session {session.session_id!r} belongs to client {session.client_id!r}")
        return msgspec.structs.replace(command, ttl=session.ttl)

    def _end_session(self, index: int, ended: SessionEnded) -> SessionEnded:
        """Rule 3."""
        sid = ended.session_id
        sem = self.semaphores.book.end_session(index, sid)
        elect = self.elections.book.end_session(index, sid)
        attached = {hook.name: hook.end_session(index, sid, ended.lock_delay) for hook in self.attachments}
        return msgspec.structs.replace(
            ended,
            semaphores=sem.names,
            elections=elect.names,
            grants=sem.grants + elect.grants,
            removed=sem.removed + elect.removed,
            left=sem.left + elect.left,
            attached=attached,
        )

    # --- reads (rule 5) ---

    def session_view(self, session_id: str) -> dict[str, Any] | None:
        """The session and what is attached to it; ``remaining`` is the leader's clock's business."""
        s = self.sessions.get(session_id)
        if s is None:
            return None
        view: dict[str, Any] = {
            "session_id": s.session_id,
            "client_id": s.client_id,
            "ttl": s.ttl,
            "lease": s.lease,
            "lock_delay": s.lock_delay,
            "semaphores": self.semaphores.book.attached(session_id),
            "elections": self.elections.book.attached(session_id),
        }
        for hook in self.attachments:
            view[hook.name] = hook.attached(session_id)
        return view

    def leases(self) -> Iterator[tuple[float, SessionExpire | SemExpire | ElectionExpire]]:
        """A new leader's timers: (ttl, the expiry to propose when it runs out) for every lease.

        Session-attached holds have none: their session's lease is theirs (rule 2).
        """
        for session_id, ttl, lease in self.sessions.leases():
            yield ttl, SessionExpire(session_id, lease)
        for name, holder, ttl, lease in self.semaphores.book.leases():
            yield ttl, SemExpire(name, holder, lease)
        for name, holder, ttl, lease in self.elections.book.leases():
            yield ttl, ElectionExpire(name, holder, lease)

    # --- snapshot (rule 6) ---

    def snapshot(self) -> bytes:
        state = _Snapshot(
            SNAPSHOT_VERSION, self.sessions.snapshot(), self.semaphores.snapshot(), self.elections.snapshot()
        )
        return msgspec.msgpack.encode(state)

    def restore(self, data: bytes) -> None:
        if not data:
            for part in (self.sessions, self.semaphores, self.elections):
                part.restore(b"")
            return
        state = msgspec.msgpack.decode(data, type=_Snapshot)
        if state.version != SNAPSHOT_VERSION:
            raise ValueError(f"coordination snapshot version {state.version} (this node reads {SNAPSHOT_VERSION})")
        self.sessions.restore(state.sessions)
        self.semaphores.restore(state.semaphores)
        self.elections.restore(state.elections)
