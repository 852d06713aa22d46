"""The dashboard's endpoints on a real 3-node cluster: /ui, /cluster/overview (with each node's KV counters),
/lock/table, /coordination/table, /queue/topics.

Answers are decoded with the Structs of ``rakit.http.routes.ui`` (what
/openapi.json documents), so a shape that drifts from them fails here.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from typing import Any

import msgspec
import pytest

from httpcall import call, get, post, retry_until_ok
from rakit.http.routes.ui import ClusterOverview, CoordinationTableView, LockTableView, QueueTopicsView

pytestmark = pytest.mark.integration


def wait_for(what: str, probe: Any, timeout: float = 10.0) -> Any:
    """Call ``probe()`` until it returns something truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}; last: {last!r}")


def overview(url: str, **query: Any) -> ClusterOverview:
    q = "&".join(f"{k}={v}" for k, v in query.items())
    s, body = get(url + "/cluster/overview" + (f"?{q}" if q else ""))
    assert s == 200, body
    return msgspec.convert(body, ClusterOverview)


def lock_table(url: str, **query: Any) -> LockTableView:
    q = "&".join(f"{k}={v}" for k, v in query.items())
    s, body = get(url + "/lock/table" + (f"?{q}" if q else ""))
    assert s == 200, body
    return msgspec.convert(body, LockTableView)


def coordination_table(url: str, **query: Any) -> CoordinationTableView:
    q = "&".join(f"{k}={v}" for k, v in query.items())
    s, body = get(url + "/coordination/table" + (f"?{q}" if q else ""))
    assert s == 200, body
    return msgspec.convert(body, CoordinationTableView)


def queue_topics(url: str, **query: Any) -> QueueTopicsView:
    q = "&".join(f"{k}={v}" for k, v in query.items())
    s, body = get(url + "/queue/topics" + (f"?{q}" if q else ""))
    assert s == 200, body
    return msgspec.convert(body, QueueTopicsView)


def raw_get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.headers.get("content-type", ""), resp.read()


