"""The shared hold model (statemachines/holds.py): one test per rule of its docstring."""

from __future__ import annotations

import msgspec

from rakit.statemachines.holds import (
    Book,
    BookState,
    Ended,
    Grant,
    Left,
    Queued,
    Record,
    Refused,
    Taken,
    Waiter,
)


def want(holder: str, amount: int = 1, *, ttl: float = 10, wait: float = 0, session: str | None = None) -> Waiter:
    return Waiter(holder, amount, ttl, wait, session)


def test_rule_1_capacity_bounds_the_holders() -> None:
    book = Book("semaphore")
    r = book.open("s", 3)
    assert isinstance(book.acquire(1, r, want("a", 2)), Taken)
    assert book.acquire(2, r, want("b", 2)) == Refused("conflict")
    assert (r.held, r.available) == (2, 1)
    assert isinstance(book.acquire(3, r, want("c", 1)), Taken)
    assert (r.held, r.available) == (3, 0)


def test_rule_2_tokens_are_the_granting_index_and_shared_by_one_command() -> None:
    book = Book("semaphore")
    r = book.open("s", 2)
    book.acquire(1, r, want("a", 2))
    book.acquire(2, r, want("b", 1, wait=5))
    book.acquire(3, r, want("c", 1, wait=5))
    ended, grants = book.end(7, r, r.holders[0], "released")
    assert ended == Ended("semaphore", "s", "a", 2, 1, 1, "released")
    assert [(g.holder, g.token) for g in grants] == [("b", 7), ("c", 7)]
    assert (r.max_token, r.changed) == (7, 7)
    book.end(9, r, r.hold_of("b"), "released")  # type: ignore[arg-type]
    assert (r.max_token, r.changed) == (7, 9)  # an end changes the holders, not the highest token


def test_rule_3_no_barging() -> None:
    book = Book("semaphore")
    r = book.open("s", 3)
    book.acquire(1, r, want("a", 2))
    assert book.acquire(2, r, want("big", 3, wait=5)) == Queued(0)
    assert book.acquire(3, r, want("small", 1, wait=5)) == Queued(1)  # one is free, but big waits ahead
    assert not r.fits_now(1)


def test_rule_4_reacquire_is_idempotent_and_another_amount_is_refused() -> None:
    book = Book("semaphore")
    r = book.open("s", 3)
    first = book.acquire(1, r, want("a", 2))
    again = book.acquire(5, r, want("a", 2, ttl=20))
    assert isinstance(first, Taken) and isinstance(again, Taken) and again.again
    assert (again.grant.token, again.grant.lease, again.grant.ttl) == (1, 5, 20)
    assert book.acquire(6, r, want("a", 1)).code == "already_holder"  # type: ignore[union-attr]
    assert book.acquire(7, r, want("a", 2, session="s1")).code == "already_holder"  # type: ignore[union-attr]
    book.acquire(8, r, want("b", 3, wait=5))
    assert book.acquire(9, r, want("b", 3, wait=9, ttl=4)) == Queued(0)
    assert (r.waiters[0].wait, r.waiters[0].ttl) == (9, 4)
    assert book.acquire(10, r, want("b", 2, wait=5)).code == "already_holder"  # type: ignore[union-attr]


def test_rule_5_grant_on_change_stops_at_a_head_that_does_not_fit() -> None:
    book = Book("semaphore")
    r = book.open("s", 3)
    book.acquire(1, r, want("a", 1))
    book.acquire(2, r, want("b", 2))
    book.acquire(3, r, want("big", 3, wait=5))
    book.acquire(4, r, want("small", 1, wait=5))
    assert book.end(5, r, r.hold_of("a"), "released")[1] == []  # type: ignore[arg-type]
    assert book.leave(6, r, r.waiter_of("big")) == [Grant("semaphore", "s", "small", 1, 6, 10, 6)]  # type: ignore[arg-type]


