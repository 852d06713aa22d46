"""Sessions: one lease that many holds share, a deterministic state machine.

A session is a client's lease: keepalives restart it, and when it ends
(revoked, or expired by the leader's timer) everything attached to it ends
in the same command.  This table keeps the sessions alone; the composite
machine (``rakit.statemachines.coordination``) fills a ``SessionEnded`` with
the holds it ended.  Nothing here reads a clock.

Rules
-----
1.  ``SessionGrant`` carries the session id the proposer chose (so every
    replica agrees on it).  A new id makes a session with lease stamp = this
    index.  An id already granted to the same client is a retry: the lease
    restarts (``again``).  An id of another client: ``Refused("session_exists")``.
2.  ``SessionKeepalive`` restarts the lease at full ttl (stamp = this index);
    an unknown (or ended) session: ``SessionNotFound``.
3.  ``SessionRevoke`` ends the session (``SessionEnded``, reason
    "revoked"); unknown: ``SessionNotFound``.
4.  ``SessionExpire`` ends the session (reason "expired") only if it names
    the session's current lease stamp; otherwise ``Stale`` (kept alive
    since, or already ended).
5.  A malformed command (ttl <= 0, a negative or non-finite lock_delay) is
    ``Refused("invalid")``, nothing changed.
6.  Reads change nothing: ``get`` (the session or None), ``leases`` (what
    the leader times; a new leader restarts each at full ttl).
7.  ``snapshot``/``restore`` round-trip exactly (sessions in grant order).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

from rakit.statemachines.holds import Ended, Grant, Left, Refused, Stale, non_negative, positive


class SessionGrant(msgspec.Struct, tag="session.grant", frozen=True):
    session_id: str
    client_id: str
    ttl: float
    lock_delay: float = 0.0


class SessionKeepalive(msgspec.Struct, tag="session.keepalive", frozen=True):
    session_id: str


class SessionRevoke(msgspec.Struct, tag="session.revoke", frozen=True):
    session_id: str


class SessionExpire(msgspec.Struct, tag="session.expire", frozen=True):
    session_id: str
    lease: int


SessionCommand = SessionGrant | SessionKeepalive | SessionRevoke | SessionExpire


class Session(msgspec.Struct):
    session_id: str
    client_id: str
    ttl: float
    lease: int
    lock_delay: float = 0.0


class SessionGranted(msgspec.Struct, frozen=True):
    session_id: str
    client_id: str
    ttl: float
    lease: int
    again: bool = False


class SessionKept(msgspec.Struct, frozen=True):
    session_id: str
    ttl: float
    lease: int


class SessionNotFound(msgspec.Struct, frozen=True):
    session_id: str


class SessionEnded(msgspec.Struct, frozen=True):
    """A session's end and everything that ended with it (filled by the composite machine)."""

    session_id: str
    client_id: str
    reason: str  # "revoked" | "expired"
    lock_delay: float
    semaphores: list[str] = []  # names it held or waited on
    elections: list[str] = []
    grants: list[Grant] = []  # waiters granted because of the end
    removed: list[Ended] = []  # holds that ended
    left: list[Left] = []  # waits that ended
    attached: dict[str, Any] = {}  # attachment name ("locks", "keys") -> what its hook returned


SessionResult = SessionGranted | SessionKept | SessionNotFound | SessionEnded | Refused | Stale


class _Snapshot(msgspec.Struct):
    version: int
    sessions: list[Session]


SNAPSHOT_VERSION = 1


class SessionTable:
    name = "sessions"
    commands = (SessionGrant, SessionKeepalive, SessionRevoke, SessionExpire)

    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}

    def apply(self, index: int, command: SessionCommand) -> SessionResult:
        match command:
            case SessionGrant():
                return self._grant(index, command)
            case SessionKeepalive():
                s = self.sessions.get(command.session_id)
                if s is None:
                    return SessionNotFound(command.session_id)
                s.lease = index
                return SessionKept(s.session_id, s.ttl, s.lease)
            case SessionRevoke():
                s = self.sessions.pop(command.session_id, None)
                return SessionNotFound(command.session_id) if s is None else _ended(s, "revoked")
            case SessionExpire():
                s = self.sessions.get(command.session_id)
                if s is None or s.lease != command.lease:
                    return Stale(command.session_id)
                del self.sessions[s.session_id]
                return _ended(s, "expired")
        raise TypeError(f"not a session command: {command!r}")

    def _grant(self, index: int, cmd: SessionGrant) -> SessionResult:
        if not positive(cmd.ttl) or not non_negative(cmd.lock_delay):
            return Refused("invalid", "ttl must be > 0 and lock_delay >= 0")
        s = self.sessions.get(cmd.session_id)
        if s is not None:
            if s.client_id != cmd.client_id:
                return Refused("session_exists", f"session {cmd.session_id!r} belongs to another client")
            s.lease = index
            return SessionGranted(s.session_id, s.client_id, s.ttl, s.lease, again=True)
        s = Session(cmd.session_id, cmd.client_id, float(cmd.ttl), index, float(cmd.lock_delay))
        self.sessions[s.session_id] = s
        return SessionGranted(s.session_id, s.client_id, s.ttl, s.lease)

    # --- reads (rule 6) ---

    def get(self, session_id: str) -> Session | None:
        return self.sessions.get(session_id)

    def leases(self) -> Iterator[tuple[str, float, int]]:
        """(session_id, ttl, lease) of every session: the leases to time."""
        for s in self.sessions.values():
            yield s.session_id, s.ttl, s.lease

    # --- snapshot (rule 7) ---

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(_Snapshot(SNAPSHOT_VERSION, list(self.sessions.values())))

    def restore(self, data: bytes) -> None:
        self.sessions = {}
        if not data:
            return
        state = msgspec.msgpack.decode(data, type=_Snapshot)
        if state.version != SNAPSHOT_VERSION:
            raise ValueError(f"session snapshot version {state.version} (this node reads {SNAPSHOT_VERSION})")
        self.sessions = {s.session_id: s for s in state.sessions}


def _ended(s: Session, reason: str) -> SessionEnded:
    return SessionEnded(s.session_id, s.client_id, reason, s.lock_delay)
