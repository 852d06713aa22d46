"""LockTable.table(): the dashboard's read of the whole lock table (rule 11: changes nothing)."""

from __future__ import annotations

from rakit.statemachines.locks import Acquire, LockTable, Release


def test_busy_resources_first_with_holders_waiters_and_wait_for_edges() -> None:
    t = LockTable()
    t.apply(1, Acquire("free-later", "a", "exclusive", 30, 0))
    t.apply(2, Release("free-later", "a"))
    t.apply(3, Acquire("docs", "r1", "shared", 30, 0, owner="svc-a"))
    t.apply(4, Acquire("docs", "r2", "shared", 30, 0))
    t.apply(5, Acquire("docs", "w", "exclusive", 30, 10, owner="svc-b"))  # waits for r1, r2
    t.apply(6, Acquire("docs", "r3", "shared", 30, 10))  # waits: behind the exclusive w
    before = t.snapshot()

    view = t.table(500)

    assert t.snapshot() == before
    assert (view["count"], view["active"], view["truncated"]) == (2, 1, False)
    docs, free = view["resources"]
    assert docs == {
        "resource": "docs",
        "mode": "shared",
        "fencing_token": 4,
        "lock_delay": 0.0,
        "delayed": False,
        "holders": [
            {"client_id": "r1", "mode": "shared", "fencing_token": 3, "ttl": 30.0, "lease": 3, "owner": "svc-a"},
            {"client_id": "r2", "mode": "shared", "fencing_token": 4, "ttl": 30.0, "lease": 4, "owner": None},
        ],
        "waiters": [
            {"client_id": "w", "mode": "exclusive", "upgrade": False, "wait": 10.0, "owner": "svc-b"},
            {"client_id": "r3", "mode": "shared", "upgrade": False, "wait": 10.0, "owner": None},
        ],
    }
    assert free == {
        "resource": "free-later",
        "mode": None,
        "holders": [],
        "waiters": [],
        "fencing_token": 1,
        "lock_delay": 0.0,
        "delayed": False,
    }
    assert view["edges"] == [
        {"from": "w", "to": "r1", "resource": "docs", "kind": "holder"},
        {"from": "w", "to": "r2", "resource": "docs", "kind": "holder"},
        {"from": "r3", "to": "r1", "resource": "docs", "kind": "holder"},
        {"from": "r3", "to": "r2", "resource": "docs", "kind": "holder"},
        {"from": "r3", "to": "w", "resource": "docs", "kind": "queued"},
    ]


def test_upgrade_waiter_edges_are_listed_once_and_limit_truncates() -> None:
    t = LockTable()
    t.apply(1, Acquire("x", "a", "shared", 30, 0))
    t.apply(2, Acquire("x", "b", "shared", 30, 0))
    t.apply(3, Acquire("x", "a", "exclusive", 30, 10))  # upgrade waiter: waits for b
    t.apply(4, Acquire("x", "c", "exclusive", 30, 10))  # waits for a (holder and queued ahead) and b
    for i in range(5):
        t.apply(10 + i, Acquire(f"idle{i}", "z", "exclusive", 30, 0))
        t.apply(20 + i, Release(f"idle{i}", "z"))
    view = t.table(3)
    assert [r["resource"] for r in view["resources"]] == ["x", "idle0", "idle1"]
    assert (view["count"], view["active"], view["truncated"]) == (6, 1, True)
    assert view["resources"][0]["waiters"][0] == {
        "client_id": "a",
        "mode": "exclusive",
        "upgrade": True,
        "wait": 10.0,
        "owner": None,
    }
    assert [(e["from"], e["to"], e["kind"]) for e in view["edges"]] == [
        ("a", "b", "holder"),
        ("c", "a", "holder"),
        ("c", "b", "holder"),
    ]
    assert t.table(0)["resources"] == [] and t.table(0)["truncated"]
    assert LockTable().table(10) == {"resources": [], "edges": [], "count": 0, "active": 0, "truncated": False}
