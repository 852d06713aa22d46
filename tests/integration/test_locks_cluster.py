"""Locks on a real 3-node cluster: every rule of docs/api.md through random nodes.

One cluster serves the whole module (each test uses its own resource names);
tests that kill nodes live in tests/system/.
"""

from __future__ import annotations

import threading
import time

import pytest

from httpcall import call, get, post

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from rakit.launcher import LocalCluster

    c = LocalCluster(3, tmp_path_factory.mktemp("locks"))
    c.start()
    c.wait_for_leader(timeout=15)
    yield c
    c.close()


def urls(cluster) -> list[str]:
    return [n.url for n in cluster.nodes.values()]


def acquire(url, resource, client, **kw):
    return post(url + "/lock/acquire", {"resource": resource, "client_id": client, **kw}, timeout=40)


def release(url, resource, client, **kw):
    return post(url + "/lock/release", {"resource": resource, "client_id": client, **kw})


def status(url, resource):
    s, body = get(url + f"/lock/status/{resource}")
    assert s == 200, body
    return body


def test_grant_conflict_release_through_any_node(cluster):
    a, b, c = urls(cluster)
    s, g = acquire(a, "t1", "alice", ttl=10)
    assert s == 200 and g["acquired"] and g["mode"] == "exclusive" and g["ttl"] == 10
    s, body = acquire(b, "t1", "bob")
    assert (s, body["error"], body["acquired"]) == (409, "conflict", False)
    st = status(c, "t1")
    assert st["holders"] == ["alice"] and st["mode"] == "exclusive" and st["fencing_token"] == g["fencing_token"]
    assert release(c, "t1", "bob")[1]["error"] == "not_holder"
    assert release(b, "t1", "alice") == (200, {"released": True})
    s, g2 = acquire(c, "t1", "bob")
    assert s == 200 and g2["fencing_token"] > g["fencing_token"]


def test_reacquire_is_idempotent_and_sole_shared_holder_upgrades(cluster):
    a, b, _ = urls(cluster)
    _, g1 = acquire(a, "t2", "carol", mode="shared")
    _, g2 = acquire(b, "t2", "carol", mode="shared", ttl=50)
    assert g2["fencing_token"] == g1["fencing_token"] and g2["again"] and g2["ttl"] == 50
    _, up = acquire(a, "t2", "carol", mode="exclusive")
    assert up["mode"] == "exclusive" and up["upgraded"] and up["fencing_token"] > g1["fencing_token"]


def test_shared_waiters_at_the_head_are_granted_together_and_fifo(cluster):
    a, b, c = urls(cluster)
    acquire(a, "t3", "writer")
    results = {}

    def wait(name, mode, url):
        results[name] = acquire(url, "t3", name, mode=mode, timeout=20)

    threads = []
    for name, mode, url in (("r1", "shared", a), ("r2", "shared", b), ("w2", "exclusive", c), ("r3", "shared", a)):
        t = threading.Thread(target=wait, args=(name, mode, url))
        t.start()
        threads.append(t)
        cluster.wait_until(
            lambda n=name: any(w["client_id"] == n for w in status(a, "t3")["waiters"]), 10, f"{name} to wait"
        )
    assert [w["client_id"] for w in status(b, "t3")["waiters"]] == ["r1", "r2", "w2", "r3"]
    release(b, "t3", "writer")
    for t in threads[:2]:
        t.join(20)
    assert results["r1"][0] == results["r2"][0] == 200
    assert results["r1"][1]["fencing_token"] == results["r2"][1]["fencing_token"]
    st = status(c, "t3")
    assert sorted(st["holders"]) == ["r1", "r2"] and [w["client_id"] for w in st["waiters"]] == ["w2", "r3"]
    release(a, "t3", "r1")
    release(a, "t3", "r2")
    threads[2].join(20)
    assert results["w2"][0] == 200 and results["w2"][1]["fencing_token"] > results["r1"][1]["fencing_token"]
    release(a, "t3", "w2")
    threads[3].join(20)
    assert results["r3"][0] == 200


def test_wait_times_out_and_waiter_is_removed(cluster):
    a, b, _ = urls(cluster)
    acquire(a, "t4", "holder")
    started = time.monotonic()
    s, body = acquire(b, "t4", "impatient", timeout=0.5)
    took = time.monotonic() - started
    assert (s, body["error"], body["acquired"]) == (409, "timeout", False)
    assert 0.4 < took < 5.0
    assert status(a, "t4")["waiters"] == []


def test_deadlock_is_refused_with_the_cycle(cluster):
    a, b, c = urls(cluster)
    acquire(a, "t5a", "p")
    acquire(b, "t5b", "q")
    acquire(c, "t5c", "r")
    waits = []
    for res, client, url in (("t5b", "p", a), ("t5c", "q", b)):
        t = threading.Thread(target=lambda r=res, cl=client, u=url: waits.append(acquire(u, r, cl, timeout=10)))
        t.start()
        cluster.wait_until(
            lambda r=res, cl=client: any(w["client_id"] == cl for w in status(a, r)["waiters"]),
            10,
            f"{client} to wait on {res}",
        )
    s, body = acquire(c, "t5a", "r", timeout=5)
    assert (s, body["error"], body["acquired"]) == (409, "deadlock", False)
    assert body["cycle"] == ["r", "p", "q"]
    assert status(a, "t5c")["holders"] == ["r"], "the refused client's holds are untouched"
    for res, client in (("t5a", "p"), ("t5b", "q"), ("t5c", "r")):
        release(a, res, client)


