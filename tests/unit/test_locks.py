"""The lock table (statemachines/locks.py): one test per rule of its docstring."""

from __future__ import annotations

from typing import Any

from rakit.statemachines.locks import (
    Acquire,
    Cancelled,
    CancelWait,
    DelayEnd,
    DelayEnded,
    EndedHold,
    Expire,
    Expired,
    Grant,
    Granted,
    LockTable,
    NotHolder,
    OptionsSet,
    Refused,
    Release,
    Released,
    Renew,
    Renewed,
    SetOptions,
    Stale,
    TokenMismatch,
    Waiting,
)
from rakit.statemachines.registry import Registry

X, S = "exclusive", "shared"


class Log:
    """A lock table fed commands at increasing indexes (index 1, 2, ...)."""

    def __init__(self) -> None:
        self.table = LockTable()
        self.index = 0

    def __call__(self, command: Any) -> Any:
        self.index += 1
        return self.table.apply(self.index, command)

    def acquire(self, client: str, mode: str = X, *, r: str = "r", ttl: float = 10, wait: float = 0, **kw: Any) -> Any:
        return self(Acquire(r, client, mode, ttl, wait, **kw))

    def status(self, r: str = "r") -> dict[str, Any]:
        return self.table.status(r)


def test_rule_1_modes() -> None:
    log = Log()
    assert isinstance(log.acquire("a", S), Granted)
    assert isinstance(log.acquire("b", S), Granted)
    assert log.acquire("c", X) == Refused("conflict")
    log(Release("r", "a"))
    log(Release("r", "b"))
    assert isinstance(log.acquire("c", X), Granted)
    assert log.acquire("a", S) == Refused("conflict")
    assert log.acquire("b", X) == Refused("conflict")
    assert log.status()["mode"] == X and log.status()["holders"] == ["c"]


def test_rule_2_fencing_token_is_the_log_index() -> None:
    log = Log()
    assert log.acquire("a", X).token == 1
    assert isinstance(log.acquire("b", S, wait=5), Waiting)  # 2
    assert isinstance(log.acquire("c", S, wait=5), Waiting)  # 3
    released = log(Release("r", "a"))  # 4: b and c granted together, by this command
    assert [(g.client_id, g.token) for g in released.grants] == [("b", 4), ("c", 4)]
    assert log.status()["fencing_token"] == 4
    assert log.acquire("d", S).token == 5  # joins the shared holders: a new, greater token
    for client in ("b", "c", "d"):
        log(Release("r", client))
    assert log.status() == {"resource": "r", "mode": None, "holders": [], "waiters": [], "fencing_token": 5}
    assert log.acquire("a", X).token == 9  # max_token survived the resource being free
    assert log.table.status("never")["fencing_token"] is None


def test_rule_3_granted_at_once_only_if_compatible_nobody_waiting_not_delayed() -> None:
    log = Log()
    log.acquire("a", S)
    assert isinstance(log.acquire("x", X, wait=5), Waiting)
    # Compatible with the shared holder, but an exclusive request waits ahead: no overtaking.
    assert log.acquire("b", S) == Refused("conflict")
    assert log.acquire("b", S, wait=5) == Waiting("r", "b", S, 1)
    # In delay: nobody is granted, even on a free resource.
    log2 = Log()
    log2(SetOptions("q", 2.0))
    log2.acquire("a", r="q")
    log2(Expire("q", "a", lease=2))
    assert log2.table.status("q")["holders"] == []
    assert log2.acquire("b", r="q") == Refused("conflict")
    assert log2.acquire("b", S, r="q", wait=5) == Waiting("q", "b", S, 0)


def test_rule_4_reacquire_in_the_same_mode_is_idempotent() -> None:
    log = Log()
    first = log.acquire("a", X, ttl=10)
    again = log.acquire("a", X, ttl=30)
    assert again == Granted("r", "a", X, first.token, 30.0, lease=2, again=True, upgraded=False)
    # An exclusive holder asking for shared keeps exclusive, same token.
    assert log.acquire("a", S, ttl=5) == Granted("r", "a", X, first.token, 5.0, lease=3, again=True)
    assert log.table.holding("r", "a") == Grant("r", "a", X, first.token, 5.0, 3)
    # The lease stamp moved: an Expire timed from the old lease is stale.
    assert log(Expire("r", "a", lease=1)) == Stale("r", "a")
    shared = Log()
    shared.acquire("a", S)
    shared.acquire("b", S)
    assert shared.acquire("a", S, ttl=7) == Granted("r", "a", S, 1, 7.0, 3, again=True)


