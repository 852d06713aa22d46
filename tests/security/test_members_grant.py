"""With client tokens on, membership changes need the cluster secret *and* a token with ``members``.

Security finding 1, its last part: ``admin`` is the read grant of the
metrics and the dashboard, never enough to change who is in the cluster; an
operator's signed call also names a token with the ``members`` grant; a node
joining with ``--join`` (signed as itself, no token) may add only itself.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from httpcall import call, get
from rakit.launcher import NodeProcess, free_port
from rakit.security.internal import OPERATOR_CALLER, InternalAuth

pytestmark = pytest.mark.integration

SECRET = "members-grant-cluster-secret-01"
OPS = "ops-token-0123456789abcdef012"  # admin: read only
MEMBERS = "members-token-0123456789abcdef"  # members
TOKENS = {
    "tokens": [
        {"name": "ops", "token": OPS, "grants": ["admin", "status"]},
        {"name": "sre", "token": MEMBERS, "grants": ["members", "status"]},
    ]
}


def signed(method: str, url: str, body: Any, caller: str, token: str | None = None) -> tuple[int, Any]:
    """A call signed with the secret, naming ``caller`` (an operator, or a node speaking for itself)."""
    base, _, path = url.partition("/cluster")
    _, health = get(base + "/health")
    data = json.dumps(body).encode() if body is not None else b""
    headers = InternalAuth(SECRET, caller).headers(method, "/cluster" + path, data, dst=health["node_id"])
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return call(method, url, raw=data if body is not None else None, headers=headers)


def leader_of(cluster: Any, timeout: float = 15.0) -> str:
    """The leader's id, asking /status with a token (the launcher's own check has none)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        roles = {}
        for node_id, node in cluster.nodes.items():
            status, body = call("GET", node.url + "/status", headers={"Authorization": f"Bearer {OPS}"}, timeout=2)
            roles[node_id] = body.get("role") if status == 200 and isinstance(body, dict) else None
        leaders = [n for n, role in roles.items() if role == "leader"]
        if len(leaders) == 1:
            return leaders[0]
        time.sleep(0.1)
    raise AssertionError(f"no leader within {timeout} s")


@pytest.fixture
def secured(cluster_factory: Any, tmp_path: Path) -> Any:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps(TOKENS))
    return cluster_factory(3, env={"CLUSTER_SECRET": SECRET, "AUTH_TOKENS": str(path)})


def test_an_operator_needs_the_members_grant_besides_the_secret(secured: Any) -> None:
    leader = leader_of(secured)
    follower = next(n.url for i, n in secured.nodes.items() if i != leader)
    add = {"id": "n9", "url": "http://127.0.0.1:9"}
    for url in (secured.nodes[leader].url, follower):
        status, body = signed("POST", url + "/cluster/members", add, OPERATOR_CALLER)
        assert status == 401 and "'members' grant" in body["detail"], body
        status, body = signed("POST", url + "/cluster/members", add, OPERATOR_CALLER, token=OPS)
        assert status == 403 and "'members' grant" in body["detail"], body
        status, body = signed("POST", url + "/cluster/transfer-leader", {}, OPERATOR_CALLER, token=OPS)
        assert status == 403, body
        status, body = call("POST", url + "/cluster/members", add, headers={"Authorization": f"Bearer {MEMBERS}"})
        assert status == 401 and "cluster secret" in body["detail"], body  # the token alone is not enough
    _, view = call("GET", secured.nodes[leader].url + "/cluster/members", headers={"Authorization": f"Bearer {OPS}"})
    assert sorted(m["id"] for m in view["voters"] + view["learners"]) == sorted(secured.nodes), view
    status, body = signed("POST", follower + "/cluster/transfer-leader", {}, OPERATOR_CALLER, token=MEMBERS)
    assert status == 200 and body["leader"] != leader, body


def test_a_node_signing_as_itself_may_add_only_itself(secured: Any, tmp_path: Path) -> None:
    url = secured.nodes[leader_of(secured)].url
    status, body = signed("POST", url + "/cluster/members", {"id": "n9", "url": "http://127.0.0.1:9"}, "n8")
    assert status == 403 and "only itself" in body["detail"], body
    status, body = signed("POST", url + "/cluster/transfer-leader", {}, "n8")
    assert status == 403, body
    # The real thing: ``rakit node --join`` with the secret and no token.
    port = free_port()
    joiner = NodeProcess(
        "n4",
        port,
        {"n4": f"http://127.0.0.1:{port}"},
        secured.redis_url,
        tmp_path / "n4",
        log_path=tmp_path / "n4.log",
        extra_args=["--join", url],
        env={"CLUSTER_SECRET": SECRET, "AUTH_TOKENS": str(tmp_path / "tokens.json")},
    )
    (tmp_path / "tokens.json").write_text(json.dumps(TOKENS))
    joiner.start()
    try:
        joiner.wait_healthy(timeout=30)
        _, view = call("GET", url + "/cluster/members", headers={"Authorization": f"Bearer {OPS}"})
        assert "n4" in [m["id"] for m in view["learners"]], view
        status, body = signed("DELETE", url + "/cluster/members/n4", None, OPERATOR_CALLER, token=MEMBERS)
        assert status == 200, body
    finally:
        joiner.stop()
