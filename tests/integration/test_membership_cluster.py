"""Membership changes on real node processes: join as a learner, promote, remove, shrink back.

Grows 3 -> 5 with ``rakit node --join`` and promotions while a writer keeps
committing and the chaos suite's lock clients keep locking, checks every
change's refusals, then removes nodes (the leader
among them, after a transfer) down to 3, and checks that no committed write
was lost and every member converged.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from httpcall import call, get, post, retry_until_ok
from rakit.launcher import NodeProcess, free_port

pytestmark = pytest.mark.integration


class Writer(threading.Thread):
    """Commits kv writes through the given nodes until stopped; records acknowledged values and the longest gap."""

    def __init__(self, urls: list[str]) -> None:
        super().__init__(daemon=True)
        self.urls = urls
        self.acked: list[int] = []
        self.ack_times: list[float] = []
        self.longest_gap = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        n, last = 0, time.monotonic()
        while not self.stop.is_set():
            n += 1
            status, _ = post(self.urls[n % len(self.urls)] + "/kv/put", {"key": f"w{n}", "value": n}, timeout=3)
            if status == 200:
                now = time.monotonic()
                self.longest_gap = max(self.longest_gap, now - last)
                last = now
                self.acked.append(n)
                self.ack_times.append(now)
            else:
                time.sleep(0.02)


def longest_gap(times: list[float], start: float, end: float) -> float:
    """The longest stretch of [start, end] without an acknowledged write."""
    inside = [start, *[t for t in times if start < t < end], end]
    return max(b - a for a, b in zip(inside, inside[1:], strict=False))


def next_ack(cluster, writer: Writer, after: float) -> float:
    """When the writer next got a write acknowledged after ``after`` (waits for it)."""
    return cluster.wait_until(
        lambda: next((t for t in writer.ack_times if t > after), None), 15, "a write acknowledged after the change"
    )


def members(url: str) -> dict:
    status, body = get(url + "/cluster/members")
    assert status == 200, body
    return body


_JOINED: list[NodeProcess] = []


@pytest.fixture(autouse=True)
def _stop_joiners():
    """Every node ``start_joiner`` started is gone after its test, whatever the test did."""
    yield
    while _JOINED:
        _JOINED.pop().kill()


def start_joiner(cluster, node_id: str, tmp_path) -> NodeProcess:
    port = free_port()
    seed = next(n.url for n in cluster.nodes.values() if n.alive)
    node = NodeProcess(
        node_id,
        port,
        {node_id: f"http://127.0.0.1:{port}"},
        cluster.redis_url,
        tmp_path / node_id,
        log_path=tmp_path / "logs" / f"{node_id}.log",
        extra_args=["--join", seed],
        env={"CLUSTER_SECRET": cluster.cluster_secret or ""},
    )
    _JOINED.append(node)
    node.start()
    node.wait_healthy(timeout=30)
    return node


def wait_caught_up(cluster, node_id: str, timeout: float = 20.0) -> None:
    def ready():
        leader = cluster.leader()
        if leader is None:
            return False
        view = members(cluster.nodes[leader].url)
        return any(m["id"] == node_id and m.get("caught_up") for m in view["learners"])

    cluster.wait_until(ready, timeout, f"{node_id} to catch up")


def test_grow_to_five_and_shrink_back_to_three_under_writes(cluster_factory, tmp_path):
    from rakit.chaos.checkers import check_locks

    cluster = cluster_factory(3)
    leader = cluster.wait_for_leader(timeout=15)
    writer = Writer([n.url for n in cluster.nodes.values()])
    writer.start()
    stop_locks, lock_ops, live = threading.Event(), [], []
    locks = threading.Thread(target=run_lock_workload, args=(cluster.urls, stop_locks, lock_ops, live), daemon=True)
    locks.start()
    joined: dict[str, NodeProcess] = {}
    phases: list[tuple[str, float, float]] = []
    try:
        for node_id in ("node4", "node5"):
            began = time.monotonic()
            joined[node_id] = start_joiner(cluster, node_id, tmp_path)
            view = members(cluster.nodes[leader].url)
            assert node_id in [m["id"] for m in view["learners"]], view
            assert node_id not in [m["id"] for m in view["voters"]]
            # A second add of the same id, or of another id at the same URL, is refused.
            status, body = call(
                "POST",
                cluster.nodes[leader].url + "/cluster/members",
                {"id": node_id, "url": joined[node_id].url},
                secret=cluster.cluster_secret,
            )
            assert status == 409 and body["error"] == "member_exists", body
            status, body = call(
                "POST",
                cluster.nodes[leader].url + "/cluster/members",
                {"id": "node9", "url": joined[node_id].url},
                secret=cluster.cluster_secret,
            )
            assert status == 409 and body["error"] == "member_exists", body
            wait_caught_up(cluster, node_id)
            status, body = retry_until_ok(
                "POST",
                cluster.nodes[leader].url + f"/cluster/members/{node_id}/promote",
                timeout=15,
                secret=cluster.cluster_secret,
            )
            assert status == 200 and node_id in body["voters"], body
            phases.append(
                (f"add {node_id} as learner, catch up, promote", began, next_ack(cluster, writer, time.monotonic()))
            )
            leader = cluster.wait_for_leader(timeout=10)
        view = members(joined["node5"].url)
        assert sorted(m["id"] for m in view["voters"]) == ["node1", "node2", "node3", "node4", "node5"]
        status, body = call(
            "POST", joined["node4"].url + "/cluster/members/node4/promote", {}, secret=cluster.cluster_secret
        )
        assert status == 409 and body["error"] == "already_voter", body
        # Status, the dashboard's overview and the metrics follow the configuration.
        status, body = get(cluster.nodes["node1"].url + "/status")
        assert sorted(body["peers"]) == ["node1", "node2", "node3", "node4", "node5"] and body["learners"] == []
        status, body = get(joined["node5"].url + "/cluster/overview")
        assert status == 200 and sorted(n["node_id"] for n in body["nodes"]) == sorted(
            body_ids := ["node1", "node2", "node3", "node4", "node5"]
        ), body_ids
        status, text = call("GET", joined["node4"].url + "/metrics")
        assert "rakit_raft_voters 5.0" in text and "rakit_raft_learners 0.0" in text

        # The joined nodes serve: a write through node5 commits, reads there see it.
        status, body = retry_until_ok("POST", joined["node5"].url + "/kv/put", {"key": "via5", "value": 5}, timeout=10)
        assert status == 200, body
        status, body = retry_until_ok("GET", joined["node4"].url + "/kv/get/via5", timeout=10)
        assert status == 200 and body["value"] == 5, body

        # The lock clients make progress in the grown cluster (a count waited for, not timed).
        wait_for_grants(cluster, live, 5, "locks granted by the 5-node cluster")

        # Shrink: move leadership to node4, remove the old leader, then node5 and node4.
        old = cluster.wait_for_leader(timeout=10)
        began = time.monotonic()
        status, body = call(
            "POST", cluster.nodes[old].url + "/cluster/transfer-leader", {"to": "node4"}, secret=cluster.cluster_secret
        )
        assert status == 200 and body["leader"] == "node4", body
        phases.append(("transfer leadership", began, next_ack(cluster, writer, time.monotonic())))
        for gone in (old, "node5", "node4"):
            asked = (
                joined["node4"].url if gone != "node4" else next(n.url for i, n in cluster.nodes.items() if i != old)
            )
            began = time.monotonic()
            status, body = retry_until_ok(
                "DELETE", asked + f"/cluster/members/{gone}", timeout=15, secret=cluster.cluster_secret
            )
            assert status == 200 and gone not in body["voters"] + body["learners"], body
            phases.append(
                (
                    f"remove {gone}" + (" (the leader)" if gone == "node4" else ""),
                    began,
                    next_ack(cluster, writer, time.monotonic()),
                )
            )
            # As an operator would: stop a removed node (the leader stops replicating to it, so it
            # never learns it was removed; until stopped, pre-vote keeps it from disrupting anyone).
            (joined.get(gone) or cluster.nodes[gone]).stop()
        remaining = sorted(i for i in cluster.nodes if i != old)
        survivor = cluster.nodes[remaining[0]].url
        cluster.wait_until(lambda: members(survivor)["leader"] in remaining, 15, "a leader among the remaining")
        view = members(survivor)
        assert sorted(m["id"] for m in view["voters"]) == remaining and view["learners"] == []
        status, body = retry_until_ok("POST", survivor + "/kv/put", {"key": "after", "value": 1}, timeout=10)
        assert status == 200, body
        wait_for_grants(cluster, live, 5, "locks granted after the shrink back to three")
        # Down to one voter, then the last one cannot be removed.
        status, body = retry_until_ok(
            "DELETE", survivor + f"/cluster/members/{remaining[0]}", timeout=15, secret=cluster.cluster_secret
        )
        assert status == 200 and body["voters"] == [remaining[1]], body
        cluster.nodes[remaining[0]].stop()
        last_url = cluster.nodes[remaining[1]].url
        cluster.wait_until(lambda: members(last_url)["leader"] == remaining[1], 15, "the last voter to lead")
        status, body = call("DELETE", last_url + f"/cluster/members/{remaining[1]}", secret=cluster.cluster_secret)
        assert status == 409 and body["error"] == "last_voter", body
    finally:
        writer.stop.set()
        writer.join(10)
        stop_locks.set()
        locks.join(30)
        for node in joined.values():
            node.stop()
    assert len(writer.acked) > 20
    # The chaos suite's lock checker: mutual exclusion and rising fencing tokens held throughout.
    verdict = check_locks(lock_ops)
    assert verdict.valid, verdict.violations[:5]
    assert verdict.stats["acquire_ok"] >= 10, verdict.stats  # the two waits above saw at least 10 grants
    # Every acknowledged write is still there, read through the last voter.
    last = last_url
    for n in writer.acked[:: max(1, len(writer.acked) // 25)]:
        status, body = retry_until_ok("GET", last + f"/kv/get/w{n}", timeout=10)
        assert status == 200 and body["value"] == n, (n, status, body)
    gaps = {name: longest_gap(writer.ack_times, a, b) for name, a, b in phases}
    for name, gap in gaps.items():
        print(f"longest write gap, {name}: {gap * 1000:.0f} ms")
    # Adding a learner and promoting it never stops writes (a gap is one slow write at most here).
    assert all(gap < 1.0 for name, gap in gaps.items() if name.startswith("add")), gaps
    assert gaps["transfer leadership"] < 1.0, gaps
    assert gaps["remove node4 (the leader)"] < 1.0, gaps  # handed over first, no election


def run_lock_workload(urls: dict[str, str], stop: threading.Event, out: list, live: list | None = None) -> None:
    """The chaos suite's lock clients (recorded history), in a thread of their own until ``stop``;
    ``live`` gets the recorder at once (``grants`` counts what it holds so far)."""
    import asyncio

    import aiohttp

    from rakit.chaos import workloads as wl

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            ctx = wl.Context(session, urls, wl.Recorder(), asyncio.Event(), seed=3)
            if live is not None:
                live.append(ctx.recorder)
            tasks = wl.start(ctx, ["locks"], wl.Settings())
            while not stop.is_set():
                await asyncio.sleep(0.05)
            ctx.stop.set()
            await asyncio.wait(tasks, timeout=15)
            out.extend(ctx.recorder.ops)

    asyncio.run(main())


def grants(live: list) -> int:
    """Locks granted so far by the workload whose recorder is in ``live``."""
    return sum(1 for op in list(live[0].ops) if op.f == "acquire" and op.type == "ok") if live else 0


def wait_for_grants(cluster, live: list, more: int, what: str) -> None:
    target = grants(live) + more
    cluster.wait_until(lambda: grants(live) >= target, 30, what)


def test_replace_a_killed_node_under_lock_load_and_drive_it_from_the_cli(cluster_factory, tmp_path):
    import subprocess
    import sys

    from rakit.chaos.checkers import check_locks

    cluster = cluster_factory(3)
    cluster.wait_for_leader(timeout=15)
    stop, ops, live = threading.Event(), [], []
    load = threading.Thread(target=run_lock_workload, args=(cluster.urls, stop, ops, live), daemon=True)
    load.start()
    try:
        wait_for_grants(cluster, live, 10, "the lock clients to get going")
        dead = next(i for i in cluster.nodes if i != cluster.wait_for_leader(timeout=10))
        cluster.nodes[dead].kill()  # the machine is gone for good: a fresh node replaces it
        node4 = start_joiner(cluster, "node4", tmp_path)
        wait_caught_up(cluster, "node4")
        nodes = ",".join(n.url for i, n in cluster.nodes.items() if i != dead)
        cli = [sys.executable, "-m", "rakit"]
        env = {**os.environ, "CLUSTER_SECRET": cluster.cluster_secret}
        done = subprocess.run(
            [*cli, "member", "promote", "node4", "--nodes", nodes, "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        done = subprocess.run(
            [*cli, "member", "remove", dead, "--nodes", nodes, "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        done = subprocess.run(
            [*cli, "member", "list", "--nodes", node4.url, "--json"], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        import json

        view = json.loads(done.stdout)
        assert sorted(m["id"] for m in view["voters"]) == sorted([*(i for i in cluster.nodes if i != dead), "node4"])
        done = subprocess.run(
            [*cli, "transfer-leader", "--to", "node4", "--nodes", nodes, "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert done.returncode == 0 and json.loads(done.stdout)["leader"] == "node4", done.stderr
        wait_for_grants(cluster, live, 15, "locks granted with node4 as the leader")
    finally:
        stop.set()
        load.join(30)
        if "node4" in locals():
            node4.stop()
    verdict = check_locks(ops)
    assert verdict.valid, verdict.violations[:5]
    assert verdict.stats["acquire_ok"] > 20


def test_transfer_then_restart_the_old_leader_without_an_election_storm(cluster_factory):
    """A planned restart of the leader: hand over, restart it, nobody else's term moves; locks stay safe."""
    from rakit.chaos.checkers import check_locks

    cluster = cluster_factory(3)
    old = cluster.wait_for_leader(timeout=15)
    stop, ops, live = threading.Event(), [], []
    load = threading.Thread(target=run_lock_workload, args=(cluster.urls, stop, ops, live), daemon=True)
    load.start()
    try:
        wait_for_grants(cluster, live, 10, "the lock clients to get going")
        status, body = call(
            "POST", cluster.nodes[old].url + "/cluster/transfer-leader", {}, secret=cluster.cluster_secret
        )
        assert status == 200 and body["leader"] != old, body
        new = body["leader"]
        term = cluster.statuses()[new]["term"]
        cluster.nodes[old].restart()  # SIGTERM, start again on the same data dir
        cluster.nodes[old].wait_healthy(timeout=20)

        def rejoined():
            s = cluster.nodes[old].status()
            return s is not None and s["role"] == "follower" and s["leader_id"] == new

        cluster.wait_until(rejoined, 15, f"{old} to follow {new} again")
        # A returning node with pre-vote must not depose the leader: locks go on being granted
        # (over a second or more) and nobody's term moves meanwhile.
        wait_for_grants(cluster, live, 15, "locks granted after the restart")
        statuses = cluster.statuses()
        assert {s["term"] for s in statuses.values()} == {term}, statuses
        assert cluster.leader() == new
    finally:
        stop.set()
        load.join(30)
    verdict = check_locks(ops)
    assert verdict.valid, verdict.violations[:5]
    assert verdict.stats["acquire_ok"] > 20


