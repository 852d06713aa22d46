"""``rakit recover``: a cluster that lost its majority for good starts again from one node's data dir."""

from __future__ import annotations

import subprocess
import sys

import pytest

from httpcall import call, get
from rakit.launcher import LocalCluster, NodeProcess, wait_until

pytestmark = pytest.mark.integration


@pytest.mark.quick
def test_a_lost_cluster_is_recovered_from_one_node_with_all_it_applied(tmp_path):
    cluster = LocalCluster(3, tmp_path / "c")
    try:
        cluster.start()
        leader = cluster.wait_for_leader()
        url = cluster.nodes[leader].url
        for i in range(30):
            assert call("POST", url + "/kv/put", {"key": f"k{i}", "value": {"n": i}})[0] == 200
        status, grant = call("POST", url + "/lock/acquire", {"resource": "job", "client_id": "w1", "ttl": 60})
        assert status == 200 and grant["acquired"]
        survivor = next(n for n in cluster.nodes if n != leader)
        node = cluster.nodes[survivor]
        commit = cluster.nodes[leader].status()["commit_index"]
        wait_until(lambda: (s := node.status()) and s["last_applied"] >= commit, 10, "the survivor to apply the writes")
        assert get(node.url + "/lock/status/job")[1]["holders"] == ["w1"]
        for n in cluster.nodes.values():  # the majority is lost for good; the survivor is stopped
            n.kill()

        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "rakit",
                "recover",
                "--id",
                survivor,
                "--data-dir",
                str(node.data_dir),
                "--url",
                node.url,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "one-member cluster" in done.stdout and "before-recover" in done.stdout
        assert list(node.data_dir.glob("raft.wal.before-recover-*"))  # the old log is kept

        alone = NodeProcess(
            survivor,
            node.port,
            {survivor: node.url},
            cluster.redis_url,
            node.data_dir,
            log_path=tmp_path / "alone.log",
            env=node.env,
        )
        alone.start()
        try:
            wait_until(
                lambda: (s := alone.status()) and s["role"] == "leader" and s, 20, "the recovered node to lead alone"
            )
            assert get(node.url + "/kv/get/k29")[1]["value"] == {"n": 29}
            status, held = get(node.url + "/lock/status/job")
            assert status == 200 and held["holders"] == ["w1"]
            assert call("POST", node.url + "/kv/put", {"key": "after", "value": 1})[0] == 200
            assert alone.status()["peers"] == [survivor]
        finally:
            alone.stop()
    finally:
        cluster.close()


def test_recover_refuses_an_empty_data_dir_in_one_line(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rakit",
            "recover",
            "--id",
            "node1",
            "--data-dir",
            str(tmp_path / "empty"),
            "--url",
            "http://127.0.0.1:8001",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and "no Raft state" in lines[0], done.stderr