def test_rule_6_wait_or_conflict_and_bounded_waiters() -> None:
    book = Book("semaphore", max_waiters=1)
    r = book.open("s", 1)
    book.acquire(1, r, want("a"))
    assert book.acquire(2, r, want("b")) == Refused("conflict")
    assert book.acquire(3, r, want("b", wait=1)) == Queued(0)
    assert book.acquire(4, r, want("c", wait=1)).code == "too_many_waiters"  # type: ignore[union-attr]


def test_rule_7_session_holds_have_no_lease_and_end_with_their_session() -> None:
    book = Book("semaphore")
    a, b = book.open("a", 1), book.open("b", 2)
    book.acquire(1, a, want("c1", session="s1"))
    book.acquire(2, a, want("c2", wait=5))
    book.acquire(3, b, want("c3", 2))
    book.acquire(4, b, want("c1", 1, wait=5, session="s1"))
    book.acquire(5, b, want("c4", 1, wait=5))
    assert list(book.leases()) == [("b", "c3", 10.0, 3)]
    assert book.attached("s1") == ["a", "b"]
    end = book.end_session(9, "s1")
    assert end.names == ["a", "b"]
    assert end.removed == [Ended("semaphore", "a", "c1", 1, 1, 1, "session_ended", "s1")]
    assert end.left == [Left("semaphore", "b", "c1", 1)]
    assert end.grants == [Grant("semaphore", "a", "c2", 1, 9, 10, 9)]
    assert book.attached("s1") == [] and [w.holder for w in b.waiters] == ["c4"]


def test_rule_8_free_records_are_forgotten_oldest_first() -> None:
    book = Book("semaphore", max_free=1)
    for i, name in enumerate(["x", "y"], start=1):
        r = book.open(name, 1)
        book.acquire(i, r, want("a"))
        book.end(i, r, r.holders[0], "released")
        book.settle(name)
    assert list(book.records) == ["y"]


def test_rule_9_snapshot_state_round_trips_and_rebuilds_the_session_index() -> None:
    book = Book("election")
    r = book.open("e", 1)
    book.acquire(1, r, Waiter("a", 1, 10, 0, "s1", b'"v"'))
    book.acquire(2, r, want("b", wait=3, session="s2"))
    data = msgspec.msgpack.encode(book.snapshot_state())
    twin = Book("election")
    twin.restore_state(msgspec.msgpack.decode(data, type=BookState))
    assert msgspec.msgpack.encode(twin.snapshot_state()) == data
    assert twin.attached("s1") == ["e"] and twin.attached("s2") == ["e"]
    assert isinstance(twin.get("e"), Record)


def test_rule_10_holder_secrets_pass_to_the_hold_and_guard_it() -> None:
    book = Book("semaphore")
    r = book.open("s", 1)
    book.acquire(1, r, Waiter("a", 1, 10, 0, secret="a-secret-0123456789"))
    queued = book.acquire(2, r, Waiter("b", 1, 10, 5, secret="b-secret-0123456789"))
    assert queued == Queued(0)
    assert r.hold_for("a", "a-secret-0123456789") is r.holders[0]
    assert r.hold_for("a", "wrong-secret-012345") is None and r.hold_for("a", None) is None
    assert r.waiter_for("b", None) is None and r.waiter_for("b", "b-secret-0123456789") is r.waiters[0]
    again = book.acquire(3, r, Waiter("a", 1, 10, 0, secret="wrong-secret-012345"))
    assert isinstance(again, Refused) and again.code == "conflict"
    assert book.acquire(3, r, Waiter("b", 1, 10, 5)) == Refused("conflict", "'b' is on 's' with another holder secret")
    assert r.holders[0].lease == 1 and r.waiters[0].wait == 5.0  # nothing changed
    ended, grants = book.end(4, r, r.holders[0], "released")
    assert [g.holder for g in grants] == ["b"] and r.hold_for("b", "b-secret-0123456789") is not None
    assert r.hold_for("b", None) is None  # the waiter's secret went on to its hold
    open_hold = book.open("t", 1)
    book.acquire(5, open_hold, want("c"))
    assert open_hold.hold_for("c", None) is not None and open_hold.hold_for("c", "any-secret-01234567") is not None
