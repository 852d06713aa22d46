"""The queue on a real 3-node cluster with its own Redis: every rule of docs/api.md "Queue".

One cluster (``--max-deliveries 2``) serves the non-destructive tests, each on
its own topics; the node-kill and Redis-kill tests build their own clusters.
"""

from __future__ import annotations

import threading
import time

import pytest

from httpcall import call, get, post, retry_until_ok

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from rakit.launcher import LocalCluster

    c = LocalCluster(3, tmp_path_factory.mktemp("queue"), extra_args=["--max-deliveries", "2"])
    c.start()
    settle(c)
    yield c
    c.close()


def urls(cluster) -> list[str]:
    return [n.url for n in cluster.nodes.values()]


def push(url, topic, message, **kw):
    return post(url + "/queue/push", {"topic": topic, "message": message, **kw})


def pop(url, topic, consumer, vt=30, wait=None, timeout=10.0):
    q = f"?visibility_timeout={vt}" + (f"&wait={wait}" if wait is not None else "")
    return get(url + f"/queue/pop/{topic}/{consumer}{q}", timeout=timeout)


def ack(url, topic, consumer, message_id, op="ack"):
    return post(url + f"/queue/{op}", {"topic": topic, "consumer_id": consumer, "message_id": message_id})


def stats(url, topic):
    s, body = get(url + f"/queue/stats/{topic}")
    assert s == 200, body
    return body


def counts(url, topic):
    st = stats(url, topic)
    return st["ready"], st["in_flight"], st["dead"]


def settle(cluster, topics=("fifo", "stream", "lp", "x", "y", "z")):
    """Wait until every node sees every peer alive (all agree on each topic's owner)."""

    def agreed():
        return all(len({stats(u, t)["owner"] for u in urls(cluster)}) == 1 for t in topics)

    cluster.wait_until(agreed, 10, "the nodes to agree on topic owners")


def non_owners(cluster, topic):
    owner = stats(urls(cluster)[0], topic)["owner"]
    return owner, [n.url for i, n in cluster.nodes.items() if i != owner]


def test_push_pop_ack_through_different_nodes_in_fifo_order(cluster):
    a, b, c = urls(cluster)
    owner, _ = non_owners(cluster, "fifo")
    assert owner in cluster.nodes
    assert all(stats(u, "fifo")["owner"] == owner for u in (a, b, c))
    ids = []
    for i, url in enumerate([a, b, c, a, b, c]):
        s, body = push(url, "fifo", {"n": i, "nested": [1, "x"]})
        assert s == 200 and body["topic"] == "fifo" and body["node"] == owner, body
        ids.append(body["message_id"])
    assert len(set(ids)) == 6
    assert counts(a, "fifo") == (6, 0, 0)
    got = []
    for i in range(6):
        s, m = pop([a, b, c][i % 3], "fifo", "worker1")
        assert s == 200, m
        assert m["topic"] == "fifo" and m["delivery_count"] == 1
        got.append((m["message_id"], m["message"]))
        assert ack([c, a, b][i % 3], "fifo", "worker1", m["message_id"]) == (200, {"acked": True})
    assert got == [(ids[i], {"n": i, "nested": [1, "x"]}) for i in range(6)]
    s, body = ack(a, "fifo", "worker1", ids[0])
    assert (s, body["error"]) == (404, "not_in_flight")
    assert counts(b, "fifo") == (0, 0, 0)


def test_empty_pop_is_204_and_long_poll_answers_on_push(cluster):
    a, b, c = urls(cluster)
    assert pop(a, "lp", "w") == (204, None)
    started = time.monotonic()
    assert pop(b, "lp", "w", wait=0.5) == (204, None)
    assert 0.45 <= time.monotonic() - started < 3
    result = {}

    def waiter():
        result["answer"] = pop(c, "lp", "w", wait=15, timeout=30)
        result["at"] = time.monotonic()

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.3)  # give the waiter time to park (if it has not, it pops at once: still correct)
    pushed_at = time.monotonic()
    s, body = push(a, "lp", "wake up")
    assert s == 200
    t.join(20)
    status, m = result["answer"]
    assert status == 200 and m["message"] == "wake up" and m["message_id"] == body["message_id"]
    assert result["at"] - pushed_at < 2.0


