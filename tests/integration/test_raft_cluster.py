"""Raft on real node processes on loopback: elections, failover, restarts, snapshots.

Each test starts its own cluster (and Redis) through ``cluster_factory`` and
kills or pauses processes with real signals.  Every wait has a deadline.
"""

from __future__ import annotations

import time

import pytest

from httpcall import call, get, internal_headers, post, retry_until_ok

pytestmark = pytest.mark.integration


def put(url: str, key: str, value: object) -> int:
    status, body = retry_until_ok("POST", url + "/kv/put", {"key": key, "value": value}, timeout=15)
    assert status == 200, (status, body)
    return body["index"]


def value_at(url: str, key: str) -> object:
    status, body = retry_until_ok("GET", url + f"/kv/get/{key}", timeout=15, ok=(200, 404))
    assert status in (200, 404), (status, body)
    return body["value"] if status == 200 else None


def digests_converge(cluster, ids, timeout: float = 20.0) -> dict[str, str]:
    """Wait until the given nodes applied the same index; return their state digests."""

    def same():
        answers = {i: cluster.nodes[i].get("/debug/digest") for i in ids}
        if any(a is None for a in answers.values()):
            return None
        if len({a["applied"] for a in answers.values()}) != 1:
            return None
        return {i: a["digest"] for i, a in answers.items()}

    return cluster.wait_until(same, timeout, f"{', '.join(ids)} to apply the same index")


def test_three_nodes_elect_one_leader_and_replicate(cluster_factory):
    cluster = cluster_factory(3)
    leader = cluster.wait_for_leader(timeout=15)
    statuses = cluster.statuses()
    assert {s["leader_id"] for s in statuses.values()} == {leader}
    assert sorted(s["role"] for s in statuses.values()) == ["follower", "follower", "leader"]
    assert all(s["peers"] == ["node1", "node2", "node3"] for s in statuses.values())

    follower = next(i for i in cluster.nodes if i != leader)
    index = put(cluster.nodes[follower].url, "greeting", {"hello": "world"})  # forwarded
    assert index > 0
    for node in cluster.nodes.values():
        assert value_at(node.url, "greeting") == {"hello": "world"}
    digests = digests_converge(cluster, list(cluster.nodes))
    assert len(set(digests.values())) == 1


def test_leader_sigkill_new_leader_writes_go_on_and_old_one_catches_up(cluster_factory):
    cluster = cluster_factory(3)
    old = cluster.wait_for_leader(timeout=15)
    for i in range(20):
        put(cluster.nodes[old].url, f"before{i}", i)
    cluster.nodes[old].kill()
    started = time.monotonic()
    new = cluster.wait_for_leader(timeout=10, exclude=[old])
    assert time.monotonic() - started < 5.0, "docs/api.md: a new leader within 5 s"
    survivor = next(i for i in cluster.nodes if i not in (old, new))
    for i in range(20):
        put(cluster.nodes[survivor].url, f"after{i}", i)
    cluster.nodes[old].start()
    digests = digests_converge(cluster, list(cluster.nodes))
    assert len(set(digests.values())) == 1
    assert value_at(cluster.nodes[old].url, "before7") == 7
    assert value_at(cluster.nodes[old].url, "after19") == 19


def test_whole_cluster_sigkill_and_restart_keeps_every_committed_write(cluster_factory):
    cluster = cluster_factory(3)
    leader = cluster.wait_for_leader(timeout=15)
    acked = {f"k{i}": i for i in range(50)}
    for key, value in acked.items():
        put(cluster.nodes[leader].url, key, value)
    for node in cluster.nodes.values():
        node.kill()
    for node in cluster.nodes.values():
        node.start()
    cluster.wait_for_leader(timeout=15)
    url = cluster.nodes["node1"].url
    for key, value in acked.items():
        assert value_at(url, key) == value


