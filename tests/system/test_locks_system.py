"""Lock safety with real processes under failure: SIGKILL and SIGSTOP of the leader.

Clients contend for one resource through random nodes and record, for every
grant, when they started and stopped *using* the lock: from the grant's
answer to the moment they asked to release it.  The checker asserts that no
two such intervals overlap and that fencing tokens rise in time order.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

import pytest

from httpcall import get, post

pytestmark = pytest.mark.integration

TTL = 5.0


@dataclass
class Use:
    client: str
    token: int
    start: float  # the grant was answered
    end: float  # the client asked to release (its use ended)


def check_history(uses: list[Use]) -> None:
    """No two uses overlap; tokens strictly increase from one use to the next."""
    ordered = sorted(uses, key=lambda u: u.start)
    for before, after in zip(ordered, ordered[1:]):
        assert before.end <= after.start, f"overlapping holds: {before} and {after}"
        assert before.token < after.token or (before.client == after.client and before.token == after.token), (
            f"fencing tokens out of order: {before} then {after}"
        )


def test_checker_catches_overlaps_and_token_inversions():
    good = [Use("a", 5, 0.0, 1.0), Use("b", 9, 1.5, 2.0)]
    check_history(good)
    with pytest.raises(AssertionError, match="overlapping"):
        check_history([Use("a", 5, 0.0, 1.0), Use("b", 9, 0.5, 2.0)])
    with pytest.raises(AssertionError, match="out of order"):
        check_history([Use("a", 9, 0.0, 1.0), Use("b", 5, 1.5, 2.0)])


def contend(cluster, stop: threading.Event, uses: list[Use], name: str, seed: int) -> None:
    rng = random.Random(seed)
    urls = [n.url for n in cluster.nodes.values()]
    while not stop.is_set():
        invoked = time.monotonic()
        status, body = post(
            rng.choice(urls) + "/lock/acquire",
            {"resource": "hot", "client_id": name, "ttl": TTL, "timeout": 3},
            timeout=10,
        )
        if status != 200:
            time.sleep(0.02)
            continue
        start = time.monotonic()
        time.sleep(rng.uniform(0, 0.03))
        end = min(time.monotonic(), invoked + TTL)
        uses.append(Use(name, body["fencing_token"], start, end))
        post(rng.choice(urls) + "/lock/release", {"resource": "hot", "client_id": name}, timeout=10)


def run_contention(cluster, fault) -> list[Use]:
    stop = threading.Event()
    uses: list[Use] = []
    threads = [threading.Thread(target=contend, args=(cluster, stop, uses, f"c{i}", i)) for i in range(6)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.5)  # contention before the fault: this is the workload's duration, not a wait
        fault()
        time.sleep(2.0)  # contention after it
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    return uses


def test_no_two_holders_while_the_leader_is_sigkilled(cluster_factory):
    cluster = cluster_factory(3)
    leader = cluster.wait_for_leader(timeout=15)
    uses = run_contention(cluster, lambda: cluster.nodes[leader].kill())
    cluster.nodes[leader].start()
    assert len(uses) > 20, f"too little progress: {len(uses)} grants"
    check_history(uses)


def test_no_two_holders_while_the_leader_is_sigstopped_and_resumed(cluster_factory):
    cluster = cluster_factory(3)
    leader = cluster.wait_for_leader(timeout=15)

    def pause_then_resume():
        cluster.nodes[leader].pause()
        cluster.wait_for_leader(timeout=10, exclude=[leader])
        cluster.nodes[leader].resume()

    uses = run_contention(cluster, pause_then_resume)
    assert len(uses) > 20, f"too little progress: {len(uses)} grants"
    check_history(uses)


def test_waiting_acquire_survives_a_leader_change(cluster_factory):
    cluster = cluster_factory(3)
    leader = cluster.wait_for_leader(timeout=15)
    follower = next(i for i in cluster.nodes if i != leader)
    url = cluster.nodes[follower].url
    status, held = post(url + "/lock/acquire", {"resource": "x", "client_id": "holder", "ttl": 60})
    assert status == 200
    answer = {}

    def waiter():
        t0 = time.monotonic()
        answer["result"] = post(
            url + "/lock/acquire", {"resource": "x", "client_id": "waiter", "timeout": 20}, timeout=30
        )
        answer["took"] = time.monotonic() - t0

    thread = threading.Thread(target=waiter)
    thread.start()
    cluster.wait_until(lambda: get(url + "/lock/status/x")[1]["waiters"], 10, "the waiter to queue")
    cluster.nodes[leader].kill()
    cluster.wait_for_leader(timeout=10, exclude=[leader])
    assert thread.is_alive(), "the waiting acquire must still be waiting"
    status, _ = post(url + "/lock/release", {"resource": "x", "client_id": "holder"})
    assert status == 200
    thread.join(30)
    status, body = answer["result"]
    assert status == 200 and body["client_id"] == "waiter", body
    assert body["fencing_token"] > held["fencing_token"]
    assert answer["took"] < 20 + 5
    status, st = get(url + "/lock/status/x")
    assert st["holders"] == ["waiter"] and st["waiters"] == []


def test_full_cluster_restart_keeps_the_lock_table(cluster_factory):
    cluster = cluster_factory(3)
    leader = cluster.wait_for_leader(timeout=15)
    url = cluster.nodes[leader].url
    grants = {}
    for i in range(5):
        status, body = post(url + "/lock/acquire", {"resource": f"keep{i}", "client_id": f"c{i}", "ttl": 120})
        assert status == 200
        grants[f"keep{i}"] = body["fencing_token"]
    # A waiter whose request is cut by the crash: it stays in the replicated table.
    # (Its request goes straight to the leader, which dies first: had a forwarding
    # node died first, the leader would rightly have cancelled the orphaned wait.)
    waiter = threading.Thread(
        target=post,
        args=(url + "/lock/acquire", {"resource": "keep0", "client_id": "reader", "mode": "shared", "timeout": 60}),
        kwargs={"timeout": 90},
    )
    waiter.start()
    cluster.wait_until(lambda: get(url + "/lock/status/keep0")[1]["waiters"], 10, "the waiter to queue")
    before = {r: get(url + f"/lock/status/{r}")[1] for r in grants}
    for node_id in sorted(cluster.nodes, key=lambda i: i != leader):
        cluster.nodes[node_id].kill()
    for node in cluster.nodes.values():
        node.start()
    cluster.wait_for_leader(timeout=15)
    after = {r: get(cluster.nodes["node1"].url + f"/lock/status/{r}")[1] for r in grants}
    waiter.join(30)
    assert after == before
    assert after["keep0"]["waiters"] == [{"client_id": "reader", "mode": "shared"}]
