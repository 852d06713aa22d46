"""The KV on real node processes: follower reads, watches across kills, TTL keys across a leader change,
revisions and history across a full restart (docs/api.md v2 "KV")."""

from __future__ import annotations

import json
import random
import threading
import time

import httpx
import pytest

from httpcall import get, post

pytestmark = pytest.mark.integration


def put_retrying(urls: list[str], key: str, value: object, deadline: float = 20.0) -> int:
    """Put through random nodes until one answers 200; its revision (a lost answer is retried as a new put)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            status, body = post(random.choice(urls) + "/kv/put", {"key": key, "value": value}, timeout=5)
        except OSError:
            continue
        if status == 200:
            return int(body["revision"])
        time.sleep(0.05)
    raise AssertionError(f"no put of {key} within {deadline} s")


class SseWatcher:
    """Reads one node's /kv/watch stream in a thread: the events as they came (no reconnect)."""

    def __init__(self, url: str, query: str) -> None:
        self.events: list[dict] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url + "/kv/watch?" + query,), daemon=True)
        self._thread.start()

    def _run(self, url: str) -> None:
        try:
            with httpx.stream("GET", url, timeout=httpx.Timeout(10.0, read=15.0)) as answer:
                assert answer.status_code == 200, answer.read()
                for line in answer.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith("data:"):
                        self.events.append(json.loads(line[5:]))
        except BaseException as exc:  # kept for the test to see
            self.error = exc

    def wait_for(self, count: int, timeout: float) -> None:
        end = time.monotonic() + timeout
        while len(self.events) < count and time.monotonic() < end and self.error is None:
            time.sleep(0.02)

    def close(self) -> None:
        self._stop.set()


def long_poll(url: str, query: str, start: int, wait: float = 2.0) -> dict:
    status, body = get(f"{url}/kv/watch?{query}&from_revision={start}&format=json&wait={wait}", timeout=wait + 10)
    assert status == 200, body
    return body


def test_reads_through_followers_see_every_acknowledged_write(cluster_factory):
    cluster = cluster_factory(3)
    leader = cluster.wait_for_leader()
    leader_url = cluster.nodes[leader].url
    followers = [cluster.nodes[n].url for n in cluster.followers()]
    for i in range(40):
        revision = post(leader_url + "/kv/put", {"key": "lin", "value": i})[1]["revision"]
        for url in followers:  # linearizable: a read index from the leader, answered here once applied
            status, body = get(url + "/kv/get/lin")
            assert status == 200 and body["value"] == i and body["mod_revision"] == revision
            assert body["revision"] >= revision
    status, page = get(followers[0] + "/kv/range?prefix=li&consistency=serializable")
    assert status == 200 and [item["key"] for item in page["items"]] == ["lin"]
    # An idle watch still hears from its node at least every 5 s (a dead connection shows).
    started = time.monotonic()
    with httpx.stream("GET", followers[1] + "/kv/watch?key=never", timeout=httpx.Timeout(10.0, read=6.0)) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        first_line = next(answer.iter_lines())
    assert first_line.startswith(":") and time.monotonic() - started < 5.5


def test_a_watch_on_a_follower_keeps_every_event_across_a_leader_sigkill(cluster_factory):
    cluster = cluster_factory(3)
    leader = cluster.wait_for_leader()
    watched = cluster.followers()[0]
    urls = [n.url for n in cluster.nodes.values()]
    start = put_retrying(urls, "w.start", 0)
    watcher = SseWatcher(cluster.nodes[watched].url, f"prefix=w.&from_revision={start}")
    revisions = {start: "w.start"}
    for i in range(60):
        if i == 20:
            cluster.nodes[leader].kill()
        alive = [n.url for nid, n in cluster.nodes.items() if nid != leader or i < 20]
        revisions[put_retrying(alive, f"w.k{i}", i)] = f"w.k{i}"
    watcher.wait_for(len(revisions), timeout=20)
    watcher.close()
    assert watcher.error is None
    seen = [(e["revision"], e["key"]) for e in watcher.events if e["type"] == "put"]
    assert len(seen) == len(set(seen)), "an event came twice"
    assert [r for r, _ in seen] == sorted(r for r, _ in seen), "events out of revision order"
    acknowledged = set(revisions.items())
    assert acknowledged <= set(seen), f"lost: {sorted(acknowledged - set(seen))[:5]}"