def test_redelivery_after_visibility_timeout(cluster):
    a, b, c = urls(cluster)
    _, body = push(a, "redeliver", "m1")
    s, m = pop(b, "redeliver", "w1", vt=0.5)
    assert s == 200 and m["delivery_count"] == 1
    assert counts(a, "redeliver") == (0, 1, 0)
    second = cluster.wait_until(lambda: (r := pop(c, "redeliver", "w2", vt=30))[0] == 200 and r[1], 10, "redelivery")
    assert second["message_id"] == body["message_id"] and second["delivery_count"] == 2
    # the first consumer's ack is refused: the message is no longer in flight for it
    assert ack(a, "redeliver", "w1", body["message_id"])[0] == 404
    assert ack(a, "redeliver", "w2", body["message_id"]) == (200, {"acked": True})
    assert counts(b, "redeliver") == (0, 0, 0)


def test_dead_letter_after_max_deliveries_then_redrive(cluster):
    a, b, c = urls(cluster)
    _, body = push(a, "dl", {"job": 1})
    mid = body["message_id"]
    for n in (1, 2):
        m = cluster.wait_until(lambda: (r := pop(b, "dl", "w", vt=0.3))[0] == 200 and r[1], 10, f"delivery {n}")
        assert m["delivery_count"] == n
    cluster.wait_until(lambda: counts(c, "dl") == (0, 0, 1), 10, "dead letter")
    assert pop(a, "dl", "w") == (204, None)
    s, dead = get(c + "/queue/dead/dl?limit=10")
    assert s == 200 and dead == {
        "topic": "dl",
        "messages": [{"message_id": mid, "message": {"job": 1}, "delivery_count": 2}],
    }
    assert post(a + "/queue/redrive", {"topic": "dl"}) == (200, {"redriven": 1})
    assert counts(a, "dl") == (1, 0, 0)
    s, m = pop(b, "dl", "w")
    assert s == 200 and m["message_id"] == mid and m["delivery_count"] == 1
    assert ack(c, "dl", "w", mid)[0] == 200
    assert post(a + "/queue/redrive", {"topic": "dl", "limit": 5}) == (200, {"redriven": 0})


def test_dedup_by_message_id(cluster):
    a, b, c = urls(cluster)
    first = push(a, "dedup", "one", message_id="job:42")
    assert first[0] == 200 and first[1]["message_id"] == "job:42"
    assert push(b, "dedup", "one again", message_id="job:42") == first
    assert counts(c, "dedup") == (1, 0, 0)
    _, m = pop(c, "dedup", "w")
    assert m["message"] == "one"
    assert ack(a, "dedup", "w", "job:42")[0] == 200
    assert push(c, "dedup", "after ack", message_id="job:42") == first  # within the dedup window
    assert counts(a, "dedup") == (0, 0, 0)