def test_overview_locks_queue_and_cache_on_a_live_cluster(cluster_factory) -> None:
    cluster = cluster_factory(3)
    leader = cluster.wait_for_leader(timeout=15)
    urls = cluster.urls
    ids = sorted(urls)
    follower = next(i for i in ids if i != leader)
    a, b, c = (urls[i] for i in ids)

    # -- cluster overview, asked of every node: three nodes up, exactly one leader.
    for node_id, url in urls.items():
        o = overview(url)
        assert o.node == node_id
        assert sorted(n.node_id for n in o.nodes) == ids
        assert [n.node_id for n in o.nodes if n.local] == [node_id]
        assert all(n.up and n.error is None and n.term == o.term for n in o.nodes), o
        assert [n.node_id for n in o.nodes if n.role == "leader"] == [leader] == o.leaders
        assert o.leader == leader
        assert all(
            n.leader_id == leader and n.commit_index is not None and n.last_applied is not None and n.cache is not None
            for n in o.nodes
        )
        assert {n.url for n in o.nodes} == set(urls.values())

    # -- a lock with a waiter, read through a follower (forwarded to the leader).
    s, grant = post(a + "/lock/acquire", {"resource": "ui-orders", "client_id": "holder-1", "ttl": 60})
    assert s == 200, grant
    waited: dict[str, Any] = {}
    waiter = threading.Thread(
        target=lambda: waited.update(
            answer=post(
                b + "/lock/acquire", {"resource": "ui-orders", "client_id": "waiter-2", "timeout": 20}, timeout=30
            )
        )
    )
    waiter.start()
    try:

        def waiting() -> LockTableView | None:
            t = lock_table(urls[follower])
            r = next((r for r in t.resources if r.resource == "ui-orders"), None)
            return t if r is not None and r.waiters else None

        table = wait_for("waiter-2 in the wait list of ui-orders", waiting)
        assert table.node == leader and table.index >= grant["fencing_token"]
        (row,) = [r for r in table.resources if r.resource == "ui-orders"]
        assert row.mode == "exclusive" and row.fencing_token == grant["fencing_token"]
        assert [(h.client_id, h.mode, h.fencing_token) for h in row.holders] == [
            ("holder-1", "exclusive", grant["fencing_token"])
        ]
        assert [(w.client_id, w.mode) for w in row.waiters] == [("waiter-2", "exclusive")]
        assert [(e.from_, e.to, e.resource, e.kind) for e in table.edges] == [
            ("waiter-2", "holder-1", "ui-orders", "holder")
        ]
        assert table.active == 1 and not table.truncated
    finally:
        assert post(c + "/lock/release", {"resource": "ui-orders", "client_id": "holder-1"})[0] == 200
        waiter.join(30)
    s, second = waited["answer"]
    assert s == 200 and second["fencing_token"] > grant["fencing_token"]
    table = lock_table(c)
    (row,) = [r for r in table.resources if r.resource == "ui-orders"]
    assert [h.client_id for h in row.holders] == ["waiter-2"] and row.waiters == [] and table.edges == []
    assert row.fencing_token == second["fencing_token"]

    # -- the cap: more resources than the limit -> truncated, busy ones first.
    for name in ("ui-x1", "ui-x2"):
        assert post(a + "/lock/acquire", {"resource": name, "client_id": "tmp"})[0] == 200
        assert post(a + "/lock/release", {"resource": name, "client_id": "tmp"})[0] == 200
    capped = lock_table(b, limit=1)
    assert [r.resource for r in capped.resources] == ["ui-orders"] and capped.truncated and capped.count == 3

    # -- queue topics: counts and owner, the same from every node.
    for i in range(3):
        assert post(b + "/queue/push", {"topic": "ui-emails", "message": {"n": i}})[0] == 200
    assert post(c + "/queue/push", {"topic": "ui-other", "message": 1})[0] == 200
    s, popped = get(a + "/queue/pop/ui-emails/consumer-1?visibility_timeout=60")
    assert s == 200, popped
    s, stats = get(a + "/queue/stats/ui-emails")
    assert s == 200
    for url in urls.values():
        view = queue_topics(url)
        assert not view.truncated
        assert {t.topic: (t.ready, t.in_flight, t.dead) for t in view.topics} == {
            "ui-emails": (2, 1, 0),
            "ui-other": (1, 0, 0),
        }
        emails = next(t for t in view.topics if t.topic == "ui-emails")
        assert emails.owner == stats["owner"] and emails.owner in urls
    capped_topics = queue_topics(a, limit=1)
    assert [t.topic for t in capped_topics.topics] == ["ui-emails"] and capped_topics.truncated

    # -- cache: a set on one node, a read on another (a peer fetch), both seen in the overview.
    s, _ = retry_until_ok("POST", a + "/cache/set", {"key": "ui:user:42", "value": {"name": "Ada"}})
    assert s == 200
    s, got = retry_until_ok("GET", b + "/cache/get/ui:user:42")  # 503 while b's start-up quarantine lasts
    assert s == 200 and got["source"] == "peer", got

    def cache_seen() -> ClusterOverview | None:
        o = overview(c)
        by_id = {n.node_id: n.cache for n in o.nodes}
        writer, reader = by_id[ids[0]], by_id[ids[1]]
        ok = (
            writer is not None
            and reader is not None
            and writer.size >= 1
            and reader.size >= 1
            and reader.peer_fetches >= 1
            and reader.misses >= 1
            and writer.invalidations_sent >= 1
            and all(n.health == "ok" and n.cache and n.cache.serving for n in o.nodes)
        )
        return o if ok else None

    wait_for("the cache counters in the overview, every node serving", cache_seen)


