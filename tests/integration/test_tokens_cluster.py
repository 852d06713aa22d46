"""Client API tokens on a real 3-node cluster (``--auth-tokens`` with ``--cluster-secret``).

401 without or with a bad token, 403 outside the grants, 200 inside them through a follower (the
follower relays the caller's identity, signed, to the leader); a lock taken under one token cannot
be released or renewed under another, even with the same client_id; the Python client and the CLI
take a token.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import rakit
from httpcall import call

pytestmark = pytest.mark.integration

SECRET = "integration-cluster-secret-0123"
ORDERS = "orders-token-0123456789abcdef"  # orders-svc
BILLING = "billing-token-0123456789abcdef"  # billing-svc
OPS = "ops-token-0123456789abcdef012"  # ops
READER = "reader-token-0123456789abcdef"  # reader
TOKENS = {
    "tokens": [
        {
            "name": "orders-svc",
            "token": ORDERS,
            "grants": ["locks:orders.*", "queue:read:emails", "queue:write:emails", "cache:*", "status"],
        },
        {"name": "billing-svc", "token": BILLING, "grants": ["locks:*", "status"]},
        {"name": "ops", "token": OPS, "grants": ["admin", "status"]},
        {"name": "reader", "token": READER, "grants": ["locks:read:*"]},
    ]
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def req(method: str, url: str, token: str | None = None, body: Any = None, **kw: Any) -> tuple[int, Any]:
    return call(method, url, body, headers=bearer(token) if token else None, **kw)


@pytest.fixture
def secured(cluster_factory: Any, tmp_path: Path) -> Any:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps(TOKENS))
    cluster = cluster_factory(3, env={"CLUSTER_SECRET": SECRET, "AUTH_TOKENS": str(path)})
    cluster.tokens_file = path
    return cluster


def leader_and_followers(cluster: Any, timeout: float = 15.0) -> tuple[str, list[str]]:
    """(leader URL, follower URLs), asking /status with a token (the launcher's own check has none)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = {n.url: req("GET", n.url + "/status", ORDERS, timeout=2)[1] for n in cluster.nodes.values()}
        leaders = [u for u, s in statuses.items() if isinstance(s, dict) and s.get("role") == "leader"]
        if len(leaders) == 1 and all(isinstance(s, dict) and s.get("leader_id") for s in statuses.values()):
            return leaders[0], [u for u in statuses if u != leaders[0]]
        time.sleep(0.1)
    raise AssertionError(f"no leader within {timeout} s")


def test_tokens_on_a_cluster(secured: Any) -> None:
    leader, (f1, f2) = leader_and_followers(secured)

    # -- open paths, 401 ------------------------------------------------------------------------
    for path in ("/health", "/openapi.json", "/docs", "/ui"):
        assert req("GET", f1 + path)[0] == 200, path
    status, body = req("GET", f1 + "/status")
    assert status == 401 and body["error"] == "unauthorized" and isinstance(body["detail"], str)
    status, body = req("GET", f1 + "/status", "not-a-real-token-at-all")
    assert (status, body["error"], body["detail"]) == (401, "unauthorized", "unknown API token")
    status, body = req("POST", f1 + "/lock/acquire", None, {"resource": "orders.1", "client_id": "w"})
    assert status == 401
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f1 + "/status", timeout=5)
    assert info.value.headers["WWW-Authenticate"].startswith("Bearer")

    # -- 403 outside the grants, 200 inside them (through followers: relayed to the leader) ----------
    status, body = req("POST", f1 + "/lock/acquire", ORDERS, {"resource": "payments", "client_id": "w"})
    assert (status, body["error"]) == (403, "forbidden") and "payments" in body["detail"]
    status, body = req("GET", f2 + "/lock/status/payments", ORDERS)
    assert status == 403
    status, body = req("POST", f1 + "/lock/acquire", READER, {"resource": "orders.1", "client_id": "w"})
    assert status == 403  # read-only
    assert req("GET", f1 + "/metrics", ORDERS)[0] == 403
    assert req("POST", f1 + "/kv/put", ORDERS, {"key": "k", "value": 1})[0] == 403
    status, grant = req("POST", f1 + "/lock/acquire", ORDERS, {"resource": "orders.1", "client_id": "w1"})
    assert status == 200 and grant["acquired"], grant
    status, st = req("GET", f2 + "/lock/status/orders.1", READER)  # a forwarded read, under the reader's grant
    assert status == 200 and st["holders"] == ["w1"]
    status, watch = req("GET", f2 + "/lock/watch/orders.1?client_id=w1&timeout=0.2", READER)
    assert status == 200 and watch["held"] is True  # a relayed request with a query string
    assert req("POST", f2 + "/lock/release", ORDERS, {"resource": "orders.1", "client_id": "w1"}) == (
        200,
        {"released": True},
    )

    # -- owners: a lock taken under one token is not released or renewed under another ---------------
    status, grant = req(
        "POST", f1 + "/lock/acquire", ORDERS, {"resource": "orders.2", "client_id": "shared-id", "ttl": 30}
    )
    assert status == 200
    for url in (f1, f2, leader):
        status, body = req("POST", url + "/lock/release", BILLING, {"resource": "orders.2", "client_id": "shared-id"})
        assert (status, body["error"]) == (409, "not_holder"), (url, body)
        status, body = req(
            "POST", url + "/lock/renew", BILLING, {"resource": "orders.2", "client_id": "shared-id", "ttl": 60}
        )
        assert (status, body["error"]) == (409, "not_holder"), (url, body)
        status, body = req("POST", url + "/lock/renew", BILLING, {"resource": "orders.2", "client_id": "shared-id"})
        assert (status, body["error"]) == (409, "not_holder"), (url, body)
        status, body = req(
            "POST",
            url + "/lock/release",
            BILLING,
            {"resource": "orders.2", "client_id": "shared-id", "fencing_token": grant["fencing_token"]},
        )
        assert (status, body["error"]) == (409, "not_holder"), (url, body)
        status, body = req(
            "POST", url + "/lock/acquire", BILLING, {"resource": "orders.2", "client_id": "shared-id", "timeout": 1}
        )
        assert (status, body["error"], body["acquired"]) == (409, "conflict", False), (url, body)
    # a client that sends the identity header itself is not a peer
    status, body = call(
        "POST",
        f1 + "/lock/release",
        {"resource": "orders.2", "client_id": "shared-id"},
        headers={**bearer(BILLING), "x-rakit-identity": "orders-svc"},
    )
    assert status == 401 and "x-rakit-identity" in body["detail"]
    # the dashboard's table (admin) shows the owner
    status, table = req("GET", f2 + "/lock/table", OPS)
    assert status == 200
    [row] = [r for r in table["resources"] if r["resource"] == "orders.2"]
    assert row["holders"][0]["owner"] == "orders-svc"
    status, renewed = req("POST", f2 + "/lock/renew", ORDERS, {"resource": "orders.2", "client_id": "shared-id"})
    assert status == 200 and renewed["fencing_token"] == grant["fencing_token"]
    assert req("POST", f1 + "/lock/release", ORDERS, {"resource": "orders.2", "client_id": "shared-id"}) == (
        200,
        {"released": True},
    )

    # -- admin: metrics and the overview (the node asks its peers as itself, signed) -------------------
    status, text = req("GET", f1 + "/metrics", OPS)
    assert status == 200 and "rakit_" in text
    status, overview = req("GET", f1 + "/cluster/overview?timeout=2", OPS)
    assert status == 200 and [n["up"] for n in overview["nodes"]] == [True, True, True], overview
    assert all(n["cache"] is not None for n in overview["nodes"]), overview
    assert all(n["kv"] is not None for n in overview["nodes"]), overview  # a peer's /metrics, asked signed
    assert req("GET", f1 + "/cluster/overview", ORDERS)[0] == 403

    # -- queue and cache grants --------------------------------------------------------------------
    status, pushed = req("POST", f2 + "/queue/push", ORDERS, {"topic": "emails", "message": {"to": "a@b.c"}})
    assert status == 200, pushed
    assert req("POST", f2 + "/queue/push", ORDERS, {"topic": "other", "message": 1})[0] == 403
    status, popped = req("GET", f1 + "/queue/pop/emails/c1?wait=2", ORDERS)
    assert status == 200 and popped["message"] == {"to": "a@b.c"}
    assert req(
        "POST", f1 + "/queue/ack", ORDERS, {"topic": "emails", "consumer_id": "c1", "message_id": popped["message_id"]}
    ) == (200, {"acked": True})
    assert req("GET", f1 + "/queue/stats/other", ORDERS)[0] == 403
    deadline = time.monotonic() + 15  # a node's cache serves a moment after it starts (503 until then)
    while (answer := req("POST", f1 + "/cache/set", ORDERS, {"key": "user:1", "value": 1}))[0] == 503:
        assert time.monotonic() < deadline, answer
        time.sleep(0.2)
    assert answer[0] == 200, answer
    while (answer := req("GET", f2 + "/cache/get/user:1", ORDERS))[0] == 503:
        assert time.monotonic() < deadline, answer
        time.sleep(0.2)
    assert answer[1]["value"] == 1, answer
    assert req("GET", f2 + "/cache/get/user:1", BILLING)[0] == 403


