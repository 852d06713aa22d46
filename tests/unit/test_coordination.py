"""The coordination machine (statemachines/coordination.py): one test per rule of its docstring."""

from __future__ import annotations

from typing import Any

from rakit.statemachines.coordination import (
    BatchResults,
    CoordinationMachine,
    ExpireBatch,
    SessionLockAcquire,
)
from rakit.statemachines.elections import Campaign, Elected, ElectionExpire, Resign
from rakit.statemachines.holds import Ended, Grant, Left, Refused, Stale
from rakit.statemachines.locks import Acquire, Granted, LockTable, SessionLocksEnded
from rakit.statemachines.registry import Registry
from rakit.statemachines.semaphores import SemAcquire, SemExpire, SemGranted, SemRelease
from rakit.statemachines.sessions import (
    SessionEnded,
    SessionExpire,
    SessionGrant,
    SessionGranted,
    SessionKeepalive,
    SessionRevoke,
)

X = "exclusive"


class Log:
    def __init__(self) -> None:
        self.locks = LockTable()
        self.machine = CoordinationMachine([self.locks])
        self.index = 0

    def __call__(self, command: Any) -> Any:
        self.index += 1
        return self.machine.apply(self.index, command)


def test_rule_1_each_table_applies_its_own_commands_through_the_registry() -> None:
    log = Log()
    registry = Registry([log.locks, log.machine])
    assert registry.apply(1, registry.encode(SessionGrant("s1", "c", 10))) == SessionGranted("s1", "c", 10.0, 1)
    sem = registry.apply(2, registry.encode(SemAcquire("s", "c", 2, 1, 10, 0)))
    assert sem == SemGranted("s", "c", 1, 2, 1, 2, 10.0, 2)
    assert isinstance(registry.apply(3, registry.encode(Campaign("e", "c", b"1", 10, 0))), Elected)
    assert isinstance(registry.apply(4, registry.encode(Acquire("r", "c", X, 10, 0))), Granted)
    twin = Registry([LockTable(), CoordinationMachine()])
    twin.restore(registry.snapshot())
    assert twin.state() == registry.state()


def test_rule_2_session_attached_acquires_need_the_live_session_of_their_client() -> None:
    log = Log()
    assert log(SemAcquire("s", "c", 2, 1, 10, 0, session_id="s1")).code == "session_not_found"
    log(SessionGrant("s1", "c", 7))  # 2
    assert log(Campaign("e", "other", b"1", 10, 0, session_id="s1")).code == "invalid"
    granted = log(SemAcquire("s", "c", 2, 1, 30, 0, session_id="s1"))  # 4
    assert granted == SemGranted("s", "c", 1, 2, 1, 4, 7.0, 4, session_id="s1")  # the session's ttl
    assert log(SemExpire("s", "c", 4)) == Stale("s", "c")
    assert log(SessionLockAcquire(Acquire("r", "c", X, 30, 0, session_id="s1"))) == Granted(
        "r", "c", X, 6, 7.0, 6, session_id="s1"
    )
    assert log(SessionLockAcquire(Acquire("r", "c", X, 30, 0, session_id="gone"))).code == "session_not_found"
    assert [cmd for _, cmd in log.machine.leases()] == [SessionExpire("s1", 2)]
    assert CoordinationMachine().apply(9, SessionLockAcquire(Acquire("r", "c", X, 1, 0, session_id="s1"))) == Refused(
        "invalid", "a session lock needs the lock table and a session_id"
    )


def test_rule_3_a_session_end_ends_everything_attached_in_one_command() -> None:
    log = Log()
    log(SessionGrant("s1", "c", 10, lock_delay=0))  # 1
    log(SemAcquire("s", "c", 2, 2, 10, 0, session_id="s1"))  # 2
    log(SemAcquire("s", "d", 2, 1, 10, 5))  # 3: waits for c's permits
    log(SemAcquire("t", "e", 1, 1, 10, 0))  # 4
    log(SemAcquire("t", "c", 1, 1, 10, 5, session_id="s1"))  # 5: c waits in its session
    log(Campaign("e", "c", b"1", 10, 0, session_id="s1"))  # 6: c leads
    log(Campaign("e", "f", b"2", 10, 5))  # 7
    log(SessionLockAcquire(Acquire("r", "c", X, 10, 0, session_id="s1")))  # 8
    log.index += 1
    log.locks.apply(log.index, Acquire("r", "g", X, 10, 5))  # 9: the lock table's own command, g waits
    view = log.machine.session_view("s1")
    assert view is not None and (view["semaphores"], view["elections"], view["locks"]) == (["s", "t"], ["e"], ["r"])
    ended = log(SessionRevoke("s1"))  # 10
    assert isinstance(ended, SessionEnded)
    assert (ended.semaphores, ended.elections) == (["s", "t"], ["e"])
    assert ended.grants == [Grant("semaphore", "s", "d", 1, 10, 10.0, 10), Grant("election", "e", "f", 1, 10, 10.0, 10)]
    assert [e.holder for e in ended.removed] == ["c", "c"]
    assert ended.removed[0] == Ended("semaphore", "s", "c", 2, 2, 2, "session_ended", "s1")
    assert ended.left == [Left("semaphore", "t", "c", 1)]
    locks = ended.attached["locks"]
    assert isinstance(locks, SessionLocksEnded) and [g.client_id for g in locks.grants] == ["g"]
    assert log.machine.elections.observe("e")["leader"] == "f" and log.machine.session_view("s1") is None


def test_rule_4_expire_batch_applies_each_in_order() -> None:
    log = Log()
    log(SessionGrant("s1", "c", 10))  # 1
    log(SemAcquire("s", "a", 1, 1, 10, 0))  # 2
    log(Campaign("e", "b", b"1", 10, 0))  # 3
    log(SessionKeepalive("s1"))  # 4
    batch = log(ExpireBatch([SemExpire("s", "a", 2), ElectionExpire("e", "b", 99), SessionExpire("s1", 4)]))
    assert isinstance(batch, BatchResults)
    assert [type(r).__name__ for r in batch.results] == ["SemExpired", "Stale", "SessionEnded"]
    assert log.machine.semaphores.status("s")["holders"] == [] and log.machine.session_view("s1") is None


def test_rule_5_reads_change_nothing() -> None:
    log = Log()
    assert log.machine.session_view("s1") is None
    log(SessionGrant("s1", "c", 10, lock_delay=2))
    before = log.machine.snapshot()
    assert log.machine.session_view("s1") == {
        "session_id": "s1",
        "client_id": "c",
        "ttl": 10.0,
        "lease": 1,
        "lock_delay": 2.0,
        "semaphores": [],
        "elections": [],
        "locks": [],
    }
    assert log.machine.snapshot() == before


def test_rule_6_snapshot_round_trip() -> None:
    log = Log()
    log(SessionGrant("s1", "c", 10))
    log(SemAcquire("s", "c", 2, 1, 10, 0, session_id="s1"))
    log(Campaign("e", "c", b"1", 10, 0, session_id="s1"))
    log(Campaign("e", "d", b"2", 10, 5))
    data = log.machine.snapshot()
    twin = CoordinationMachine([LockTable()])
    twin.restore(data)
    assert twin.snapshot() == data
    assert twin.apply(9, SessionRevoke("s1")) == log.machine.apply(9, SessionRevoke("s1"))
    assert twin.apply(10, Resign("e", "d")) == log.machine.apply(10, Resign("e", "d"))
    assert twin.apply(11, SemRelease("s", "zz")) == log.machine.apply(11, SemRelease("s", "zz"))
    twin.restore(b"")
    assert twin.session_view("s1") is None
