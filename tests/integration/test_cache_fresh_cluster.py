"""A cluster that has just started serves its cache as soon as it has a leader.

Before: a new 5-node cluster answered ``POST /cache/set`` with ``503`` ("the
cluster's membership just changed") for about 3.3 s after start, the mute a
restart after a membership change needs.  A first start from ``--peers`` has
no earlier configuration whose leases must run out.
"""

from __future__ import annotations

import time

import pytest

from httpcall import call
from rakit.launcher import LocalCluster

pytestmark = pytest.mark.integration

MUTE = 3.3  # seconds the cache stayed silent after start before the fix
SERVE_WITHIN = 1.0  # seconds after the leader is agreed (measured: 0.01-0.03 s; 1.5-1.9 s before the fix)


@pytest.mark.quick
@pytest.mark.parametrize("size", [3, 5])
def test_a_fresh_cluster_serves_the_cache_once_it_has_a_leader(size, tmp_path):
    cluster = LocalCluster(size, tmp_path / "c")
    try:
        cluster.start(wait=False)
        cluster.wait_for_leader(timeout=30)
        t0 = time.monotonic()
        for node in cluster.nodes.values():
            cluster.wait_until(
                lambda n=node: call("POST", n.url + "/cache/set", {"key": f"k-{n.node_id}", "value": 1})[0] == 200,
                MUTE,
                f"{node.node_id}'s cache to serve",
            )
        took = time.monotonic() - t0
        print(f"every cache served {took:.2f} s after the leader was agreed")
        assert took < SERVE_WITHIN, f"the caches served {took:.2f} s after the leader was agreed"
        for node in cluster.nodes.values():
            status, body = call("GET", node.url + f"/cache/get/k-{node.node_id}")
            assert status == 200 and body["value"] == 1
    finally:
        cluster.close()
