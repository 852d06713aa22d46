"""Counting semaphores (statemachines/semaphores.py): one test per rule of its docstring."""

from __future__ import annotations

from typing import Any

from rakit.statemachines.holds import Ended, Grant, Refused, Stale
from rakit.statemachines.semaphores import (
    SemAcquire,
    SemaphoreTable,
    SemCancelled,
    SemCancelWait,
    SemExpire,
    SemExpired,
    SemGranted,
    SemNotHolder,
    SemRelease,
    SemReleased,
    SemRenew,
    SemRenewed,
    SemWaiting,
)


class Log:
    def __init__(self) -> None:
        self.table = SemaphoreTable()
        self.index = 0

    def __call__(self, command: Any) -> Any:
        self.index += 1
        return self.table.apply(self.index, command)

    def acquire(self, client: str, permits: int = 1, *, limit: int = 3, ttl: float = 10, wait: float = 0) -> Any:
        return self(SemAcquire("s", client, limit, permits, ttl, wait))


def test_rule_1_limit_set_by_first_acquire_and_mismatch_refused() -> None:
    log = Log()
    assert log.acquire("a", limit=3) == SemGranted("s", "a", 1, 3, 2, 1, 10.0, 1)
    assert log.acquire("b", limit=5) == Refused("limit_mismatch", "'s' has limit 3", limit=3)
    log(SemRelease("s", "a"))
    assert log.acquire("b", 4, limit=5) == SemGranted("s", "b", 4, 5, 1, 4, 10.0, 4)  # unused again: new limit


def test_rule_2_tokens_strictly_increase() -> None:
    log = Log()
    tokens = [log.acquire("a").token, log.acquire("b").token]
    log(SemRelease("s", "a"))
    tokens.append(log.acquire("a").token)
    assert tokens == [1, 2, 4]


def test_rule_3_fifo_without_barging() -> None:
    log = Log()
    log.acquire("a", 2)  # 1 free
    assert log.acquire("big", 3, wait=5) == SemWaiting("s", "big", 3, 0)
    assert log.acquire("small", 1, wait=5) == SemWaiting("s", "small", 1, 1)
    assert log.acquire("now", 1) == Refused("conflict")  # one is free, but not for a latecomer
    released = log(SemRelease("s", "a"))  # 5
    assert released.grants == [Grant("semaphore", "s", "big", 3, 5, 10.0, 5)]
    assert [w["client_id"] for w in log.table.status("s")["waiters"]] == ["small"]


def test_rule_4_reacquire_idempotent_and_already_holder() -> None:
    log = Log()
    log.acquire("a", 2)
    assert log.acquire("a", 2, ttl=30) == SemGranted("s", "a", 2, 3, 1, 1, 30.0, 2, again=True)
    assert log.acquire("a", 1).code == "already_holder"


def test_rule_5_wait_conflict_and_cancel_wait() -> None:
    log = Log()
    log.acquire("a", 3)
    assert log.acquire("b", 1) == Refused("conflict")
    log.acquire("big", 3, wait=5)  # 3
    log.acquire("small", 1, wait=5)  # 4
    log(SemRelease("s", "a"))  # 5: big granted
    log.acquire("big2", 3, wait=5)  # 6: queued behind small
    cancelled = log(SemCancelWait("s", "small"))  # 7
    assert cancelled == SemCancelled("s", "small", True, None, [])
    got = log(SemCancelWait("s", "big"))  # big is a holder now: reported
    assert got.was_waiting is False and got.holding.token == 5


def test_rule_6_release_and_renew_by_a_non_holder() -> None:
    log = Log()
    log.acquire("a", 3)
    log.acquire("b", 1, wait=5)
    assert log(SemRelease("s", "b")) == SemNotHolder("s", "b")
    assert log(SemRenew("s", "b", 5)) == SemNotHolder("s", "b")
    assert log(SemRenew("s", "a", 20)) == SemRenewed("s", "a", 20.0, 5)
    assert log(SemRelease("s", "a")) == SemReleased(
        "s", "a", 3, [Grant("semaphore", "s", "b", 1, 6, 10.0, 6)], [Ended("semaphore", "s", "a", 3, 1, 5, "released")]
    )


def test_rule_7_expire_by_lease_stamp() -> None:
    log = Log()
    log.acquire("a", 3)
    log.acquire("b", 2, wait=5)
    log(SemRenew("s", "a", 10))  # 3
    assert log(SemExpire("s", "a", 1)) == Stale("s", "a")
    expired = log(SemExpire("s", "a", 3))  # 5
    assert isinstance(expired, SemExpired) and [g.holder for g in expired.grants] == ["b"]
    assert log(SemExpire("s", "a", 3)) == Stale("s", "a")


def test_rule_8_malformed_commands_are_invalid() -> None:
    log = Log()
    assert log.acquire("a", 0).code == "invalid"
    assert log.acquire("a", 4, limit=3).code == "invalid"
    assert log.acquire("a", limit=0).code == "invalid"
    assert log.acquire("a", ttl=0).code == "invalid"
    assert log.acquire("a", wait=float("nan")).code == "invalid"
    assert log(SemRenew("s", "a", -1)).code == "invalid"
    assert log.table.status("s")["limit"] is None


def test_rule_9_status() -> None:
    log = Log()
    assert log.table.status("s") == {"name": "s", "limit": None, "available": None, "holders": [], "waiters": []}
    log.acquire("a", 2)
    log.acquire("b", 2, wait=5)
    log.acquire("c", 1, wait=5)
    assert log.table.status("s") == {
        "name": "s",
        "limit": 3,
        "available": 1,
        "holders": [{"client_id": "a", "permits": 2, "fencing_token": 1}],
        "waiters": [{"client_id": "b", "permits": 2}, {"client_id": "c", "permits": 1}],
    }


def test_rule_10_snapshot_round_trip() -> None:
    log = Log()
    log.acquire("a", 2)
    log.acquire("b", 2, wait=5)
    data = log.table.snapshot()
    twin = SemaphoreTable()
    twin.restore(data)
    assert twin.snapshot() == data
    assert twin.apply(9, SemRelease("s", "a")) == log.table.apply(9, SemRelease("s", "a"))
    twin.restore(b"")
    assert twin.status("s")["limit"] is None


def test_rule_11_holder_secrets() -> None:
    log = Log()
    mine = "a-secret-0123456789"
    log(SemAcquire("s", "a", 1, 1, 10, 0, secret=mine))
    log(SemAcquire("s", "b", 1, 1, 10, 5, secret="b-secret-0123456789"))
    assert log(SemRelease("s", "a")) == SemNotHolder("s", "a")
    assert log(SemRenew("s", "a", 5, secret="wrong-secret-012345")) == SemNotHolder("s", "a")
    cancelled = log(SemCancelWait("s", "b", secret="wrong-secret-012345"))
    assert isinstance(cancelled, SemCancelled) and not cancelled.was_waiting and cancelled.holding is None
    refused = log(SemAcquire("s", "a", 1, 1, 10, 0))
    assert isinstance(refused, Refused) and refused.code == "conflict"
    assert log.table.status("s")["waiters"] == [
        {"client_id": "b", "permits": 1}
    ]  # nothing changed, and no secret shown
    assert "secret" not in str(log.table.status("s"))
    released = log(SemRelease("s", "a", secret=mine))
    assert isinstance(released, SemReleased) and [g.holder for g in released.grants] == ["b"]
    lease = log.table.book.get("s").holders[0].lease  # type: ignore[union-attr]
    assert isinstance(log(SemExpire("s", "b", lease)), SemExpired)  # the leader's timer needs no secret