def test_client_and_cli_with_tokens(secured: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    leader_and_followers(secured)
    urls = ",".join(n.url for n in secured.nodes.values())
    monkeypatch.delenv("RAKIT_TOKEN", raising=False)

    with (
        rakit.Client(urls, token=ORDERS, client_id="py-1") as orders,
        rakit.Client(urls, token=BILLING, client_id="py-1") as billing,
        rakit.Client(urls) as anonymous,
    ):
        with pytest.raises(rakit.Unauthorized) as no_token:
            anonymous.lock_status("orders.py")
        assert no_token.value.status == 401
        with pytest.raises(rakit.Forbidden):
            orders.acquire("payments")
        with orders.lock("orders.py", ttl=5) as lease:
            with pytest.raises(rakit.NotHolder):  # same client_id, another token
                billing.release("orders.py")
            with pytest.raises(rakit.NotHolder):
                billing.renew("orders.py", ttl=5)
            assert orders.lock_status("orders.py")["holders"] == ["py-1"]
            lease.check()
        assert billing.lock_status("orders.py")["holders"] == []
        statuses = orders.status()
        assert all(s["ok"] for s in statuses), statuses

    monkeypatch.setenv("RAKIT_TOKEN", ORDERS)  # the default token

    async def with_async_client() -> None:
        async with rakit.AsyncClient(urls, client_id="aio-1") as client:
            async with client.lock("orders.aio", ttl=5):
                assert (await client.lock_status("orders.aio"))["holders"] == ["aio-1"]
            with pytest.raises(rakit.Forbidden):
                await client.queue("other").push(1)

    asyncio.run(with_async_client())

    def cli(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "RAKIT_TOKEN"}
        env["RAKIT_NODES"] = urls
        if token is not None:
            env["RAKIT_TOKEN"] = token
        return subprocess.run(
            [sys.executable, "-m", "rakit", *args], capture_output=True, text=True, env=env, timeout=60
        )

    result = cli("lock", "acquire", "orders.cli", "-c", "cli-1", "--json", token=ORDERS)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["acquired"]
    result = cli("lock", "release", "orders.cli", "-c", "cli-1", "--token", BILLING)
    assert result.returncode == 1 and result.stderr.startswith("rakit: error: not_holder"), result.stderr
    result = cli("lock", "status", "orders.cli")
    assert result.returncode == 1 and result.stderr.startswith("rakit: error: unauthorized"), result.stderr
    result = cli("lock", "acquire", "payments", "-c", "cli-1", token=ORDERS)
    assert result.returncode == 1 and result.stderr.startswith("rakit: error: forbidden"), result.stderr
    result = cli("status", "--json", "--token", OPS)
    assert result.returncode == 0 and all(n["ok"] for n in json.loads(result.stdout)), result.stdout
    result = cli("lock", "release", "orders.cli", "-c", "cli-1", "--json", token=ORDERS)
    assert result.returncode == 0, result.stderr


def test_the_node_refuses_bad_token_setups(tmp_path: Path) -> None:
    good = tmp_path / "tokens.json"
    good.write_text(json.dumps(TOKENS))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"tokens": [{"name": "x", "token": ORDERS, "grants": ["locks:orders.*", "lock:x"]}]}))
    base = [
        sys.executable,
        "-m",
        "rakit",
        "node",
        "--id",
        "n1",
        "--peers",
        "n1=http://127.0.0.1:1",
        "--data-dir",
        str(tmp_path / "data"),
    ]
    result = subprocess.run([*base, "--auth-tokens", str(good)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("rakit: error: --auth-tokens needs --cluster-secret"), result.stderr
    result = subprocess.run(
        [*base, "--cluster-secret", SECRET, "--auth-tokens", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "tokens[0] ('x'): unknown grant 'lock:x'" in result.stderr