def test_nack_and_extend(cluster):
    a, b, c = urls(cluster)
    _, p1 = push(a, "nx", "first")
    _, p2 = push(a, "nx", "second")
    _, m = pop(b, "nx", "w")
    assert m["message_id"] == p1["message_id"]
    assert ack(c, "nx", "w", m["message_id"], op="nack") == (200, {"nacked": True})
    assert ack(c, "nx", "w", m["message_id"], op="nack")[1]["error"] == "not_in_flight"
    _, again = pop(a, "nx", "w", vt=0.5)
    assert again["message_id"] == p1["message_id"] and again["delivery_count"] == 2  # back at the head
    body = {"topic": "nx", "consumer_id": "w", "message_id": p1["message_id"], "visibility_timeout": 60}
    assert post(b + "/queue/extend", body) == (200, {"extended": True})
    _, other = pop(c, "nx", "w2", vt=30)
    assert other["message_id"] == p2["message_id"]
    # past the original 0.5 s deadline the extended message is still in flight
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        assert counts(a, "nx") == (0, 2, 0)
        time.sleep(0.1)
    assert ack(a, "nx", "w", p1["message_id"])[0] == 200
    assert ack(a, "nx", "w2", p2["message_id"])[0] == 200
    missing = {**body, "message_id": "nope"}
    s, err = post(b + "/queue/extend", missing)
    assert (s, err["error"]) == (404, "not_in_flight")


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("POST", "/queue/push", {"topic": "bad topic", "message": 1}),
        ("POST", "/queue/push", {"topic": "a:b", "message": 1}),
        ("POST", "/queue/push", {"topic": "{x}", "message": 1}),
        ("POST", "/queue/push", {"topic": "good"}),
        ("POST", "/queue/push", {"topic": "good", "message": 1, "message_id": "a b"}),
        ("POST", "/queue/push", {"topic": "good", "message": 1, "message_id": ""}),
        ("POST", "/queue/push", {"topic": "x" * 129, "message": 1}),
        ("POST", "/queue/push", "not an object"),
        ("GET", "/queue/pop/good/w?visibility_timeout=0.05", None),
        ("GET", "/queue/pop/good/w?visibility_timeout=50000", None),
        ("GET", "/queue/pop/good/w?visibility_timeout=abc", None),
        ("GET", "/queue/pop/good/w?visibility_timeout=nan", None),
        ("GET", "/queue/pop/good/w?wait=21", None),
        ("GET", "/queue/pop/good/w?wait=-1", None),
        ("GET", "/queue/pop/good/w?wait=soon", None),
        ("GET", "/queue/pop/good/a:b", None),
        ("GET", "/queue/pop/a:b/w", None),
        ("POST", "/queue/ack", {"topic": "good", "consumer_id": "w:x", "message_id": "m"}),
        ("POST", "/queue/ack", {"topic": "good", "consumer_id": "w"}),
        ("POST", "/queue/extend", {"topic": "good", "consumer_id": "w", "message_id": "m", "visibility_timeout": 0}),
        ("POST", "/queue/extend", {"topic": "good", "consumer_id": "w", "message_id": "m", "visibility_timeout": "x"}),
        ("GET", "/queue/stats/a:b", None),
        ("GET", "/queue/dead/good?limit=0", None),
        ("GET", "/queue/dead/good?limit=x", None),
        ("POST", "/queue/redrive", {"topic": "good", "limit": 0}),
    ],
)
def test_bad_input_is_422_and_changes_nothing(cluster, method, path, body):
    a, b, _ = urls(cluster)
    s, err = call(method, b + path, body)
    assert s == 422 and err["error"] == "invalid_request" and err["detail"], (s, err)
    assert counts(a, "good") == (0, 0, 0)


def test_oversize_message_is_413_and_malformed_json_422(cluster):
    a, b, c = urls(cluster)
    s, err = push(a, "big", "x" * (1024 * 1024))
    assert s == 413 and err["error"] == "too_large"
    s, err = push(b, "big", "x" * (3 * 1024 * 1024))
    assert s == 413 and err["error"] == "too_large"
    s, err = call("POST", c + "/queue/push", raw=b'{"topic": "big", "message": ')
    assert s == 422 and err["error"] == "invalid_request"
    assert counts(a, "big") == (0, 0, 0)
    s, _ = push(c, "big", "x" * (1024 * 1024 - 2))  # exactly 1 MiB once encoded
    assert s == 200
    _, m = pop(a, "big", "w")
    assert len(m["message"]) == 1024 * 1024 - 2
    assert ack(b, "big", "w", m["message_id"])[0] == 200


def test_owner_killed_mid_stream_loses_nothing(cluster_factory):
    cluster = cluster_factory(3)
    settle(cluster)
    topic = "stream"
    owner, others = non_owners(cluster, topic)
    pushed: set[str] = set()
    for i in range(20):
        s, body = push(others[i % 2], topic, {"i": i})
        assert s == 200 and body["node"] == owner
        pushed.add(body["message_id"])
    # a consumer holds some in flight on the owner when it dies
    for _ in range(3):
        assert pop(others[0], topic, "c1", vt=1)[0] == 200
    cluster.nodes[owner].kill()
    for i in range(20, 40):
        s, body = retry_until_ok(
            "POST", others[i % 2] + "/queue/push", {"topic": topic, "message": {"i": i}}, timeout=10
        )
        assert s == 200 and body["node"] != owner, body
        pushed.add(body["message_id"])
    assert stats(others[0], topic)["owner"] != owner
    seen: set[str] = set()
    deadline = time.monotonic() + 20
    while seen != pushed and time.monotonic() < deadline:
        s, m = pop(others[len(seen) % 2], topic, "c2", vt=10, wait=1)
        if s == 200:
            seen.add(m["message_id"])
            assert ack(others[0], topic, "c2", m["message_id"])[0] == 200
    assert seen == pushed
    # the owner comes back and takes its topic again
    cluster.nodes[owner].start()
    cluster.wait_healthy(20)
    cluster.wait_until(lambda: all(stats(u, topic)["owner"] == owner for u in others), 10, "ownership back")
    s, body = push(others[0], topic, "after")
    assert s == 200 and body["node"] == owner


