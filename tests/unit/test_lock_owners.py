"""The lock table's owners (rule 13) and its bounded wait lists (rule 14)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from rakit.statemachines import locks as L
from rakit.statemachines.locks import (
    MAX_WAITERS,
    Acquire,
    Cancelled,
    CancelWait,
    Granted,
    LockTable,
    NotHolder,
    Refused,
    Release,
    Released,
    Renew,
    Renewed,
    Waiting,
)
from rakit.statemachines.locks.deadlock import reaches, wait_for_graph
from rakit.statemachines.locks.records import Hold, Resource, Snapshot, Waiter
from rakit.statemachines.registry import Registry

X, S = "exclusive", "shared"


class Log:
    def __init__(self, table: LockTable | None = None) -> None:
        self.table = table or LockTable()
        self.index = 0

    def __call__(self, command: Any) -> Any:
        self.index += 1
        return self.table.apply(self.index, command)

    def acquire(
        self, client: str, owner: str | None, mode: str = X, *, r: str = "r", wait: float = 0, **kw: Any
    ) -> Any:
        return self(Acquire(r, client, mode, 10, wait, owner=owner, **kw))


def test_release_and_renew_only_under_the_owner() -> None:
    log = Log()
    granted = log.acquire("c", "A")
    assert isinstance(granted, Granted)
    before = log.table.snapshot()
    assert log(Release("r", "c", owner="B")) == NotHolder("r", "c")
    assert log(Release("r", "c")) == NotHolder("r", "c")  # no owner is another owner
    assert log(Renew("r", "c", 30, owner="B")) == NotHolder("r", "c")
    # a wrong fencing token under another owner: still not_holder (the token is not revealed)
    assert log(Release("r", "c", fencing_token=999, owner="B")) == NotHolder("r", "c")
    assert log.table.snapshot() == before  # nothing changed
    assert isinstance(log(Renew("r", "c", 30, owner="A")), Renewed)
    assert log.table.hold_owner("r", "c") == "A"
    assert isinstance(log(Release("r", "c", owner="A")), Released)
    assert log.table.status("r")["holders"] == []


def test_without_tokens_the_owner_is_none_and_everything_works_as_before() -> None:
    log = Log()
    assert isinstance(log(Acquire("r", "c", X, 10, 0)), Granted)
    assert isinstance(log(Renew("r", "c", 10)), Renewed)
    assert isinstance(log(Release("r", "c")), Released)


def test_an_acquire_of_a_client_id_held_under_another_owner_is_refused() -> None:
    log = Log()
    log.acquire("c", "A", S)
    before = log.table.snapshot()
    for mode, wait in ((S, 0), (X, 0), (X, 5), (S, 5)):  # re-acquire, upgrade, waiting or not
        refused = log.acquire("c", "B", mode, wait=wait, lock_delay=3)
        assert isinstance(refused, Refused) and refused.code == "conflict" and "another owner" in refused.detail
    assert log.table.snapshot() == before  # not even lock_delay changed
    again = log.acquire("c", "A", S)
    assert isinstance(again, Granted) and again.again


def test_a_waiter_keeps_its_owner_into_its_grant() -> None:
    log = Log()
    log.acquire("h", "A")
    assert isinstance(log.acquire("w", "B", wait=10), Waiting)
    # another owner cannot re-ask for w's place, nor cancel it through the service's CancelWait
    assert log.acquire("w", "A", wait=10).code == "conflict"
    cancelled = log(CancelWait("r", "w", "A", any_owner=False))
    assert cancelled == Cancelled("r", "w", was_waiting=False)
    assert [w["client_id"] for w in log.table.status("r")["waiters"]] == ["w"]
    released = log(Release("r", "h", owner="A"))
    assert [g.client_id for g in released.grants] == ["w"]
    assert log.table.hold_owner("r", "w") == "B"
    assert log(Release("r", "w", owner="A")) == NotHolder("r", "w")
    assert isinstance(log(Release("r", "w", owner="B")), Released)


def test_cancel_wait_with_any_owner_is_the_leaders_timer() -> None:
    log = Log()
    log.acquire("h", "A")
    log.acquire("w", "B", wait=10)
    assert log(CancelWait("r", "w")).was_waiting  # any_owner=True by default
    log.acquire("w", "B", wait=10)
    assert log(CancelWait("r", "w", "B", any_owner=False)).was_waiting


def test_cancel_wait_reports_only_a_hold_of_its_owner() -> None:
    log = Log()
    log.acquire("c", "A")
    assert log(CancelWait("r", "c", "B", any_owner=False)) == Cancelled("r", "c", was_waiting=False)
    mine = log(CancelWait("r", "c", "A", any_owner=False))
    assert mine.holding and mine.token == 1


def test_an_upgrade_keeps_the_owner() -> None:
    log = Log()
    log.acquire("c", "A", S)
    upgraded = log.acquire("c", "A", X)
    assert isinstance(upgraded, Granted) and upgraded.upgraded
    assert log.table.hold_owner("r", "c") == "A"
    log.acquire("d", "B", S, r="q")
    log.acquire("c", "A", S, r="q")
    assert isinstance(log.acquire("c", "A", X, r="q", wait=10), Waiting)  # upgrade waiter
    released = log(Release("q", "d", owner="B"))
    assert [(g.client_id, g.mode) for g in released.grants] == [("c", X)]
    assert log.table.hold_owner("q", "c") == "A"


# -- rule 14: bounded waiters -------------------------------------------------------------------


def test_the_default_bound() -> None:
    assert MAX_WAITERS == 1000 and LockTable().max_waiters == 1000
    with pytest.raises(ValueError):
        LockTable(max_waiters=0)


def test_one_waiter_too_many_is_refused_and_changes_nothing() -> None:
    log = Log(LockTable(max_waiters=3))
    log.acquire("h", None)
    for i in range(3):
        assert isinstance(log.acquire(f"w{i}", None, wait=10), Waiting)
    before = log.table.snapshot()
    refused = log.acquire("extra", None, wait=10, lock_delay=5)
    assert isinstance(refused, Refused) and refused.code == "too_many_waiters" and "3 waiters" in refused.detail
    assert log.table.snapshot() == before  # not even lock_delay
    assert log.acquire("extra", None, S, wait=10).code == "too_many_waiters"
    # wait 0 still answers "conflict" (it would not wait anyway)
    assert log.acquire("extra", None, wait=0) == Refused("conflict")
    # a waiter asking again is not a new waiter
    assert isinstance(log.acquire("w1", None, wait=20), Waiting)
    # an upgrade waiter counts too
    log2 = Log(LockTable(max_waiters=1))
    log2.acquire("a", None, S)
    log2.acquire("b", None, S)
    assert isinstance(log2.acquire("c", None, wait=5), Waiting)
    assert log2.acquire("a", None, X, wait=5).code == "too_many_waiters"
    # room again once a waiter leaves
    log(CancelWait("r", "w0"))
    assert isinstance(log.acquire("extra", None, wait=10), Waiting)
    # other resources are not affected
    assert isinstance(log.acquire("extra", None, r="other"), Granted)


def test_the_bound_is_the_same_on_every_replica() -> None:
    """The refusal is a result of the replicated machine: replicas fed one log agree."""
    commands = [Acquire("r", "h", X, 10, 0)] + [Acquire("r", f"w{i}", X, 10, 5) for i in range(MAX_WAITERS + 2)]
    replicas = [Registry([LockTable()]) for _ in range(3)]
    encoder = msgspec.msgpack.Encoder()
    results = [[m.apply(i + 1, encoder.encode(c)) for i, c in enumerate(commands)] for m in replicas]
    assert results[0] == results[1] == results[2]
    assert [r.code for r in results[0][-2:]] == ["too_many_waiters", "too_many_waiters"]
    assert len({m.snapshot() for m in replicas}) == 1
    assert len(replicas[0].machines["locks"].status("r")["waiters"]) == MAX_WAITERS


# -- snapshots and old log entries -----------------------------------------------------------------


def test_snapshot_keeps_owners() -> None:
    log = Log()
    log.acquire("h", "A")
    log.acquire("w", "B", wait=10)
    twin = LockTable()
    twin.restore(log.table.snapshot())
    assert twin.snapshot() == log.table.snapshot()
    assert twin.hold_owner("r", "h") == "A"
    assert [w["owner"] for w in twin.table(10)["resources"][0]["waiters"]] == ["B"]
    assert twin.apply(10, Release("r", "h", owner="B")) == NotHolder("r", "h")


class _OldHold(msgspec.Struct):
    client_id: str
    mode: str
    token: int
    ttl: float
    lease: int


class _OldWaiter(msgspec.Struct):
    client_id: str
    mode: str
    ttl: float
    wait: float
    upgrade: bool = False


class _OldResource(msgspec.Struct):
    name: str
    holders: list[_OldHold] = []
    waiters: list[_OldWaiter] = []
    max_token: int | None = None
    lock_delay: float = 0.0
    delay_since: int | None = None


class _OldSnapshot(msgspec.Struct):
    version: int
    resources: list[_OldResource]


def test_a_snapshot_without_owners_still_restores() -> None:
    old = msgspec.msgpack.encode(
        _OldSnapshot(1, [_OldResource("r", [_OldHold("h", X, 3, 10.0, 3)], [_OldWaiter("w", X, 10.0, 5.0)], 3)])
    )
    table = LockTable()
    table.restore(old)
    assert table.status("r") == {
        "resource": "r",
        "mode": X,
        "holders": ["h"],
        "waiters": [{"client_id": "w", "mode": X}],
        "fencing_token": 3,
    }
    assert table.hold_owner("r", "h") is None
    assert isinstance(table.apply(4, Renew("r", "h", 10)), Renewed)  # no owner: as before tokens
    released = table.apply(5, Release("r", "h"))
    assert [g.client_id for g in released.grants] == ["w"]


def test_log_entries_written_before_owners_still_decode() -> None:
    class OldAcquire(msgspec.Struct, tag="lock.acquire", frozen=True):
        resource: str
        client_id: str
        mode: str
        ttl: float
        wait: float
        lock_delay: float | None = None

    registry = Registry([LockTable()])
    result = registry.apply(1, msgspec.msgpack.encode(OldAcquire("r", "c", X, 10, 0)))
    assert isinstance(result, Granted)
    assert isinstance(registry.apply(2, registry.encode(L.Release("r", "c"))), Released)


# -- rule 8 at the bound: the deadlock check stays cheap -------------------------------------------


def _table(resources: list[Resource]) -> LockTable:
    table = LockTable()
    table.restore(msgspec.msgpack.encode(Snapshot(1, resources)))
    return table


def test_a_full_wait_list_is_checked_for_deadlocks_in_linear_time() -> None:
    import time

    holder = [Hold("h", X, 1, 10.0, 1)]
    waiters = [Waiter(f"w{i}", X, 10.0, 5.0) for i in range(MAX_WAITERS - 1)]
    others = [Resource(f"o{i}", [Hold(f"w{i}", X, 2, 10.0, 2)], [], 2) for i in range(MAX_WAITERS - 1)]
    table = _table([Resource("r", holder, waiters, 1), *others])
    started = time.perf_counter()
    assert isinstance(table.apply(10, Acquire("r", "last", X, 10, 5)), Waiting)  # the 1000th waiter
    assert time.perf_counter() - started < 0.1  # (the full graph has ~500k edges: ~1 s to build and search)
    # a real cycle through the long list is still found, and named as before
    assert table.apply(11, Acquire("o5", "h", X, 10, 5)) == Refused("deadlock", cycle=["h", "w5"])


def reference_graph(table: LockTable, start: str, new_edges: list[str]) -> dict[str, set[str]]:
    """Rule 8's graph the plain way (``Resource.blockers`` per waiter): what ``wait_for_graph`` must build."""
    graph: dict[str, set[str]] = {}
    todo = [start]
    while todo:
        client = todo.pop()
        if client in graph:
            continue
        edges = set(new_edges) if client == start else set()
        for name in table._waiting_on.get(client, {}):
            r = table._resources[name]
            waiter = r.waiter_of(client)
            assert waiter is not None
            edges.update(r.blockers(waiter, r.waiters.index(waiter)))
        graph[client] = edges
        todo.extend(sorted(edges - graph.keys()))
    return graph