def test_rule_5_upgrade() -> None:
    log = Log()
    log.acquire("a", S)
    assert log.acquire("a", X, ttl=20) == Granted("r", "a", X, 2, 20.0, 2, again=False, upgraded=True)
    # Not alone: waits as an upgrade waiter, ahead of ordinary waiters.
    log = Log()
    log.acquire("a", S)  # 1
    log.acquire("b", S)  # 2
    log.acquire("c", S)  # 3
    assert log.acquire("x", X, wait=5) == Waiting("r", "x", X, 0)  # 4
    assert log.acquire("a", X) == Refused("conflict")  # 5: wait == 0
    assert log.acquire("a", X, wait=5) == Waiting("r", "a", X, 0)  # 6
    assert log.status()["waiters"] == [{"client_id": "a", "mode": X}, {"client_id": "x", "mode": X}]
    assert log(Release("r", "b")).grants == []  # 7: a not yet alone
    released = log(Release("r", "c"))  # 8: a alone -> upgraded
    assert released.grants == [Grant("r", "a", X, 8, 10.0, 8)]
    assert log.status()["holders"] == ["a"] and log.status()["mode"] == X
    assert log.status()["waiters"] == [{"client_id": "x", "mode": X}]
    # An upgrade waiter whose shared hold ends keeps waiting, as an ordinary exclusive waiter.
    log = Log()
    log.acquire("a", S)
    log.acquire("b", S)
    log.acquire("x", X, wait=5)
    log.acquire("a", X, wait=5)
    log(Release("r", "a"))
    assert log.status()["waiters"] == [{"client_id": "a", "mode": X}, {"client_id": "x", "mode": X}]
    assert [g.client_id for g in log(Release("r", "b")).grants] == ["a"]
    # The sole shared holder does not upgrade at once during a lock delay.
    log = Log()
    log(SetOptions("r", 1.0))  # 1
    log.acquire("a", S)  # 2
    log.acquire("b", S)  # 3
    log(Expire("r", "b", lease=3))  # 4: delay
    assert log.acquire("a", X, wait=5) == Waiting("r", "a", X, 0)
    assert log(DelayEnd("r")).grants == [Grant("r", "a", X, 6, 10.0, 6)]


def test_rule_6_waiting() -> None:
    log = Log()
    log.acquire("a", X)
    assert log.acquire("b", X) == Refused("conflict", cycle=[])
    assert log.status()["waiters"] == []
    assert log.acquire("b", X, wait=5) == Waiting("r", "b", X, 0)
    assert log.acquire("c", S, wait=5) == Waiting("r", "c", S, 1)
    # Asked again (a forwarding node retrying): same place, no duplicate, wait and ttl updated.
    assert log.acquire("b", X, wait=9, ttl=3) == Waiting("r", "b", X, 0)
    assert log.acquire("b", S, wait=9, ttl=3) == Waiting("r", "b", X, 0)  # the stored mode stays
    assert list(log.table.waiters()) == [("r", "b", 9.0), ("r", "c", 5.0)]
    assert log(Release("r", "a")).grants == [Grant("r", "b", X, 7, 3.0, 7)]


def test_rule_7_grant_on_free() -> None:
    log = Log()
    log.acquire("a", X)  # 1
    for client, mode in [("s1", S), ("s2", S), ("x1", X), ("s3", S), ("x2", X)]:
        log.acquire(client, mode, wait=5)  # 2..6
    released = log(Release("r", "a"))  # 7: s1 and s2 together, stop at x1
    assert [(g.client_id, g.mode, g.token) for g in released.grants] == [("s1", S, 7), ("s2", S, 7)]
    log(Release("r", "s1"))  # 8
    assert log(Release("r", "s2")).grants == [Grant("r", "x1", X, 9, 10.0, 9)]
    assert log(Release("r", "x1")).grants == [Grant("r", "s3", S, 10, 10.0, 10)]
    # Cancel of the waiter blocking the head of the queue grants the next ones.
    log = Log()
    log.acquire("a", S)  # 1
    log.acquire("x", X, wait=5)  # 2
    log.acquire("b", S, wait=5)  # 3
    log.acquire("c", S, wait=5)  # 4
    cancelled = log(CancelWait("r", "x"))  # 5
    assert cancelled.was_waiting and [g.client_id for g in cancelled.grants] == ["b", "c"]
    assert log.status()["holders"] == ["a", "b", "c"]


