"""``GET /cluster/consistency`` finds a replica whose log was altered on disk, which Raft alone cannot see."""

from __future__ import annotations

import pytest

from httpcall import call, get
from rakit.storage.file_store import FileLogStore, create_from

pytestmark = pytest.mark.integration


def test_a_replica_with_an_altered_entry_is_reported_diverged(cluster_factory):
    cluster = cluster_factory(3)
    leader = cluster.wait_for_leader(timeout=15)
    url = cluster.nodes[leader].url
    for i in range(300):
        assert call("POST", url + "/kv/put", {"key": f"k{i}", "value": i})[0] == 200
    commit = cluster.nodes[leader].status()["commit_index"]
    cluster.wait_until(
        lambda: all((s := n.status()) and s["last_applied"] >= commit for n in cluster.nodes.values()),
        10,
        "every replica to apply the writes",
    )
    status, report = get(url + "/cluster/consistency")
    assert status == 200 and report["consistent"] is True and report["checked"] == 256, report
    assert report["diverged"] == [] and set(report["nodes"]) == set(cluster.nodes)

    # A follower's disk changes one entry's bytes in a well-formed way (checksums recomputed): its
    # terms still match, so Raft replicates on as if nothing happened.
    follower = next(n for n in cluster.nodes if n != leader)
    node = cluster.nodes[follower]
    node.stop()
    wal = node.data_dir / "raft.wal"
    store = FileLogStore(wal)
    state = store.load()
    store.close()
    altered = next(e for e in state.entries if e.index == 100)
    state.entries[state.entries.index(altered)] = type(altered)(
        altered.term, altered.index, altered.kind, altered.data.replace(b"k", b"K", 1)
    )
    wal.unlink()
    create_from(wal, state)
    node.start()
    node.wait_healthy(20)
    cluster.wait_until(lambda: (s := node.status()) and s["last_applied"] >= commit, 20, "the follower to replay")

    for n in cluster.nodes.values():
        status, report = get(n.url + "/cluster/consistency")
        assert status == 200 and report["consistent"] is False and report["diverged"] == [follower], report