def test_sigstop_leader_steps_down_after_sigcont_and_nothing_diverges(cluster_factory):
    cluster = cluster_factory(3)
    old = cluster.wait_for_leader(timeout=15)
    put(cluster.nodes[old].url, "x", 1)
    cluster.nodes[old].pause()
    try:
        new = cluster.wait_for_leader(timeout=10, exclude=[old])
        survivor = next(i for i in cluster.nodes if i not in (old, new))
        for i in range(10):
            put(cluster.nodes[survivor].url, "x", 100 + i)
    finally:
        cluster.nodes[old].resume()

    def old_stepped_down():
        s = cluster.nodes[old].status()
        return s is not None and s["role"] == "follower" and s["leader_id"] == new

    cluster.wait_until(old_stepped_down, 10, f"{old} to follow {new}")
    digests = digests_converge(cluster, list(cluster.nodes))
    assert len(set(digests.values())) == 1
    assert value_at(cluster.nodes[old].url, "x") == 109


def test_five_nodes_tolerate_two_dead(cluster_factory):
    cluster = cluster_factory(5)
    leader = cluster.wait_for_leader(timeout=15)
    followers = [i for i in cluster.nodes if i != leader]
    cluster.nodes[followers[0]].kill()
    cluster.nodes[leader].kill()
    live = [i for i in cluster.nodes if i not in (followers[0], leader)]
    new = cluster.wait_for_leader(timeout=10, exclude=[leader])
    assert new in live
    for i in range(10):
        put(cluster.nodes[live[-1]].url, f"five{i}", i)
    assert value_at(cluster.nodes[live[0]].url, "five9") == 9


def test_far_behind_follower_is_brought_up_by_snapshot(cluster_factory):
    cluster = cluster_factory(3, extra_args=["--snapshot-entries", "40"])
    leader = cluster.wait_for_leader(timeout=15)
    lagger = next(i for i in cluster.nodes if i != leader)
    cluster.nodes[lagger].kill()
    for i in range(150):
        put(cluster.nodes[leader].url, f"s{i % 30}", i)
    status = cluster.nodes[leader].status()
    assert status["snapshot_index"] > 0, "the leader compacted its log"
    cluster.nodes[lagger].start()
    digests = digests_converge(cluster, list(cluster.nodes))
    assert len(set(digests.values())) == 1
    _, metrics = call("GET", cluster.nodes[lagger].url + "/metrics")
    installed = [line for line in metrics.splitlines() if line.startswith("rakit_raft_snapshots_installed_total")]
    assert installed and float(installed[0].split()[-1]) >= 1, installed


def test_reads_and_writes_answer_bad_input_with_json_errors(cluster_factory):
    cluster = cluster_factory(1)
    cluster.wait_for_leader(timeout=15)
    url = cluster.nodes["node1"].url
    cases = [
        (post(url + "/kv/put", {"key": "a"}), 422, "invalid_request"),
        (post(url + "/kv/put", {"key": "bad key!", "value": 1}), 422, "invalid_request"),
        (post(url + "/kv/put", {"key": 5, "value": 1}), 422, "invalid_request"),
        (post(url + "/kv/incr", {"key": "a", "delta": "5"}), 422, "invalid_request"),
        (post(url + "/kv/incr", {"key": "a", "delta": True}), 422, "invalid_request"),
        (post(url + "/kv/put", {"key": "big", "value": "x" * (1024 * 1024 + 10)}), 413, "too_large"),
        (get(url + "/kv/get/" + "k" * 129), 422, "invalid_request"),
        (get(url + "/kv/get/missing"), 404, "not_found"),
        (get(url + "/no/such/path"), 404, "not_found"),
        (get(url + "/kv/put"), 405, "method_not_allowed"),
    ]
    cases.append((call("POST", url + "/kv/put", raw=b"{not json"), 422, "invalid_request"))
    garbage = b"\x93garbage"  # signed with the cluster's secret: this checks the endpoint, not the auth
    cases.append(
        (
            call(
                "POST",
                url + "/append_entries",
                raw=garbage,
                headers=internal_headers(cluster.cluster_secret, "node1", "POST", "/append_entries", garbage),
            ),
            422,
            "invalid_request",
        )
    )
    for (status, body), want_status, want_code in cases:
        assert status == want_status, (status, body)
        assert body["error"] == want_code and isinstance(body["detail"], str), body
    # Nothing changed: a put after all that is at the next index.
    ok, answer = post(url + "/kv/put", {"key": "a", "value": 1})
    assert ok == 200 and isinstance(answer["index"], int)
