"""Sessions (statemachines/sessions.py): one test per rule of its docstring."""

from __future__ import annotations

from typing import Any

from rakit.statemachines.holds import Refused, Stale
from rakit.statemachines.sessions import (
    Session,
    SessionEnded,
    SessionExpire,
    SessionGrant,
    SessionGranted,
    SessionKeepalive,
    SessionKept,
    SessionNotFound,
    SessionRevoke,
    SessionTable,
)


class Log:
    def __init__(self) -> None:
        self.table = SessionTable()
        self.index = 0

    def __call__(self, command: Any) -> Any:
        self.index += 1
        return self.table.apply(self.index, command)


def test_rule_1_grant_with_the_proposers_id_retry_and_clash() -> None:
    log = Log()
    assert log(SessionGrant("s1", "c", 10)) == SessionGranted("s1", "c", 10.0, 1)
    assert log(SessionGrant("s1", "c", 10)) == SessionGranted("s1", "c", 10.0, 2, again=True)
    assert log(SessionGrant("s1", "other", 10)).code == "session_exists"
    assert log.table.get("s1") == Session("s1", "c", 10.0, 2)


def test_rule_2_keepalive_restarts_the_lease() -> None:
    log = Log()
    log(SessionGrant("s1", "c", 10))
    assert log(SessionKeepalive("s1")) == SessionKept("s1", 10.0, 2)
    assert log(SessionKeepalive("nope")) == SessionNotFound("nope")


def test_rule_3_revoke_ends_the_session() -> None:
    log = Log()
    log(SessionGrant("s1", "c", 10, lock_delay=2))
    assert log(SessionRevoke("s1")) == SessionEnded("s1", "c", "revoked", 2.0)
    assert log(SessionRevoke("s1")) == SessionNotFound("s1")
    assert log(SessionKeepalive("s1")) == SessionNotFound("s1")


def test_rule_4_expire_only_the_current_lease() -> None:
    log = Log()
    log(SessionGrant("s1", "c", 10))
    log(SessionKeepalive("s1"))  # 2
    assert log(SessionExpire("s1", 1)) == Stale("s1")
    assert log(SessionExpire("s1", 2)) == SessionEnded("s1", "c", "expired", 0.0)
    assert log(SessionExpire("s1", 2)) == Stale("s1")


def test_rule_5_malformed_commands_are_invalid() -> None:
    log = Log()
    assert log(SessionGrant("s1", "c", 0)) == Refused("invalid", "ttl must be > 0 and lock_delay >= 0")
    assert log(SessionGrant("s1", "c", 5, lock_delay=-1)).code == "invalid"
    assert log.table.get("s1") is None


def test_rule_6_reads() -> None:
    log = Log()
    log(SessionGrant("s1", "c", 10))
    log(SessionGrant("s2", "d", 5))
    assert list(log.table.leases()) == [("s1", 10.0, 1), ("s2", 5.0, 2)]
    assert log.table.get("s3") is None


def test_rule_7_snapshot_round_trip() -> None:
    log = Log()
    log(SessionGrant("s2", "d", 5))
    log(SessionGrant("s1", "c", 10, lock_delay=1))
    data = log.table.snapshot()
    twin = SessionTable()
    twin.restore(data)
    assert twin.snapshot() == data and list(twin.leases()) == list(log.table.leases())
    twin.restore(b"")
    assert list(twin.leases()) == []