def test_upgrade_deadlock_between_two_shared_holders(cluster):
    a, b, _ = urls(cluster)
    acquire(a, "t6", "s1", mode="shared")
    acquire(b, "t6", "s2", mode="shared")
    t = threading.Thread(target=lambda: acquire(a, "t6", "s1", mode="exclusive", timeout=3))
    t.start()
    cluster.wait_until(lambda: status(a, "t6")["waiters"], 10, "s1's upgrade to wait")
    s, body = acquire(b, "t6", "s2", mode="exclusive", timeout=3)
    assert (s, body["error"]) == (409, "deadlock") and body["cycle"] == ["s2", "s1"]
    t.join(10)


def test_lease_expires_without_renew_and_renew_keeps_it(cluster):
    a, b, c = urls(cluster)
    _, g = acquire(a, "t7", "short", ttl=1)
    s, r = post(b + "/lock/renew", {"resource": "t7", "client_id": "short", "ttl": 1})
    assert s == 200 and r["renewed"] and r["ttl"] == 1
    s, body = acquire(c, "t7", "next", timeout=10)
    assert s == 200 and body["fencing_token"] > g["fencing_token"]
    s, r = post(b + "/lock/renew", {"resource": "t7", "client_id": "short"})
    assert (s, r["error"]) == (409, "not_holder")


def test_watch_answers_when_the_hold_ends(cluster):
    a, b, _ = urls(cluster)
    acquire(a, "t8", "watched", ttl=30)
    answer = {}
    t = threading.Thread(
        target=lambda: answer.update(
            zip(("status", "body"), get(b + "/lock/watch/t8?client_id=watched&timeout=20", timeout=30))
        )
    )
    t.start()
    leader = cluster.nodes[cluster.wait_for_leader()]
    cluster.wait_until(lambda: metric(leader.url, "rakit_lock_watchers") >= 1, 10, "the watch to reach the leader")
    release(a, "t8", "watched")
    t.join(20)
    assert answer["status"] == 200 and answer["body"]["held"] is False and answer["body"]["reason"] == "released"
    s, body = get(a + "/lock/watch/t8?client_id=watched&timeout=1")
    assert s == 200 and body["held"] is False and body["reason"] == "not_holder"


def metric(url: str, name: str) -> float:
    _, text = call("GET", url + "/metrics")
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


def test_release_with_a_stale_fencing_token_is_refused(cluster):
    a, _, _ = urls(cluster)
    _, g = acquire(a, "t9", "fenced")
    s, body = release(a, "t9", "fenced", fencing_token=g["fencing_token"] - 1)
    assert (s, body["error"]) == (409, "token_mismatch")
    assert release(a, "t9", "fenced", fencing_token=g["fencing_token"]) == (200, {"released": True})


def test_lock_delay_after_expiry_but_not_after_release(cluster):
    a, b, _ = urls(cluster)
    acquire(a, "t10", "d1", ttl=1, lock_delay=2)
    started = time.monotonic()
    s, _ = acquire(b, "t10", "d2", timeout=15)
    assert s == 200
    assert time.monotonic() - started > 2.5, "expiry after 1 s, then a 2 s lock delay"
    release(a, "t10", "d2")
    s, _ = acquire(b, "t10", "d3")
    assert s == 200, "a release starts no delay"


def test_bad_input_gets_json_errors_and_changes_nothing(cluster):
    a, _, _ = urls(cluster)
    bad = [
        {"client_id": "x"},
        {"resource": "r", "client_id": "x", "mode": "both"},
        {"resource": "r", "client_id": "x", "timeout": "5"},
        {"resource": "r", "client_id": "x", "ttl": True},
        {"resource": "r", "client_id": "x", "ttl": 0},
        {"resource": "r", "client_id": "x", "timeout": 301},
        {"resource": "r r", "client_id": "x"},
        {"resource": "r", "client_id": "x:y"},
        {"resource": "r" * 129, "client_id": "x"},
    ]
    for body in bad:
        s, answer = post(a + "/lock/acquire", body)
        assert s == 422 and answer["error"] == "invalid_request" and answer["detail"], (body, answer)
    s, answer = call("POST", a + "/lock/acquire", raw=b"[1,2")
    assert s == 422 and answer["error"] == "invalid_request"
    s, answer = get(a + "/lock/status/bad%20name")
    assert s == 422 and answer["error"] == "invalid_request"
    s, answer = get(a + "/lock/watch/r?client_id=&timeout=1")
    assert s == 422
    assert status(a, "r") == {"resource": "r", "mode": None, "holders": [], "waiters": [], "fencing_token": None}


def test_a_waiter_whose_client_disconnects_leaves_the_wait_list(cluster):
    import json
    import socket
    from urllib.parse import urlsplit

    a, b, _ = urls(cluster)
    acquire(a, "t11", "holder")
    for url in (a, b):  # straight to a node, and through one that forwards
        target = urlsplit(url)
        body = json.dumps({"resource": "t11", "client_id": "gone", "timeout": 60}).encode()
        sock = socket.create_connection((target.hostname, target.port), timeout=5)
        sock.sendall(
            b"POST /lock/acquire HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        cluster.wait_until(lambda: status(a, "t11")["waiters"], 10, "the waiter to queue")
        sock.close()
        cluster.wait_until(lambda: status(a, "t11")["waiters"] == [], 10, "the abandoned waiter to be removed")
    assert status(b, "t11")["holders"] == ["holder"]
