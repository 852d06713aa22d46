"""Rule 18 of the lock table (statemachines/locks/table.py): session-attached locks."""

from __future__ import annotations

from rakit.statemachines.locks import (
    Acquire,
    DelayEnd,
    DelayEnded,
    EndedHold,
    Expire,
    Grant,
    Granted,
    LockTable,
    SessionLocksEnded,
    Stale,
)

X, S = "exclusive", "shared"


def test_rule_18_session_locks_have_no_lease_and_end_with_the_session() -> None:
    table = LockTable()
    assert table.apply(1, Acquire("r1", "c", X, 10, 0, session_id="s1")) == Granted(
        "r1", "c", X, 1, 10.0, 1, session_id="s1"
    )
    table.apply(2, Acquire("r1", "d", X, 10, 5))  # d waits
    table.apply(3, Acquire("r2", "e", X, 10, 0))
    table.apply(4, Acquire("r2", "c", X, 10, 5, session_id="s1"))  # c waits in its session
    table.apply(5, Acquire("r3", "c", S, 10, 0))  # not in the session
    assert list(table.holds()) == [("r2", "e", 10.0, 3), ("r3", "c", 10.0, 5)]
    assert table.apply(6, Expire("r1", "c", 1)) == Stale("r1", "c")
    assert table.apply(7, Acquire("r1", "c", X, 10, 0)).code == "conflict"  # same client, no session
    assert table.attached("s1") == ["r1", "r2"]
    ended = table.end_session(8, "s1", 0.0)
    assert ended == SessionLocksEnded(
        "s1",
        [EndedHold("r1", "c", X, 1, 1, "session_ended")],
        ["r2"],
        [Grant("r1", "d", X, 8, 10.0, 8)],
        [],
    )
    assert table.attached("s1") == [] and table.status("r3")["holders"] == ["c"]


def test_rule_18_lock_delay_of_the_session_or_the_resource() -> None:
    table = LockTable()
    table.apply(1, Acquire("r1", "c", X, 10, 0, session_id="s1"))
    table.apply(2, Acquire("r1", "d", X, 10, 5))
    table.apply(3, Acquire("r2", "c", X, 10, 0, lock_delay=1.0, session_id="s1"))
    ended = table.end_session(4, "s1", 3.0)
    assert ended.grants == [] and ended.delayed == [("r1", 4, 3.0), ("r2", 4, 3.0)]
    assert sorted(table.delayed()) == [("r1", 3.0), ("r2", 3.0)]
    assert table.apply(5, DelayEnd("r1", 4)) == DelayEnded("r1", [Grant("r1", "d", X, 5, 10.0, 5)])
    assert list(table.delayed()) == [("r2", 3.0)]
    table.apply(6, DelayEnd("r2", 4))
    table.apply(7, Acquire("r2", "e", X, 10, 0))
    table.apply(8, Expire("r2", "e", 7))
    assert list(table.delayed()) == [("r2", 1.0)]  # an ordinary expiry: the resource's own delay


def test_rule_18_snapshot_keeps_sessions() -> None:
    table = LockTable()
    table.apply(1, Acquire("r1", "c", X, 10, 0, session_id="s1"))
    table.apply(2, Acquire("r1", "d", X, 10, 5, session_id="s2"))
    twin = LockTable()
    twin.restore(table.snapshot())
    assert twin.snapshot() == table.snapshot() and twin.attached("s2") == ["r1"]
    assert twin.end_session(3, "s1", 0) == table.end_session(3, "s1", 0)