def test_overview_shows_each_nodes_kv_counters(cluster_factory) -> None:
    cluster = cluster_factory(3)
    leader = cluster.wait_for_leader(timeout=15)
    urls = cluster.urls
    follower = next(url for node_id, url in urls.items() if node_id != leader)
    revisions = []
    for i in range(3):
        s, put = post(follower + "/kv/put", {"key": f"ui-kv:{i}", "value": {"n": i}})
        assert s == 200, put
        revisions.append(put["revision"])
    s, deleted = post(follower + "/kv/delete", {"key": "ui-kv:0"})
    assert s == 200, deleted
    last = deleted["revision"]

    # An open long poll on the follower is one watcher there.
    polled: dict[str, Any] = {}
    poll = threading.Thread(
        target=lambda: polled.update(
            answer=get(follower + f"/kv/watch?prefix=ui-kv:&from_revision={last + 1}&format=json&wait=20", timeout=30)
        )
    )
    poll.start()
    try:

        def counted() -> ClusterOverview | None:
            o = overview(urls[leader])
            kvs = {n.url: n.kv for n in o.nodes}
            done = all(k is not None and k.revision >= last and k.keys == 2 for k in kvs.values())
            return o if done and (w := kvs[follower]) is not None and w.watchers == 1 else None

        o = wait_for("every node's KV counters at the last revision, one watcher on the follower", counted)
        for n in o.nodes:
            assert n.kv is not None and n.kv.history_events >= 4 and n.kv.compact_revision <= revisions[0], n
            assert n.kv.watchers == (1 if n.url == follower else 0), n
        s, put = post(urls[leader] + "/kv/put", {"key": "ui-kv:9", "value": True})
        assert s == 200
    finally:
        poll.join(30)
    s, batch = polled["answer"]
    assert s == 200 and [(e["type"], e["key"]) for e in batch["events"]] == [("put", "ui-kv:9")], batch

    # A peer that is down has no counters; the others still do.
    victim = next(node_id for node_id in urls if node_id != leader)
    cluster.nodes[victim].kill()
    o = overview(urls[leader], timeout=0.3)
    assert {n.node_id: n.kv is not None for n in o.nodes} == {i: i != victim for i in urls}


def test_coordination_table_shows_sessions_semaphores_and_elections_through_any_node(cluster_factory) -> None:
    cluster = cluster_factory(3)
    cluster.wait_for_leader(timeout=15)
    urls = list(cluster.urls.values())
    s, session = retry_until_ok("POST", urls[0] + "/session/grant", {"client_id": "worker", "ttl": 30}, timeout=15)
    assert s == 200, session
    sid = session["session_id"]
    sem = {"name": "gpu", "limit": 2, "ttl": 30}
    assert post(urls[1] + "/semaphore/acquire", {**sem, "client_id": "a", "permits": 2})[0] == 200
    assert (
        post(urls[2] + "/semaphore/acquire", {**sem, "client_id": "worker", "session_id": sid, "timeout": 0})[0] == 409
    )  # no permit free, timeout 0: conflict
    waiter = threading.Thread(
        target=post, args=(urls[2] + "/semaphore/acquire", {**sem, "client_id": "b", "timeout": 20}), daemon=True
    )
    waiter.start()
    camp = {"name": "scheduler", "value": {"host": "h1"}, "ttl": 30}
    s, elected = post(urls[1] + "/election/campaign", {**camp, "candidate_id": "worker", "session_id": sid})
    assert s == 200, elected

    def listed() -> CoordinationTableView | None:
        view = coordination_table(urls[2])  # a follower or the leader: read on the leader either way
        return view if view.semaphores and view.semaphores[0].waiters else None

    view = wait_for("the semaphore waiter to be listed", listed)
    assert view.node == cluster.leader()
    gpu = view.semaphores[0]
    assert (gpu.name, gpu.limit, gpu.available) == ("gpu", 2, 0)
    assert [(h.client_id, h.permits) for h in gpu.holders] == [("a", 2)]
    assert [(w.client_id, w.permits) for w in gpu.waiters] == [("b", 1)]
    assert [(e.name, e.leader, e.term, e.candidates) for e in view.elections] == [
        ("scheduler", "worker", elected["term"], [])
    ]
    assert [(r.client_id, r.holds, r.session_id) for r in view.sessions] == [("worker", 1, sid[:8] + "…")]
    assert view.totals.permits_held == 2 and view.totals.semaphore_waiters == 1 and view.totals.elections_led == 1
    assert sid not in msgspec.json.encode(view).decode()
    assert post(urls[0] + "/semaphore/release", {"name": "gpu", "client_id": "a"})[0] == 200
    waiter.join(20)
    assert not waiter.is_alive()
    view = coordination_table(urls[0], limit=1)
    assert [(h.client_id, h.permits) for h in view.semaphores[0].holders] == [("b", 1)]

    # Prometheus: the same totals as gauges on every node, once each has applied the entries.
    def gauges() -> str | None:
        text = urllib.request.urlopen(urls[2] + "/metrics", timeout=10).read().decode()
        return text if "rakit_semaphore_permits_held 1.0" in text else None

    text = wait_for("the gauges on the third node", gauges)
    assert "rakit_elections_led 1.0" in text and "rakit_sessions 1.0" in text


