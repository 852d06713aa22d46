"""Client limits on a real 3-node cluster.

* A consumer holds at most 1000 messages of a topic in flight: one more pop is
  ``429 too_many_in_flight`` (also through a node that relays to the owner,
  also a long poll, which is refused at once) and changes nothing.
* A waiting request (lock acquire with ``timeout``, lock watch, queue pop with
  ``wait``) is answered within its stated time plus a bound, through any node.
* The node's HTTP server is the bounded one: too many header fields are 431,
  a chunked body over the limit 413.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import httpx
import pytest

from httpcall import get, post, retry_until_ok
from rakit.launcher import LocalCluster
from rakit.queue.redis_store import MAX_IN_FLIGHT, RedisQueueStore, connect
from rakit.server.http_protocol import MAX_HEADERS

pytestmark = pytest.mark.integration

SLACK = 3.0  # seconds a waiting request may take beyond its stated time on a healthy cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Any:
    c = LocalCluster(3, tmp_path_factory.mktemp("limits"))
    c.start()
    c.wait_for_leader(20)
    urls = [n.url for n in c.nodes.values()]
    c.wait_until(
        lambda: len({get(u + "/queue/stats/inflight")[1]["owner"] for u in urls}) == 1,
        10,
        "the nodes to agree on topic owners",
    )
    yield c
    c.close()


def owner_and_other(cluster: Any, topic: str) -> tuple[str, str]:
    urls = {i: n.url for i, n in cluster.nodes.items()}
    owner = get(urls["node1"] + f"/queue/stats/{topic}")[1]["owner"]
    return urls[owner], next(u for i, u in urls.items() if i != owner)


def timed(method: str, url: str, body: Any = None, timeout: float = 60) -> tuple[int, Any, float]:
    started = time.monotonic()
    with httpx.Client(timeout=timeout) as client:
        response = client.request(method, url, json=body)
    elapsed = time.monotonic() - started
    return response.status_code, (response.json() if response.content else None), elapsed


def test_a_pop_beyond_the_in_flight_bound_is_429_and_changes_nothing(cluster: Any) -> None:
    topic = "inflight"
    owner, other = owner_and_other(cluster, topic)

    async def fill() -> None:
        redis = connect(cluster.redis_url)
        try:
            store = RedisQueueStore(redis)
            for first in range(0, MAX_IN_FLIGHT + 5, 50):
                await asyncio.gather(
                    *(
                        store.push(topic, f"m{i}", b'{"n": %d}' % i)
                        for i in range(first, min(first + 50, MAX_IN_FLIGHT + 5))
                    )
                )
        finally:
            await redis.aclose()

    asyncio.run(fill())
    with httpx.Client(base_url=owner, timeout=10) as client:
        for _ in range(MAX_IN_FLIGHT):
            assert client.get(f"/queue/pop/{topic}/greedy").status_code == 200
    before = get(owner + f"/queue/stats/{topic}")[1]
    assert (before["ready"], before["in_flight"]) == (5, MAX_IN_FLIGHT)

    for url, query in ((owner, ""), (other, ""), (owner, "?wait=10"), (other, "?wait=10")):
        status, body, elapsed = timed("GET", url + f"/queue/pop/{topic}/greedy{query}")
        assert status == 429, (url, query, status, body)
        assert body["error"] == "too_many_in_flight" and isinstance(body["detail"], str)
        assert elapsed < 2.0, f"a refused long poll waited {elapsed:.1f} s"
    assert get(owner + f"/queue/stats/{topic}")[1] == before

    # Another consumer still gets messages; an ack makes room again.
    status, delivery = get(other + f"/queue/pop/{topic}/modest")
    assert status == 200
    assert post(other + "/queue/ack", {"topic": topic, "consumer_id": "greedy", "message_id": "m0"})[0] == 200
    assert get(other + f"/queue/pop/{topic}/greedy")[0] == 200


def test_waiting_requests_end_within_their_timeout_plus_a_bound(cluster: Any) -> None:
    leader = cluster.wait_for_leader(20)
    urls = {i: n.url for i, n in cluster.nodes.items()}
    follower = next(u for i, u in urls.items() if i != leader)
    assert (
        retry_until_ok("POST", urls[leader] + "/lock/acquire", {"resource": "held", "client_id": "holder", "ttl": 60})[
            0
        ]
        == 200
    )

    for url in (urls[leader], follower):
        status, body, elapsed = timed(
            "POST", url + "/lock/acquire", {"resource": "held", "client_id": "waiter", "timeout": 1.5}
        )
        assert status == 409 and body["error"] == "timeout", body
        assert 1.5 <= elapsed < 1.5 + SLACK, elapsed

        status, body, elapsed = timed("GET", url + "/lock/watch/held?client_id=holder&timeout=1.5")
        assert status == 200 and body["held"] is True, body
        assert 1.5 <= elapsed < 1.5 + SLACK, elapsed

    owner, other = owner_and_other(cluster, "empty")
    for url in (owner, other):
        status, body, elapsed = timed("GET", url + "/queue/pop/empty/c?wait=1.5")
        assert status == 204, body
        assert 1.4 <= elapsed < 1.5 + SLACK, elapsed


def raw_answer(url: str, request: bytes) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
        )
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
    return int(head.split()[1]), rest


def test_the_node_bounds_request_heads_and_bodies(cluster: Any) -> None:
    url = cluster.nodes["node1"].url
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADERS + 1))
    status, body = raw_answer(url, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n")
    assert status == 431 and b'"too_large"' in body
    big = b"".join(b"100000\r\n" + b"a" * 0x100000 + b"\r\n" for _ in range(2))  # 2 MiB, no declared length
    status, body = raw_answer(
        url, b"POST /kv/put HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n" + big
    )
    assert status == 413 and b'"too_large"' in body
