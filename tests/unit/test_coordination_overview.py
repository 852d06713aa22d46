"""The coordination machine's whole-table reads (rakit.statemachines.coordination_overview), one test per rule."""

from __future__ import annotations

from typing import Any

from rakit.metrics import NodeMetrics
from rakit.statemachines.coordination import CoordinationMachine, SessionLockAcquire
from rakit.statemachines.coordination_overview import overview, totals
from rakit.statemachines.elections import Campaign, Resign
from rakit.statemachines.locks import Acquire, LockTable
from rakit.statemachines.semaphores import SemAcquire, SemRelease
from rakit.statemachines.sessions import SessionGrant

SESSION = "Zr2v9kQ4aLbx_secret_part_of_the_id"


def busy_machine() -> CoordinationMachine:
    locks = LockTable()
    machine = CoordinationMachine([locks])
    commands: list[Any] = [
        SessionGrant(SESSION, "worker", 10, lock_delay=2),
        SemAcquire("gpu", "a", 4, 3, 30, 0),
        SemAcquire("gpu", "b", 4, 2, 30, 5),  # waits: only 1 free
        SemAcquire("gpu", "worker", 4, 1, 30, 5, session_id=SESSION),  # waits behind b (FIFO)
        SemAcquire("api", "a", 2, 1, 30, 0),
        SemAcquire("api", "a", 2, 1, 30, 0),
        SemRelease("api", "a"),  # api is free again: not listed
        Campaign("scheduler", "host1", b'"h1"', 10, 0),
        Campaign("scheduler", "host2", b'"h2"', 10, 30),
        Campaign("beat", "worker", b"null", 10, 0, session_id=SESSION),
        Campaign("old", "x", b"1", 10, 0),
        Resign("old", "x"),  # no leader, no candidate: not listed
        SessionLockAcquire(Acquire("orders", "worker", "exclusive", 30, 0, session_id=SESSION)),
    ]
    for index, command in enumerate(commands, start=1):
        machine.apply(index, command)
    return machine


def test_rule_1_reads_change_nothing() -> None:
    machine = busy_machine()
    before = machine.snapshot()
    view = overview(machine, 10)
    view["semaphores"][0]["holders"].clear()
    assert machine.snapshot() == before
    assert overview(machine, 10)["semaphores"][0]["holders"]


def test_rule_2_in_use_records_in_name_order_at_most_limit_each() -> None:
    machine = busy_machine()
    view = overview(machine, 10)
    assert [s["name"] for s in view["semaphores"]] == ["gpu"]
    gpu = view["semaphores"][0]
    assert gpu == {
        "name": "gpu",
        "limit": 4,
        "available": 1,
        "holders": [{"client_id": "a", "permits": 3, "fencing_token": 2}],
        "waiters": [{"client_id": "b", "permits": 2}, {"client_id": "worker", "permits": 1}],
    }
    assert [e["name"] for e in view["elections"]] == ["beat", "scheduler"]
    assert view["elections"][1] == {"name": "scheduler", "leader": "host1", "term": 8, "candidates": ["host2"]}
    assert view["truncated"] == {"sessions": False, "semaphores": False, "elections": False}
    one = overview(machine, 1)
    assert [e["name"] for e in one["elections"]] == ["beat"]
    assert one["truncated"] == {"sessions": False, "semaphores": False, "elections": True}


def test_rule_3_a_session_id_is_shortened_and_its_holds_counted() -> None:
    view = overview(busy_machine(), 10)
    assert view["sessions"] == [
        {"session_id": SESSION[:8] + "…", "client_id": "worker", "ttl": 10.0, "lock_delay": 2.0, "holds": 3}
    ]
    assert SESSION not in repr(view)


def test_rule_4_totals_count_the_whole_machine_whatever_the_limit() -> None:
    machine = busy_machine()
    expected = {
        "sessions": 1,
        "semaphores": 1,
        "permits_held": 3,
        "permits_limit": 4,
        "semaphore_waiters": 2,
        "elections": 2,
        "elections_led": 2,
        "candidates_waiting": 1,
    }
    assert totals(machine) == expected
    assert overview(machine, 1)["totals"] == expected
    assert totals(CoordinationMachine()) == dict.fromkeys(expected, 0)


def test_the_totals_are_exported_as_prometheus_gauges_read_at_each_scrape() -> None:
    machine = busy_machine()
    metrics = NodeMetrics("n1")
    metrics.watch_coordination(lambda: totals(machine))
    text = metrics.render().decode()
    assert "rakit_semaphore_permits_held 3.0" in text
    assert "rakit_election_candidates_waiting 1.0" in text
    machine.apply(99, SemRelease("gpu", "a"))  # b (2) and worker (1) are granted
    assert "rakit_semaphore_permits_held 3.0" in metrics.render().decode()
    assert "rakit_semaphore_waiters 0.0" in metrics.render().decode()
    metrics.coordination_expiries.labels(kind="session").inc()
    assert 'rakit_coordination_expiries_total{kind="session"} 1.0' in metrics.render().decode()