def test_pages_and_bad_input(cluster_factory) -> None:
    cluster = cluster_factory(3)
    cluster.wait_for_leader(timeout=15)
    url = next(iter(cluster.urls.values()))

    # The page and its files, from the package, nothing external.
    for path in ("/ui", "/ui/"):
        status, ctype, body = raw_get(url + path)
        assert status == 200 and ctype.startswith("text/html")
        assert b'src="/ui/app.js"' in body and b'href="/ui/style.css"' in body
    files = {}
    for name, kind in (
        ("app.js", "text/javascript"),
        ("kv.js", "text/javascript"),
        ("style.css", "text/css"),
        ("index.html", "text/html"),
    ):
        status, ctype, body = raw_get(f"{url}/ui/{name}")
        assert status == 200 and ctype.startswith(kind), (name, ctype)
        files[name] = body.decode()
    for name, text in files.items():
        external = [
            u
            for u in re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"')]*", text)
            if u != "http://www.w3.org/2000/svg"
        ]  # the SVG namespace name, never fetched
        assert external == [], (name, external)
    for path in ("/cluster/overview", "/lock/table", "/coordination/table", "/queue/topics"):
        assert path in files["app.js"]
    for path in ("/kv/range?prefix=", "/kv/watch?prefix=", "format=json&wait="):
        assert path in files["kv.js"]
    assert 'src="/ui/kv.js"' in files["index.html"]

    # Errors: JSON with a stable code, never a 500.
    for path in ("/ui/missing.js", "/ui/app.py", "/ui/..%2Fapp.py", "/ui/x/y"):
        s, body = get(url + path)
        assert s == 404 and body["error"] == "not_found", (path, s, body)
    for path in (
        "/lock/table?limit=0",
        "/lock/table?limit=5001",
        "/lock/table?limit=abc",
        "/lock/table?limit=-1",
        "/lock/table?limit=1.5",
        "/coordination/table?limit=0",
        "/coordination/table?limit=x",
        "/queue/topics?limit=0",
        "/queue/topics?limit=%F0%9F%92%A5",
        "/cluster/overview?timeout=0",
        "/cluster/overview?timeout=abc",
        "/cluster/overview?timeout=nan",
        "/cluster/overview?timeout=9",
    ):
        s, body = get(url + path)
        assert s == 422 and body["error"] == "invalid_request" and isinstance(body["detail"], str), (path, s, body)
    for path in ("/cluster/overview", "/lock/table", "/coordination/table", "/queue/topics", "/ui"):
        s, body = call("POST", url + path, {})
        assert s == 405 and body["error"] == "method_not_allowed", (path, s, body)
    # Unknown query parameters are ignored, as unknown body fields are.
    assert get(url + "/lock/table?whatever=1")[0] == 200


def test_a_dead_peer_is_shown_down_and_redis_down_is_503(cluster_factory) -> None:
    cluster = cluster_factory(3)
    leader = cluster.wait_for_leader(timeout=15)
    victim = next(i for i in cluster.urls if i != leader)

    # A stopped (SIGSTOP) node answers nothing: the overview gives up on it after ``timeout``.
    cluster.nodes[victim].pause()
    try:
        started = time.monotonic()
        o = overview(cluster.urls[leader], timeout=0.3)
        assert time.monotonic() - started < 3.0
        (paused,) = [n for n in o.nodes if n.node_id == victim]
        assert not paused.up and paused.health == "down" and "0.3" in (paused.error or ""), paused
    finally:
        cluster.nodes[victim].resume()

    # A killed node: connection refused, shown down with the error; the rest still answer.
    cluster.nodes[victim].kill()
    o = overview(cluster.urls[leader], timeout=0.3)
    (dead,) = [n for n in o.nodes if n.node_id == victim]
    assert not dead.up and dead.health == "down" and dead.error and dead.role is None and dead.cache is None
    assert o.leader == leader and o.leaders == [leader]
    assert sum(n.up for n in o.nodes) == 2

    assert cluster.redis is not None
    cluster.redis.stop()
    url = cluster.urls[leader]
    started = time.monotonic()
    s, body = get(url + "/queue/topics")
    assert s == 503 and body["error"] == "unavailable", body
    assert time.monotonic() - started < 5.0
    assert get(url + "/lock/table")[0] == 200
    assert get(url + "/cluster/overview")[0] == 200