def test_rule_8_deadlock() -> None:
    log = Log()
    log.acquire("a", X, r="r1")  # 1
    log.acquire("b", X, r="r2")  # 2
    assert isinstance(log.acquire("a", X, r="r2", wait=5), Waiting)  # 3: a -> b
    before = log.table.snapshot()
    assert log.acquire("b", X, r="r1", wait=5) == Refused("deadlock", cycle=["b", "a"])
    assert log.table.snapshot() == before  # nothing changed: b keeps r2, a keeps waiting
    # Three clients; waiting for a waiter ahead with an incompatible mode counts too.
    log = Log()
    log.acquire("a", S, r="p")  # 1
    log.acquire("b", X, r="p", wait=5)  # 2: b -> a
    log.acquire("c", X, r="q")  # 3
    assert isinstance(log.acquire("c", S, r="p", wait=5), Waiting)  # 4: c -> a, c -> b (ahead, exclusive)
    assert log.acquire("b", X, r="q", wait=5) == Refused("deadlock", cycle=["b", "c"])  # c waits for b on p
    assert log.acquire("a", S, r="q", wait=5) == Refused("deadlock", cycle=["a", "c"])
    # Upgrades count: two shared holders both asking for exclusive.
    log = Log()
    log.acquire("a", S)
    log.acquire("b", S)
    assert isinstance(log.acquire("a", X, wait=5), Waiting)
    assert log.acquire("b", X, wait=5) == Refused("deadlock", cycle=["b", "a"])
    assert log.status()["holders"] == ["a", "b"]
    # A shared request behind only shared waiters does not wait for them.
    log = Log()
    log(SetOptions("r", 1.0))  # 1
    log.acquire("h")  # 2
    log(Expire("r", "h", lease=2))  # 3: delay, free
    log.acquire("a", S, wait=5)  # 4: a waits (for the delay only)
    log.acquire("b", X, r="z")  # 5
    log.acquire("b", S, wait=5)  # 6: b waits behind a, compatible: no edge b -> a
    assert isinstance(log.acquire("a", X, r="z", wait=5), Waiting)  # a -> b is fine


def test_rule_9_release_expiry_renew() -> None:
    log = Log()
    log.acquire("a", X)  # 1
    log.acquire("b", X, wait=5)  # 2
    assert log(Release("r", "b")) == NotHolder("r", "b")  # a waiter is not a holder
    assert log(Renew("r", "b", 5)) == NotHolder("r", "b")
    assert log(Release("r", "a", fencing_token=7)) == TokenMismatch("r", "a", 7, 1)
    assert log(Renew("r", "a", 20)) == Renewed("r", "a", 1, 20.0, 6)  # 6
    assert log(Expire("r", "a", lease=1)) == Stale("r", "a")  # renewed since
    expired = log(Expire("r", "a", lease=6))  # 8
    assert expired == Expired(
        "r", "a", 1, None, [Grant("r", "b", X, 8, 10.0, 8)], [EndedHold("r", "a", X, 1, 6, "expired")]
    )
    assert log(Expire("r", "a", lease=6)) == Stale("r", "a")
    assert log(Release("r", "b", fencing_token=8)).token == 8
    # Lock delay: an expiry stops grants until DelayEnd.
    log = Log()
    log.acquire("a", X, lock_delay=3.0)  # 1
    log.acquire("b", X, wait=5)  # 2
    expired = log(Expire("r", "a", lease=1))  # 3
    assert expired.grants == [] and expired.delay_since == 3
    assert list(log.table.delayed()) == [("r", 3.0)] and log.table.delay_since("r") == 3
    assert log(DelayEnd("r", since=2)) == Stale("r")  # another delay
    assert log(DelayEnd("r", since=4)) == Stale("r")
    assert log(DelayEnd("r", since=3)) == DelayEnded("r", [Grant("r", "b", X, 6, 10.0, 6)])
    assert log(DelayEnd("r")) == Stale("r")  # not in delay any more
    assert list(log.table.delayed()) == []


def test_rule_10_results_carry_grants_and_removed_holds() -> None:
    log = Log()
    log.acquire("a", X)  # 1
    log.acquire("b", S, wait=5)  # 2
    assert log(Release("r", "a")) == Released(
        "r", "a", 1, [Grant("r", "b", S, 3, 10.0, 3)], [EndedHold("r", "a", X, 1, 1, "released")]
    )
    # CancelWait after a grant: the service can still answer "granted".
    assert log(CancelWait("r", "b")) == Cancelled("r", "b", was_waiting=False, holding=True, token=3, mode=S)
    assert log(CancelWait("r", "z")) == Cancelled("r", "z", was_waiting=False, holding=False)
    log.acquire("c", X, wait=5)  # 6
    assert log(CancelWait("r", "c")) == Cancelled("r", "c", was_waiting=True)
    assert log.status()["waiters"] == []