def test_redis_down_is_503_fast_and_recovers_from_aof(cluster_factory):
    cluster = cluster_factory(3)
    settle(cluster)
    a, b, c = urls(cluster)
    ids = [push([a, b, c][i % 3], "durable", i)[1]["message_id"] for i in range(5)]
    cluster.redis.kill()
    for url, (method, path, body) in zip(
        [a, b, c, a, b],
        [
            ("POST", "/queue/push", {"topic": "durable", "message": "lost?"}),
            ("GET", "/queue/pop/durable/w", None),
            ("POST", "/queue/ack", {"topic": "durable", "consumer_id": "w", "message_id": "x"}),
            ("GET", "/queue/stats/durable", None),
            ("GET", "/queue/pop/durable/w?wait=2", None),
        ],
        strict=True,
    ):
        started = time.monotonic()
        s, err = call(method, url + path, body, timeout=10)
        assert (s, err["error"]) == (503, "unavailable"), (path, s, err)
        assert time.monotonic() - started < 5.0, path
    s, g = retry_until_ok("POST", a + "/lock/acquire", {"resource": "r", "client_id": "me"}, timeout=15)
    assert s == 200 and g["acquired"]
    assert post(b + "/lock/release", {"resource": "r", "client_id": "me"}) == (200, {"released": True})
    cluster.redis.restart()
    s, _ = retry_until_ok("GET", c + "/queue/stats/durable", timeout=15)
    assert s == 200
    got = []
    while len(got) < 5:
        s, m = pop([a, b, c][len(got) % 3], "durable", "w")
        assert s == 200, m
        got.append(m["message_id"])
        assert ack(a, "durable", "w", m["message_id"])[0] == 200
    assert got == ids
    s, body = push(b, "durable", "after restart")
    assert s == 200


def test_node_starts_and_serves_kv_while_redis_is_down_at_startup(cluster_factory):
    from rakit.launcher import free_port

    cluster = cluster_factory(3, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    a, b, _ = urls(cluster)
    s, _ = retry_until_ok("POST", a + "/kv/put", {"key": "k", "value": 1}, timeout=15)
    assert s == 200
    started = time.monotonic()
    s, err = push(b, "nowhere", "x")
    assert (s, err["error"]) == (503, "unavailable") and time.monotonic() - started < 5.0


CONSUMER = """
import json, sys, urllib.request
url, topic = sys.argv[1], sys.argv[2]
with urllib.request.urlopen(f"{url}/queue/pop/{topic}/doomed?visibility_timeout=1", timeout=10) as r:
    print(json.loads(r.read())["message_id"], flush=True)
sys.stdin.read()  # "processing": never acks; the test SIGKILLs it here
"""


def test_a_consumer_killed_between_pop_and_ack_loses_nothing(cluster):
    import signal
    import subprocess
    import sys

    a, b, c = urls(cluster)
    _, pushed = push(a, "killed", {"job": 1})
    consumer = subprocess.Popen(
        [sys.executable, "-c", CONSUMER, b, "killed"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        popped = consumer.stdout.readline().strip()
        assert popped == pushed["message_id"]
        assert counts(a, "killed") == (0, 1, 0)
        consumer.send_signal(signal.SIGKILL)
        consumer.wait(10)
    finally:
        if consumer.poll() is None:
            consumer.kill()
    again = cluster.wait_until(
        lambda: (r := pop(c, "killed", "survivor"))[0] == 200 and r[1], 10, "the killed consumer's message to come back"
    )
    assert again["message_id"] == pushed["message_id"] and again["delivery_count"] == 2
    assert ack(a, "killed", "survivor", again["message_id"]) == (200, {"acked": True})
    assert counts(b, "killed") == (0, 0, 0)
