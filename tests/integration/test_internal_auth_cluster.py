"""Node-to-node authentication on real clusters: signed calls work, anything else is refused.

``LocalCluster`` gives every cluster a random secret, so the nodes here sign
their Raft streams, cache streams and queue relays with it.  The test signs
its own forged calls with ``rakit.security.internal.InternalAuth``: unsigned,
with the wrong secret, signed for another node, or with a body other than
the one signed — every internal endpoint answers 401 (a WebSocket handshake
is refused) and nothing changes.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from httpcall import call, get, post, retry_until_ok
from rakit.cache.rules import messages as cache_messages
from rakit.raft.messages import AppendEntries, Batch, Heartbeat, RequestVote, encode_batch
from rakit.security.internal import InternalAuth

pytestmark = pytest.mark.integration

OTHER_SECRET = "not-the-cluster-secret-0123456789"
HUGE_TERM = 10**9


def forgeries(cluster: Any, target: str, path: str, body: bytes) -> list[tuple[str, dict[str, str], bytes]]:
    """(what, headers, body) of calls to ``target`` that must all be refused."""
    src = next(i for i in cluster.nodes if i != target)
    other = next(i for i in cluster.nodes if i not in (src, target))
    right = InternalAuth(cluster.cluster_secret, src)
    return [
        ("unsigned", {}, body),
        ("wrong secret", InternalAuth(OTHER_SECRET, src).headers("POST", path, body, dst=target), body),
        ("signed for another node", right.headers("POST", path, body, dst=other), body),
        ("body other than signed", right.headers("POST", path, b"{}", dst=target), body),
        ("path other than signed", right.headers("POST", "/cache/stats", body, dst=target), body),
    ]


def assert_all_refused(cluster: Any, target: str, path: str, body: bytes, content_type: str) -> None:
    url = cluster.nodes[target].url + path
    for what, headers, sent in forgeries(cluster, target, path, body):
        status, answer = call("POST", url, raw=sent, headers={"Content-Type": content_type, **headers})
        assert status == 401, (path, what, status, answer)
        assert answer["error"] == "unauthorized" and isinstance(answer["detail"], str), answer


def terms(cluster: Any) -> dict[str, int]:
    return {i: s["term"] for i, s in cluster.statuses().items() if s}


async def handshake(url: str, headers: dict[str, str]) -> int:
    """101 when the WebSocket opened, else the HTTP status that refused it."""
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(url, headers=headers, timeout=aiohttp.ClientWSTimeout(ws_close=1.0)):
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


def test_a_secured_cluster_works_and_refuses_forged_internal_calls(cluster_factory: Any) -> None:
    cluster = cluster_factory(3)
    assert cluster.cluster_secret and cluster.secret_generated  # LocalCluster made one up
    leader = cluster.wait_for_leader(timeout=15)
    followers = [i for i in cluster.nodes if i != leader]
    url = {i: n.url for i, n in cluster.nodes.items()}

    # Locks through a follower (forwarded to the leader, replicated by signed Raft streams).
    status, grant = post(url[followers[0]] + "/lock/acquire", {"resource": "orders", "client_id": "w1", "ttl": 30})
    assert status == 200 and grant["acquired"], grant

    # Cache: written on one node, read on the others (signed cache streams).
    status, _ = retry_until_ok("POST", url["node1"] + "/cache/set", {"key": "victim", "value": {"v": 1}}, timeout=20)
    assert status == 200
    for node in ("node2", "node3"):
        status, got = retry_until_ok("GET", url[node] + "/cache/get/victim", timeout=20)
        assert status == 200 and got["value"] == {"v": 1}, got
    status, got = get(url["node2"] + "/cache/get/victim")
    assert status == 200 and got["source"] == "local", got  # node2 holds a copy now
    counter, _, _ = got["version"].partition(".")
    newer = f"{int(counter) + 1}.node1"  # an invalidation that would drop that copy

    # Queue: pushed and popped through nodes that do not own the topic (signed relays).
    _, stats = retry_until_ok("GET", url["node1"] + "/queue/stats/secured", timeout=20)
    owner = stats["owner"]
    pusher, popper = [i for i in cluster.nodes if i != owner]
    status, pushed = retry_until_ok(
        "POST", url[pusher] + "/queue/push", {"topic": "secured", "message": {"n": 1}}, timeout=20
    )
    assert status == 200 and pushed["node"] == owner, pushed
    status, popped = get(url[popper] + "/queue/pop/secured/w1?wait=2")
    assert status == 200 and popped["message"] == {"n": 1} and popped["message_id"] == pushed["message_id"]

    before = terms(cluster)
    # Raft: votes and entries at a huge term, to every node, in every forged form.
    for target in cluster.nodes:
        src = next(i for i in cluster.nodes if i != target)
        entries = encode_batch(
            Batch(
                src,
                [AppendEntries(term=HUGE_TERM, src=src, dst=target, prev_index=0, prev_term=0, entries=[], commit=0)],
            )
        )
        vote = encode_batch(
            Batch(src, [RequestVote(term=HUGE_TERM, src=src, dst=target, last_index=HUGE_TERM, last_term=HUGE_TERM)])
        )
        beat = encode_batch(Batch(src, [Heartbeat(term=HUGE_TERM, src=src, dst=target, commit=0)]))
        assert_all_refused(cluster, target, "/append_entries", entries, "application/msgpack")
        assert_all_refused(cluster, target, "/request_vote", vote, "application/msgpack")
        assert_all_refused(cluster, target, "/install_snapshot", beat, "application/msgpack")

    # Cache: invalidations (one, and a batch) at a version newer than the held copy.
    invalidate = b'{"src": "node1", "key": "victim", "version": "%s"}' % newer.encode()
    assert_all_refused(cluster, "node2", "/cache/invalidate", invalidate, "application/json")
    batch = cache_messages.encode(
        cache_messages.Batch("node1", 0, [cache_messages.Invalidate("victim", newer), cache_messages.Fence("node2")])
    )
    assert_all_refused(cluster, "node2", "/cache/internal/batch", batch, "application/msgpack")

    # Queue: relayed calls straight to the owner.
    push = b'{"topic": "forged", "message_id": "m-forged", "message": {"evil": true}}'
    assert_all_refused(cluster, owner, "/queue/internal/push", push, "application/json")
    status, _ = post(url[pusher] + "/queue/push", {"topic": "secured", "message": {"n": 2}})
    assert status == 200
    pop = b'{"topic": "secured", "consumer_id": "thief", "visibility_timeout": 30, "wait": 0}'
    assert_all_refused(cluster, owner, "/queue/internal/pop", pop, "application/json")

    # WebSockets: the handshake is refused unless signed with the cluster secret for that node.
    async def sockets() -> None:
        for target, node in cluster.nodes.items():
            src = next(i for i in cluster.nodes if i != target)
            for path in ("/raft/stream", "/cache/stream"):
                ws_url = node.url.replace("http", "ws", 1) + path
                assert await handshake(ws_url, {}) in (401, 403), (target, path)
                wrong = InternalAuth(OTHER_SECRET, src).headers("GET", path, dst=target)
                assert await handshake(ws_url, wrong) in (401, 403), (target, path)
                elsewhere = InternalAuth(cluster.cluster_secret, src).headers(
                    "GET", path, dst=next(i for i in cluster.nodes if i not in (src, target))
                )
                assert await handshake(ws_url, elsewhere) in (401, 403), (target, path)
            # Sanity: the test signs the way the nodes do (a cache stream opens; nothing is sent on it).
            right = InternalAuth(cluster.cluster_secret, src).headers("GET", "/cache/stream", dst=target)
            assert await handshake(node.url.replace("http", "ws", 1) + "/cache/stream", right) == 101

    asyncio.run(sockets())

    # Nothing changed: same leader, same terms, the copy still held, the queue as it was.
    assert cluster.wait_for_leader(timeout=5) == leader
    assert terms(cluster) == before and max(before.values()) < HUGE_TERM
    status, got = get(url["node2"] + "/cache/get/victim")
    assert status == 200 and got["value"] == {"v": 1} and got["source"] == "local", got
    _, forged_stats = get(url["node1"] + "/queue/stats/forged")
    assert forged_stats["ready"] == 0 and forged_stats["in_flight"] == 0, forged_stats
    _, secured_stats = get(url["node1"] + "/queue/stats/secured")
    assert secured_stats["ready"] == 1, secured_stats  # the thief popped nothing
    status, popped = get(url[popper] + "/queue/pop/secured/w1?wait=2")
    assert status == 200 and popped["message"] == {"n": 2}
    status, _ = post(url[leader] + "/kv/put", {"key": "after", "value": 1})
    assert status == 200

    # And the endpoints are only gated, not broken: the same calls signed right are served.
    signer = InternalAuth(cluster.cluster_secret, "node1")
    status, answer = call(
        "POST",
        url["node2"] + "/append_entries",
        raw=b"\x93garbage",
        headers={
            "Content-Type": "application/msgpack",
            **signer.headers("POST", "/append_entries", b"\x93garbage", dst="node2"),
        },
    )
    assert status == 422 and answer["error"] == "invalid_request", answer
    headers = signer.headers("POST", "/cache/invalidate", invalidate, dst="node2")
    status, answer = call("POST", url["node2"] + "/cache/invalidate", raw=invalidate, headers=headers)
    assert status == 200 and answer["dropped"] is True, answer
    status, answer = call("POST", url["node2"] + "/cache/invalidate", raw=invalidate, headers=headers)
    assert status == 401 and "replayed" in answer["detail"], answer  # once only


def test_a_node_with_another_secret_cannot_join(cluster_factory: Any) -> None:
    cluster = cluster_factory(3, start=False)
    cluster.nodes["node3"].env["CLUSTER_SECRET"] = OTHER_SECRET
    cluster.start(wait=True, timeout=30)

    def agreed_leader() -> str | None:
        s1, s2 = cluster.nodes["node1"].status(), cluster.nodes["node2"].status()
        if s1 and s2 and s1.get("leader_id") and s1["leader_id"] == s2.get("leader_id") and s1["term"] == s2["term"]:
            return s1["leader_id"]
        return None

    leader = cluster.wait_until(agreed_leader, 15, "node1 and node2 to agree on a leader", interval=0.1)
    assert leader in ("node1", "node2")
    term = cluster.nodes[leader].status()["term"]
    for i in range(5):
        status, _ = post(cluster.nodes[leader].url + "/kv/put", {"key": f"k{i}", "value": i})
        assert status == 200
    time.sleep(3.0)  # several election timeouts: node3 would have disturbed the cluster by now
    assert agreed_leader() == leader
    assert cluster.nodes["node1"].status()["term"] == term == cluster.nodes["node2"].status()["term"]
    outsider = cluster.nodes["node3"].status()
    assert outsider is not None and outsider["leader_id"] is None, outsider
    assert outsider["commit_index"] == 0, outsider  # it never got an entry
    leader_commit = cluster.nodes[leader].status()["commit_index"]
    assert leader_commit >= 5
    # Both sides logged the refusals (node3's streams to them, and theirs to node3).
    cluster.wait_until(
        lambda: all("refused an internal call" in cluster.nodes[i].log_tail(200) for i in cluster.nodes),
        10,
        "every node to log a refused call",
    )