def test_rule_11_read_api() -> None:
    log = Log()
    log.acquire("a", S, r="r", ttl=5)  # 1
    log.acquire("b", S, r="r", ttl=6)  # 2
    log.acquire("c", X, r="q", ttl=7)  # 3
    log.acquire("x", X, r="r", wait=4)  # 4
    log.acquire("a", X, r="r", wait=3)  # 5: upgrade waiter, listed first
    assert log.status("r") == {
        "resource": "r",
        "mode": S,
        "holders": ["a", "b"],
        "waiters": [{"client_id": "a", "mode": X}, {"client_id": "x", "mode": X}],
        "fencing_token": 2,
    }
    assert log.status("none") == {"resource": "none", "mode": None, "holders": [], "waiters": [], "fencing_token": None}
    assert list(log.table.holds()) == [("r", "a", 5.0, 1), ("r", "b", 6.0, 2), ("q", "c", 7.0, 3)]
    assert list(log.table.waiters()) == [("r", "a", 3.0), ("r", "x", 4.0)]
    assert log.table.holding("q", "c") == Grant("q", "c", X, 3, 7.0, 3)
    assert log.table.holding("q", "a") is None and log.table.holding("none", "a") is None
    assert list(log.table.delayed()) == []


def test_rule_12_bad_commands_are_refused_and_change_nothing() -> None:
    log = Log()
    log.acquire("a", X)
    before = log.table.snapshot()
    for bad in [
        Acquire("r", "b", "bogus", 10, 0),
        Acquire("r", "b", X, 0, 0),
        Acquire("r", "b", X, -1, 5),
        Acquire("r", "b", X, float("nan"), 5),
        Acquire("r", "b", X, float("inf"), 5),
        Acquire("r", "b", X, 10, -1),
        Acquire("new", "b", X, 10, 0, lock_delay=-1.0),
        Acquire("r", "a", X, 0, 0),
        Renew("r", "a", 0),
        SetOptions("r", -2.0),
    ]:
        result = log(bad)
        assert isinstance(result, Refused) and result.code == "invalid", bad
    assert log.table.snapshot() == before


def test_options_are_kept_and_acquire_can_set_them() -> None:
    log = Log()
    assert log(SetOptions("r", 2.5)) == OptionsSet("r", 2.5)
    assert log(SetOptions("other", 0)) == OptionsSet("other", 0.0)
    log.acquire("a", X, lock_delay=0.0)
    assert isinstance(log(Expire("r", "a", lease=3)), Expired)
    assert list(log.table.delayed()) == []  # lock_delay 0: no delay


def test_snapshot_round_trip_and_empty_restore() -> None:
    log = Log()
    log.acquire("a", S, r="r2")
    log.acquire("b", S, r="r2")
    log.acquire("a", X, r="r2", wait=5)
    log.acquire("c", X, r="r1", lock_delay=1.0)
    log.acquire("d", X, r="r1", wait=2)
    log(Expire("r1", "c", lease=4))
    data = log.table.snapshot()
    twin = LockTable()
    twin.restore(data)
    assert twin.snapshot() == data
    assert list(twin.holds()) == list(log.table.holds()) and list(twin.waiters()) == list(log.table.waiters())
    for index, command in enumerate([Acquire("r2", "b", X, 1, 5), DelayEnd("r1"), Release("r2", "b")], start=100):
        assert twin.apply(index, command) == log.table.apply(index, command)
    assert twin.snapshot() == log.table.snapshot()
    twin.restore(b"")
    assert twin.snapshot() == LockTable().snapshot() and list(twin.holds()) == []


def test_commands_travel_through_the_registry() -> None:
    table = LockTable()
    registry = Registry([table])
    granted = registry.apply(1, registry.encode(Acquire("r", "a", X, 10, 0)))
    assert granted == Granted("r", "a", X, 1, 10.0, 1)
    assert registry.apply(2, registry.encode(Release("r", "a", fencing_token=1))).token == 1
    tags = [c.__struct_config__.tag for c in LockTable.commands]
    assert tags == [
        "lock.acquire",
        "lock.release",
        "lock.renew",
        "lock.expire",
        "lock.cancel_wait",
        "lock.delay_end",
        "lock.options",
    ]


def test_would_wait_predicts_a_queued_acquire() -> None:
    """The leader's hint for lazy proposals: True exactly when an acquire applied now would queue."""
    log = Log()
    t = log.table
    assert not t.would_wait("r", "a", X)  # unknown resource: granted at once
    log.acquire("a", S)
    assert not t.would_wait("r", "b", S) and t.would_wait("r", "b", X)
    assert not t.would_wait("r", "a", X)  # the holder itself (upgrade or re-acquire): not lazy
    log.acquire("x", X, wait=5)
    assert t.would_wait("r", "b", S)  # an exclusive waiter is ahead: no overtaking
    assert not t.would_wait("r", "x", X)  # already waiting
    for client, mode in (("b", S), ("c", X)):  # the hint agrees with the table's answer
        predicted = t.would_wait("r", client, mode)
        assert isinstance(log.acquire(client, mode, wait=5), Waiting) == predicted