def test_a_watch_resumes_on_another_node_from_its_last_revision_without_gaps(cluster_factory):
    cluster = cluster_factory(3)
    cluster.wait_for_leader()
    first, other = cluster.followers()
    urls = [n.url for n in cluster.nodes.values()]
    start = put_retrying(urls, "r.0", 0)
    written = [(start, "r.0")] + [(put_retrying(urls, f"r.{i}", i), f"r.{i}") for i in range(1, 30)]
    got: list[tuple[int, str]] = []
    batch = long_poll(cluster.nodes[first].url, "prefix=r.", start)
    got += [(e["revision"], e["key"]) for e in batch["events"][:10]]  # the client saw only 10 before...
    cluster.nodes[first].kill()  # ...its node died
    following = got[-1][0] + 1
    end = time.monotonic() + 20
    while len(got) < len(written) and time.monotonic() < end:
        batch = long_poll(cluster.nodes[other].url, "prefix=r.", following)
        got += [(e["revision"], e["key"]) for e in batch["events"]]
        following = max(following, batch["events"][-1]["revision"] + 1 if batch["events"] else following)
    assert got == written


def test_a_ttl_key_outlives_a_leader_sigkill_and_is_deleted_after_its_ttl(cluster_factory):
    cluster = cluster_factory(3)
    leader = cluster.wait_for_leader()
    status, body = post(cluster.nodes[leader].url + "/kv/put", {"key": "ttl.k", "value": 1, "ttl": 3})
    assert status == 200
    put_at = time.monotonic()
    cluster.nodes[leader].kill()
    new_leader = cluster.wait_for_leader(exclude=[leader])
    survivor = cluster.nodes[new_leader].url
    assert get(survivor + "/kv/get/ttl.k")[0] == 200, "a new leader deleted a ttl key early"
    # The new leader restarts the ttl at full length when it takes over: deleted by then + ttl + slack.
    deadline = time.monotonic() + 3 + 5
    while time.monotonic() < deadline and get(survivor + "/kv/get/ttl.k")[0] == 200:
        time.sleep(0.1)
    status, body = get(survivor + "/kv/get/ttl.k")
    assert status == 404, body
    assert time.monotonic() - put_at >= 3, "deleted before its ttl"


def test_a_full_restart_keeps_revisions_values_and_the_watch_history(cluster_factory):
    cluster = cluster_factory(3, extra_args=["--snapshot-entries", "40"])
    cluster.wait_for_leader()
    urls = [n.url for n in cluster.nodes.values()]
    first = put_retrying(urls, "h.0", 0)
    for i in range(1, 120):  # past several snapshots: the history must travel in them
        put_retrying(urls, f"h.{i % 7}", i)
    before = get(urls[0] + "/kv/get/h.3")[1]
    history = long_poll(urls[0], "prefix=h.", first, wait=0)
    for node in cluster.nodes.values():
        node.kill()
    for node in cluster.nodes.values():
        node.start()
    cluster.wait_for_leader(timeout=30)
    after = get(urls[1] + "/kv/get/h.3")[1]
    assert {k: after[k] for k in ("value", "create_revision", "mod_revision", "version")} == {
        k: before[k] for k in ("value", "create_revision", "mod_revision", "version")
    }
    replayed = long_poll(urls[2], "prefix=h.", first, wait=0)
    assert replayed["events"][: len(history["events"])] == history["events"]
    assert len(history["events"]) == 120
