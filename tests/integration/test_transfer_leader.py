"""Leadership transfer (TimeoutNow) on real node processes: hand-over, refusals, writes right after."""

from __future__ import annotations

import pytest

from httpcall import call, retry_until_ok

pytestmark = pytest.mark.integration


def test_transfer_to_a_chosen_voter_then_back_by_default(cluster_factory):
    cluster = cluster_factory(3)
    old = cluster.wait_for_leader(timeout=15)
    target = next(i for i in sorted(cluster.nodes) if i != old)
    other = next(i for i in sorted(cluster.nodes) if i not in (old, target))

    # Asked at a follower that is not the target: relayed to the leader.
    status, body = call(
        "POST", cluster.nodes[other].url + "/cluster/transfer-leader", {"to": target}, secret=cluster.cluster_secret
    )
    assert status == 200, body
    assert body["leader"] == target and body["previous"] == old
    assert body["took_ms"] < 2000
    assert cluster.wait_for_leader(timeout=5) == target
    terms = {s["term"] for s in cluster.statuses().values() if s}
    assert len(terms) == 1  # one election, everyone in the new term

    # Writes go on at once through any node.
    status, body = retry_until_ok("POST", cluster.nodes[old].url + "/kv/put", {"key": "k", "value": 1}, timeout=10)
    assert status == 200, body

    # No target: the most caught-up other voter.
    status, body = call(
        "POST", cluster.nodes[target].url + "/cluster/transfer-leader", {}, secret=cluster.cluster_secret
    )
    assert status == 200, body
    assert body["previous"] == target and body["leader"] != target
    assert cluster.wait_for_leader(timeout=5) == body["leader"]


def test_transfer_refusals_change_nothing(cluster_factory):
    cluster = cluster_factory(3)
    leader = cluster.wait_for_leader(timeout=15)
    url = cluster.nodes[leader].url
    status, body = call("POST", url + "/cluster/transfer-leader", {"to": "node9"}, secret=cluster.cluster_secret)
    assert status == 409 and body["error"] == "not_a_voter", body
    status, body = call("POST", url + "/cluster/transfer-leader", {"to": "not a name!"}, secret=cluster.cluster_secret)
    assert status == 422 and body["error"] == "invalid_request", body
    status, body = call(
        "POST", url + "/cluster/transfer-leader", {"to": leader}, secret=cluster.cluster_secret
    )  # already leads
    assert status == 200 and body["leader"] == leader, body
    assert cluster.leader() == leader