def cache_stats(url: str) -> dict:
    status, body = get(url + "/cache/stats", timeout=5)
    assert status == 200, body
    return body


def cache_put(url: str, key: str, value: str) -> None:
    status, body = retry_until_ok("POST", url + "/cache/set", {"key": key, "value": value}, timeout=15)
    assert status == 200, body


def cache_read(url: str, key: str) -> tuple[int, object]:
    status, body = get(url + f"/cache/get/{key}", timeout=5)
    return status, body.get("value") if status == 200 else body


def test_the_cache_follows_membership(cluster_factory, tmp_path):
    """A joined node's cache takes part in write-invalidate; a removed one stops serving; a change
    waits until the previous one reached every staying member's cache."""
    cluster = cluster_factory(3)
    leader = cluster.wait_for_leader(timeout=15)
    urls = {i: n.url for i, n in cluster.nodes.items()}
    cache_put(urls["node1"], "k", "v1")
    # node3 stops before node4 joins: it last reported the generation node4's add starts from.
    cluster.nodes["node3"].pause()
    try:
        node4 = start_joiner(cluster, "node4", tmp_path)
        view = members(urls[leader] if leader != "node3" else urls["node1"])
        generation = cache_stats(urls["node1"])["generation"]
        assert generation > 0 and sorted(cache_stats(urls["node1"])["members"]) == [
            "node1",
            "node2",
            "node3",
            "node4",
        ], view

        # The new node serves once it has adopted the generation and holds leases on a majority.
        cluster.wait_until(lambda: cache_stats(node4.url)["serving"], 20, "node4's cache to serve")
        stats4 = cache_stats(node4.url)
        assert stats4["generation"] == generation and stats4["size"] == 0
        cache_put(urls["node1"], "k", "v2")
        assert cache_read(node4.url, "k") == (200, "v2")  # fetched from a peer, now held by node4
        received = cache_stats(node4.url)["invalidations_received"]
        cache_put(urls["node2"], "k", "v3")  # must invalidate node4's copy before it answers
        assert cache_stats(node4.url)["invalidations_received"] > received
        assert cache_read(node4.url, "k") == (200, "v3")
        cache_put(node4.url, "k", "v4")  # and node4's own writes invalidate the others
        assert cache_read(urls["node1"], "k") == (200, "v4")

        # node3 never heard the new generation: another add waits for it, then is refused.
        status, body = call(
            "POST",
            urls["node1"] + "/cluster/members",
            {"id": "node5", "url": "http://127.0.0.1:9"},
            timeout=20,
            secret=cluster.cluster_secret,
        )
        if status == 503:  # node1 relayed to a leader; the answer is the leader's
            status, body = call(
                "POST",
                urls[cluster.wait_for_leader(timeout=10)] + "/cluster/members",
                {"id": "node5", "url": "http://127.0.0.1:9"},
                timeout=20,
                secret=cluster.cluster_secret,
            )
        assert status == 409 and body["error"] == "conf_change_in_progress" and "node3" in body["detail"], body
        assert "node5" not in [m["id"] for m in members(urls["node1"])["learners"]]
    finally:
        cluster.nodes["node3"].resume()
    cluster.wait_until(
        lambda: cache_stats(urls["node3"])["generation"] == generation, 20, "node3 to adopt the new generation"
    )
    cluster.wait_until(lambda: cache_stats(urls["node3"])["serving"], 20, "node3's cache to serve again")
    assert cache_read(urls["node3"], "k") == (200, "v4")

    # Removing node4: the others' writes stop waiting for it, and it stops serving.
    status, body = retry_until_ok(
        "DELETE", urls["node1"] + "/cluster/members/node4", timeout=20, secret=cluster.cluster_secret
    )
    assert status == 200 and "node4" not in body["voters"] + body["learners"], body
    cluster.wait_until(lambda: not cache_stats(node4.url)["serving"], 10, "node4's cache to stop serving")
    cluster.wait_until(
        lambda: all(cache_stats(u)["serving"] and "node4" not in cache_stats(u)["members"] for u in urls.values()),
        20,
        "the others to serve without node4",
    )
    node4.stop()
    began = time.monotonic()
    cache_put(urls["node2"], "k", "v5")
    assert time.monotonic() - began < 1.0  # no fence wait for a node that is no longer a member
    assert all(cache_read(u, "k") == (200, "v5") for u in urls.values())
