"""Per-token rate limits and lock quotas on a real cluster (security finding 10)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from httpcall import call

pytestmark = pytest.mark.integration

SECRET = "quota-cluster-secret-0123456789"
LIMITED = "limited-token-0123456789abcdef"
FREE = "free-token-0123456789abcdef0123"


def req(method: str, url: str, token: str, body: Any = None) -> tuple[int, Any, float]:
    started = time.monotonic()
    status, answer = call(method, url, body, headers={"Authorization": f"Bearer {token}"})
    return status, answer, time.monotonic() - started


def test_a_token_over_its_rate_gets_429_and_over_its_quota_409(cluster_factory: Any, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(
        json.dumps(
            {
                "tokens": [
                    {"name": "limited", "token": LIMITED, "grants": ["*"], "rate": 2, "burst": 6, "max_locks": 2},
                    {"name": "free", "token": FREE, "grants": ["*"]},
                ]
            }
        )
    )
    cluster = cluster_factory(3, env={"CLUSTER_SECRET": SECRET, "AUTH_TOKENS": str(tokens)})

    def agreed() -> str | None:
        seen = {req("GET", n.url + "/status", FREE)[1].get("leader_id") for n in cluster.nodes.values()}
        return seen.pop() if len(seen) == 1 and None not in seen else None

    leader = cluster.wait_until(agreed, 15, "a leader every node knows")
    follower = next(n.url for i, n in cluster.nodes.items() if i != leader)

    # Through a follower: 6 requests fit the burst (the leader does not count the relays again).
    answers = [
        req("POST", follower + "/lock/acquire", LIMITED, {"resource": f"r{i}", "client_id": "c"}) for i in range(2)
    ]
    assert [a[0] for a in answers] == [200, 200]
    status, refused, _ = req("POST", follower + "/lock/acquire", LIMITED, {"resource": "r2", "client_id": "c"})
    assert (status, refused["error"]) == (409, "quota"), refused  # max_locks 2: nothing changed
    assert "max_locks" in refused["detail"]
    for _ in range(3):
        assert req("GET", follower + "/lock/status/r0", LIMITED)[0] == 200
    status, limited, _ = req("GET", follower + "/lock/status/r0", LIMITED)
    assert (status, limited["error"]) == (429, "rate_limited"), limited
    assert 0 < limited["retry_after"] <= 0.5 + 0.1
    request = urllib.request.Request(follower + "/lock/status/r0", headers={"Authorization": f"Bearer {LIMITED}"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 429 and info.value.headers["Retry-After"] == "1"
    assert req("GET", follower + "/lock/status/r0", FREE)[0] == 200  # another token is not limited
    assert req("GET", cluster.nodes[leader].url + "/lock/status/r0", LIMITED)[0] == 200  # per node

    time.sleep(limited["retry_after"])  # the wait the node asked for, not a guess: then it serves
    assert req("POST", follower + "/lock/release", LIMITED, {"resource": "r0", "client_id": "c"})[0] == 200