def test_the_reachability_check_agrees_with_the_graph_search() -> None:
    """``reaches`` is a pre-filter of ``find_cycle(wait_for_graph(...))``: same yes/no, on random tables."""
    import random

    from rakit.statemachines.waitfor import find_cycle

    rng = random.Random(7)
    clients = [f"c{i}" for i in range(7)]
    checked = cycles = 0
    for _ in range(400):
        table, index = LockTable(), 0
        for _ in range(rng.randrange(5, 40)):
            index += 1
            table.apply(
                index, Acquire(rng.choice("pqrs"), rng.choice(clients), rng.choice((X, S)), 10, rng.choice((0, 5, 5)))
            )
            if rng.random() < 0.15:
                index += 1
                table.apply(index, Release(rng.choice("pqrs"), rng.choice(clients)))
        for name in "pqrs":
            r = table._record(name)
            for start in clients:
                for mode in (X, S):
                    hold = r.hold_of(start)
                    if r.waiter_of(start) is not None or (hold is not None and (hold.mode == X or mode == S)):
                        continue  # would not wait
                    upgrade = hold is not None
                    waiter = Waiter(start, X if upgrade else mode, 10, 5, upgrade=upgrade)
                    position = r.upgrade_waiters() if upgrade else len(r.waiters)
                    edges = r.blockers(waiter, position)
                    graph = wait_for_graph(start, edges, table._waiting_on, table._resources)
                    assert graph == reference_graph(table, start, edges)
                    expected = find_cycle(graph, start) is not None
                    assert reaches(start, edges, table._waiting_on, table._resources) == expected, (
                        name,
                        start,
                        mode,
                        table.table(100),
                    )
                    checked += 1
                    cycles += expected
    assert checked > 5000 and cycles > 100  # not vacuous


def test_the_refusal_is_a_429_and_the_client_raises_too_many_waiters() -> None:
    from rakit.client.errors import Forbidden, TooManyWaiters, Unauthorized, error_from_answer
    from rakit.node.lock_service import refusal

    error = refusal(Refused("too_many_waiters", detail="'r' already has 1000 waiters"))
    assert error.status == 429
    assert error.body() == {"error": "too_many_waiters", "detail": "'r' already has 1000 waiters", "acquired": False}
    assert isinstance(error_from_answer(429, error.body()), TooManyWaiters)
    assert isinstance(error_from_answer(401, {"error": "unauthorized", "detail": "x"}), Unauthorized)
    assert isinstance(error_from_answer(403, {"error": "forbidden", "detail": "x"}), Forbidden)
    conflict = refusal(Refused("conflict", detail="client 'c' holds 'r' under another owner (API token)"))
    assert (conflict.status, conflict.body()["error"]) == (409, "conflict") and "another owner" in conflict.detail
