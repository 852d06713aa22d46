"""The write-invalidate cache on real node processes: coherence, faults, TTL, bounds.

Every test starts its own cluster and waits (with a deadline) until a write
answers 200 on every node.  The central rule checked throughout (docs/api.md
"Cache"): once a ``set``/``delete`` has answered 200 at any node, no node
answers ``get`` with an older value of that key -- not while readers race
the writer, not on a node that was SIGSTOPped and resumed, not on a node
that was SIGKILLed and started again.

Histories are checked by ``check_reads``, a pure function with its own unit
test (it must catch known-bad histories).
"""

from __future__ import annotations

import bisect
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

from httpcall import call, get, post

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def parse_version(version: str) -> tuple[int, str]:
    """``"<counter>.<node>"`` -> ``(counter, node)``: versions compare as this pair."""
    counter, _, node = version.partition(".")
    return int(counter), node


def cache_set(url: str, key: str, value: Any, ttl: Any = None, timeout: float = 10.0) -> tuple[int, Any]:
    body: dict[str, Any] = {"key": key, "value": value}
    if ttl is not None:
        body["ttl"] = ttl
    return post(url + "/cache/set", body, timeout=timeout)


def cache_get(url: str, key: str, timeout: float = 10.0) -> tuple[int, Any]:
    return get(url + f"/cache/get/{key}", timeout=timeout)


def cache_delete(url: str, key: str, timeout: float = 10.0) -> tuple[int, Any]:
    return post(url + "/cache/delete", {"key": key}, timeout=timeout)


def stats(url: str) -> dict[str, Any]:
    status, body = get(url + "/cache/stats", timeout=5)
    assert status == 200, (status, body)
    return body


def retry_write(fn, timeout: float, *args: Any, **kwargs: Any) -> tuple[int, Any]:
    """Repeat a write while it answers 503 (or the node does not answer) until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = fn(*args, timeout=max(0.5, min(8.0, deadline - time.monotonic())), **kwargs)
        if status not in (0, 503) or time.monotonic() >= deadline:
            return status, body
        time.sleep(0.05)


def wait_cache_ready(cluster, ids=None, timeout: float = 20.0) -> None:
    """Until a set answers 200 on every node (``ids``), then remove the probe keys again."""
    for node_id in ids if ids is not None else list(cluster.nodes):
        url = cluster.nodes[node_id].url
        probe = f"probe.{node_id}"
        cluster.wait_until(
            lambda u=url, k=probe: cache_set(u, k, "ready", timeout=3)[0] == 200,
            timeout,
            f"a cache set to answer 200 on {node_id}",
        )
        cluster.wait_until(
            lambda u=url, k=probe: cache_delete(u, k, timeout=3)[0] == 200,
            timeout,
            f"a cache delete to answer 200 on {node_id}",
        )


def wait_serving_without_reads(cluster, node_id: str, timeout: float = 25.0) -> dict[str, Any]:
    """Until ``node_id`` serves the cache again, touching no key that exists; return its stats.

    Serving: stats say ``serving`` and a get of a never-written key is a 404
    (not a 503).  Neither adds an entry to the node's cache.
    """
    url = cluster.nodes[node_id].url

    def serving():
        status, body = get(url + "/cache/stats", timeout=2)
        if status != 200 or not body.get("serving"):
            return None
        if cache_get(url, "never.written", timeout=2)[0] != 404:
            return None
        status, body = get(url + "/cache/stats", timeout=2)
        return body if status == 200 and body.get("serving") else None

    return cluster.wait_until(serving, timeout, f"{node_id} to serve the cache again", interval=0.1)


def urls(cluster) -> list[str]:
    return [n.url for n in cluster.nodes.values()]


# --------------------------------------------------------------------------
# the history checker
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    value: Any
    version: str
    invoked: float
    completed: float  # the 200 was received


@dataclass(frozen=True)
class Read:
    node: str
    invoked: float
    completed: float
    status: int
    value: Any = None
    version: str | None = None


def check_reads(writes: list[Write], reads: list[Read]) -> int:
    """Every read of one key (no deletes) is at least as new as every write acknowledged
    before the read was invoked, and answers exactly a (version, value) that was written,
    by a write invoked before the read completed.  All writes were acknowledged.

    A 404 after an acknowledged write answers no older value: it is a miss, allowed
    only while another write is in flight (a fetch from a peer is refused when an
    invalidation for a newer version arrives during it).  A 404 with no write in
    flight means the value was lost.  Returns the number of such racing misses.
    """
    by_version = {w.version: w for w in writes}
    acked = sorted(writes, key=lambda w: w.completed)
    ack_times = [w.completed for w in acked]
    newest_so_far: list[tuple[int, str]] = []
    for w in acked:
        v = parse_version(w.version)
        newest_so_far.append(max(v, newest_so_far[-1]) if newest_so_far else v)
    problems: list[str] = []
    racing_misses = 0
    for r in reads:
        n = bisect.bisect_left(ack_times, r.invoked)  # writes acknowledged strictly before the read
        floor = newest_so_far[n - 1] if n else None
        if r.status == 404:
            if floor is None:
                continue
            if any(w.invoked < r.completed and w.completed > r.invoked for w in writes):
                racing_misses += 1
            else:
                problems.append(f"lost value (404 after an acknowledged write {floor}, no write in flight): {r}")
        elif r.status == 200:
            write = by_version.get(r.version)
            if write is None:
                problems.append(f"read of a version nobody wrote: {r}")
                continue
            if write.value != r.value:
                problems.append(f"value does not match its version (written {write.value!r}): {r}")
            if write.invoked > r.completed:
                problems.append(f"read from the future (write invoked at {write.invoked}): {r}")
            if floor is not None and parse_version(r.version) < floor:
                problems.append(f"stale read (older than acknowledged {floor}): {r}")
        else:
            problems.append(f"unexpected status: {r}")
    assert not problems, f"{len(problems)} bad reads, first ones:\n" + "\n".join(problems[:10])
    return racing_misses


def test_checker_accepts_good_histories_and_catches_stale_reads():
    w1 = Write(1, "100.node1", invoked=0.0, completed=1.0)
    w2 = Write(2, "200.node2", invoked=2.0, completed=3.0)
    good = [
        Read("node1", 0.1, 0.2, 404),  # before any write
        Read("node2", 0.5, 0.6, 200, 1, "100.node1"),  # concurrent with w1: may see it
        Read("node3", 1.5, 1.6, 200, 1, "100.node1"),
        Read("node1", 2.5, 2.6, 200, 1, "100.node1"),  # concurrent with w2: the old one is fine
        Read("node2", 2.5, 2.6, 200, 2, "200.node2"),  # ... and so is the new one
        Read("node3", 3.5, 3.6, 200, 2, "200.node2"),
    ]
    assert check_reads([w1, w2], good) == 0
    # a miss while w2 is in flight answers no older value: counted, not a violation
    assert check_reads([w1, w2], good + [Read("node3", 2.5, 2.6, 404)]) == 1
    with pytest.raises(AssertionError, match="older than acknowledged"):
        check_reads([w1, w2], good + [Read("node3", 3.1, 3.2, 200, 1, "100.node1")])
    with pytest.raises(AssertionError, match="lost value"):
        check_reads([w1, w2], good + [Read("node2", 1.1, 1.2, 404)])
    with pytest.raises(AssertionError, match="lost value"):
        check_reads([w1, w2], good + [Read("node2", 3.1, 3.2, 404)])
    with pytest.raises(AssertionError, match="nobody wrote"):
        check_reads([w1, w2], good + [Read("node2", 3.1, 3.2, 200, 7, "300.node3")])
    with pytest.raises(AssertionError, match="does not match"):
        check_reads([w1, w2], good + [Read("node2", 3.1, 3.2, 200, 1, "200.node2")])
    with pytest.raises(AssertionError, match="from the future"):
        check_reads([w1, w2], good + [Read("node2", 0.1, 0.2, 200, 2, "200.node2")])
    with pytest.raises(AssertionError, match="unexpected status"):
        check_reads([w1, w2], good + [Read("node2", 3.1, 3.2, 503)])
    # versions compare by counter as a number, then by node id
    w3 = Write(3, "1000.node1", invoked=4.0, completed=5.0)
    with pytest.raises(AssertionError, match="older than acknowledged"):
        check_reads([w1, w2, w3], [Read("node1", 5.5, 5.6, 200, 2, "200.node2")])
    assert parse_version("1732634920123456.node2") == (1732634920123456, "node2")
    assert parse_version("9.node3") < parse_version("10.node1") < parse_version("10.node2")


# --------------------------------------------------------------------------
# 1. set on one node, read everywhere
# --------------------------------------------------------------------------


def test_set_on_one_node_is_read_on_every_node(cluster_factory):
    cluster = cluster_factory(3)
    wait_cache_ready(cluster)
    n1, n2, n3 = urls(cluster)
    value = {"hello": ["world", 1, None, 2.5, True], "nested": {"a": {}}}
    status, body = cache_set(n1, "greeting", value)
    assert status == 200 and body["key"] == "greeting", body
    version = body["version"]
    assert parse_version(version)[1] == "node1"

    for node_id, url in (("node2", n2), ("node3", n3)):
        status, first = cache_get(url, "greeting")
        assert status == 200, first
        assert (first["key"], first["value"], first["version"], first["node"]) == ("greeting", value, version, node_id)
        assert first["source"] == "peer", first
        status, second = cache_get(url, "greeting")
        assert status == 200 and second["value"] == value and second["version"] == version
        assert second["source"] == "local", second
        assert stats(url)["peer_fetches"] >= 1
    status, own = cache_get(n1, "greeting")
    assert status == 200 and own["version"] == version and own["source"] == "local" and own["node"] == "node1"
    status, body = cache_get(n2, "other.key")
    assert status == 404 and body["error"] == "not_found", (status, body)


# --------------------------------------------------------------------------
# 2. readers racing an overwriting writer: zero stale reads
# --------------------------------------------------------------------------


def test_no_stale_read_while_a_writer_overwrites(cluster_factory):
    cluster = cluster_factory(3)
    wait_cache_ready(cluster)
    ids = list(cluster.nodes)
    writes: list[Write] = []
    reads: list[Read] = []
    failed_writes: list[tuple[int, Any]] = []
    done = threading.Event()
    total = 120

    def writer():
        rng = random.Random(1)
        try:
            for i in range(1, total + 1):
                url = cluster.nodes[rng.choice(ids)].url
                invoked = time.monotonic()
                status, body = cache_set(url, "k", i)
                completed = time.monotonic()
                if status == 200:
                    writes.append(Write(i, body["version"], invoked, completed))
                else:
                    failed_writes.append((status, body))
        finally:
            done.set()

    def reader(node_id: str):
        url = cluster.nodes[node_id].url
        local: list[Read] = []
        while not done.is_set():
            invoked = time.monotonic()
            status, body = cache_get(url, "k")
            completed = time.monotonic()
            if status == 200:
                local.append(Read(node_id, invoked, completed, status, body["value"], body["version"]))
            else:
                local.append(Read(node_id, invoked, completed, status))
        reads.extend(local)

    threads = [threading.Thread(target=writer)]
    threads += [threading.Thread(target=reader, args=(i,)) for i in ids for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "the workload did not finish"
    assert not failed_writes, f"writes failed in a healthy cluster: {failed_writes[:5]}"
    assert len(writes) == total
    versions = [parse_version(w.version) for w in writes]
    assert versions == sorted(versions) and len(set(versions)) == total, "sequential writes must get rising versions"
    answered = [r for r in reads if r.status == 200]
    assert len(answered) > 200, f"too few reads answered: {len(answered)} of {len(reads)}"
    assert len({r.version for r in answered}) > 10, "readers saw almost none of the overwrites"
    for node_id in ids:
        assert any(r.node == node_id and r.status == 200 for r in reads), f"{node_id} answered no read"
    racing_misses = check_reads(writes, reads)
    print(f"{len(reads)} reads, {len(answered)} answered 200, {racing_misses} misses racing a write")
    last = writes[-1]
    for url in urls(cluster):
        status, body = cache_get(url, "k")
        assert status == 200 and (body["value"], body["version"]) == (last.value, last.version), body


# --------------------------------------------------------------------------
# 3. concurrent writers converge on the highest version
# --------------------------------------------------------------------------


def test_concurrent_writers_converge_on_the_highest_version(cluster_factory):
    cluster = cluster_factory(3)
    wait_cache_ready(cluster)
    ids = list(cluster.nodes)
    plan = [ids[0], ids[1], ids[2], ids[0], ids[1], ids[2]]
    answers: list[tuple[tuple[int, str], str, Any]] = []
    failures: list[tuple[int, Any]] = []
    barrier = threading.Barrier(len(plan))

    def writer(w: int, node_id: str):
        url = cluster.nodes[node_id].url
        barrier.wait(10)
        for i in range(25):
            value = {"writer": w, "i": i}
            status, body = cache_set(url, "contended", value)
            if status == 200:
                answers.append((parse_version(body["version"]), body["version"], value))
            else:
                failures.append((status, body))

    threads = [threading.Thread(target=writer, args=(w, n)) for w, n in enumerate(plan)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    assert not failures, f"writes failed in a healthy cluster: {failures[:5]}"
    assert len(answers) == 25 * len(plan)
    assert len({a[1] for a in answers}) == len(answers), "two writes got the same version"
    _, winner, winner_value = max(answers, key=lambda a: a[0])
    written = {a[1]: a[2] for a in answers}

    def converged():
        seen = []
        for url in urls(cluster):
            status, body = cache_get(url, "contended")
            assert status == 200, (url, status, body)
            # every write was acknowledged, so no node may answer anything older than the winner
            assert parse_version(body["version"]) >= parse_version(winner), (url, body, winner)
            assert written.get(body["version"]) == body["value"], (url, body)
            seen.append((body["version"], body["value"]))
        return len(set(map(repr, seen))) == 1 and seen[0][0] == winner

    cluster.wait_until(converged, 10, "every node to answer the same (winning) version")
    status, body = cache_get(urls(cluster)[1], "contended")
    assert status == 200 and body["value"] == winner_value and body["version"] == winner


# --------------------------------------------------------------------------
# 4. delete
# --------------------------------------------------------------------------


def test_delete_removes_the_key_everywhere(cluster_factory):
    cluster = cluster_factory(3)
    wait_cache_ready(cluster)
    n1, n2, n3 = urls(cluster)
    # a key held on every node, deleted through another one
    assert cache_set(n1, "spread", [1, 2, 3])[0] == 200
    assert cache_get(n2, "spread")[0] == 200
    assert cache_get(n3, "spread")[0] == 200
    assert post(n2 + "/cache/delete", {"key": "spread"}) == (200, {"deleted": True})
    for url in (n1, n2, n3):  # no polling: the delete has answered, so no node may still answer the value
        status, body = cache_get(url, "spread")
        assert status == 404 and body["error"] == "not_found", (url, status, body)
    # a key held only by its writer, deleted through a node that never held it
    assert cache_set(n1, "only.on.node1", "x")[0] == 200
    assert post(n3 + "/cache/delete", {"key": "only.on.node1"}) == (200, {"deleted": True})
    for url in (n1, n2, n3):
        assert cache_get(url, "only.on.node1")[0] == 404
    # absent keys
    assert post(n1 + "/cache/delete", {"key": "never.set"}) == (200, {"deleted": False})
    assert post(n2 + "/cache/delete", {"key": "spread"}) == (200, {"deleted": False})
    # set again after a delete: readable everywhere again, with a newer version
    status, body = cache_set(n3, "spread", "back")
    assert status == 200
    for url in (n1, n2, n3):
        status, got = cache_get(url, "spread")
        assert status == 200 and got["value"] == "back" and got["version"] == body["version"]


# --------------------------------------------------------------------------
# 5. a SIGSTOPped node never serves the old value after it resumes
# --------------------------------------------------------------------------


def test_sigstopped_node_never_serves_the_old_value_after_resume(cluster_factory):
    cluster = cluster_factory(3)
    wait_cache_ready(cluster)
    n1, n2, n3 = urls(cluster)
    status, old = cache_set(n1, "k", "old")
    assert status == 200
    for url in (n2, n3):
        assert cache_get(url, "k")[0] == 200
        status, body = cache_get(url, "k")
        assert status == 200 and body["value"] == "old" and body["source"] == "local", body
    epoch_before = stats(n3)["epoch"]

    cluster.nodes["node3"].pause()
    try:
        started = time.monotonic()
        status, new = retry_write(cache_set, 10.0, n1, "k", "new")
        assert status == 200, f"the write did not succeed with node3 stopped: {status} {new}"
        acked = time.monotonic()
        assert parse_version(new["version"]) > parse_version(old["version"])
        # node3 is still stopped: the write was acknowledged without it
        assert cluster.nodes["node3"].paused and cluster.nodes["node3"].alive
        # writes go on without node3 (it is cut off now)
        status, other = retry_write(cache_set, 5.0, n2, "k2", {"during": "pause"})
        assert status == 200, other
        status, body = cache_get(n2, "k")
        assert status == 200 and body["value"] == "new" and body["version"] == new["version"], body
        status, body = cache_get(n1, "k2")
        assert status == 200 and body["value"] == {"during": "pause"}, body
        # a read sent to node3 while it is frozen: node3 gets it only after SIGCONT
        in_flight: dict[str, Any] = {}

        def frozen_read():
            in_flight["answer"] = cache_get(n3, "k", timeout=30)

        reader = threading.Thread(target=frozen_read)
        reader.start()
        time.sleep(0.2)  # let the request reach node3's socket (if it does not, it is just a read after SIGCONT)
    finally:
        cluster.nodes["node3"].resume()
    print(f"write acknowledged {acked - started:.2f} s after SIGSTOP")

    answers: list[tuple[float, int, Any]] = []

    def serves_new():
        status, body = cache_get(n3, "k", timeout=5)
        answers.append((time.monotonic(), status, body))
        assert not (status == 200 and body.get("value") == "old"), f"node3 answered the old value: {body}"
        assert status in (0, 200, 404, 503), (status, body)
        return status == 200 and body["value"] == "new"

    cluster.wait_until(serves_new, 25, "node3 to serve the new value", interval=0.05)
    reader.join(30)
    status, body = in_flight["answer"]
    print(f"the read sent to node3 while it was stopped answered {status} {body}")
    assert not (status == 200 and body.get("value") == "old"), f"the read in flight across SIGCONT saw {body}"
    assert status in (200, 404, 503), (status, body)
    assert stats(n3)["epoch"] > epoch_before, "node3 was cut off but did not drop everything"
    statuses = sorted({s for _, s, _ in answers})
    print(f"node3 answers after SIGCONT: {len(answers)} reads, statuses {statuses}")
    # and once it serves, node3 sees everything written while it was stopped
    status, body = cache_get(n3, "k2")
    assert status == 200 and body["value"] == {"during": "pause"} and body["version"] == other["version"], body
    status, body = cache_get(n3, "k")
    assert status == 200 and body["value"] == "new" and body["source"] == "local"


# --------------------------------------------------------------------------
# 6. a restarted node starts empty and never serves what it held before
# --------------------------------------------------------------------------


def test_restarted_node_starts_empty_and_never_serves_old_values(cluster_factory):
    cluster = cluster_factory(3)
    wait_cache_ready(cluster)
    n1, n2, n3 = urls(cluster)
    for key, value in (("a", "a-old"), ("b", "b-value")):
        assert cache_set(n1, key, value)[0] == 200
        assert cache_get(n2, key)[0] == 200  # node2 holds a copy
    assert stats(n2)["size"] >= 2

    cluster.nodes["node2"].kill()
    status, a_new = retry_write(cache_set, 10.0, n1, "a", "a-new")
    assert status == 200, f"the write did not succeed with node2 down: {status} {a_new}"
    status, b_now = cache_get(n1, "b")
    assert status == 200 and b_now["value"] == "b-value"

    cluster.nodes["node2"].start()
    restarted = wait_serving_without_reads(cluster, "node2")
    assert restarted["size"] == 0, f"node2 serves again but holds entries it had before: {restarted}"
    assert stats(n2)["size"] == 0
    # A miss asks the peers node2 holds leases on; a peer that fenced node2 while it was down
    # lends it one only once that fence has run out (until then a read may miss, never be stale).
    cluster.wait_until(
        lambda: all(p["in_contact"] for p in stats(n2)["peers"].values()),
        15,
        "node2 to be in contact with both peers again",
    )

    # keys written before the restart are fetched from a peer, with their current value
    # (never the old one); the restarted node waited out every write round that might
    # have counted on its previous run (rakit.cache.rules.coherence rule 7).
    for key, value, version in (("a", "a-new", a_new["version"]), ("b", "b-value", b_now["version"])):
        status, body = cache_get(n2, key)
        assert status == 200, (key, status, body)
        assert (body["value"], body["version"], body["source"]) == (value, version, "peer"), body
    # a key written after the restart is fetched from its writer
    status, c_set = cache_set(n3, "c", "after-restart")
    assert status == 200
    status, body = cache_get(n2, "c")
    assert status == 200 and body["value"] == "after-restart" and body["version"] == c_set["version"], body
    assert body["source"] == "peer", body
    # once rewritten, they are fetched from their writer
    status, a_newer = cache_set(n1, "a", "a-newer")
    assert status == 200
    status, body = cache_get(n2, "a")
    assert status == 200 and body["value"] == "a-newer" and body["version"] == a_newer["version"], body
    assert body["source"] == "peer", body
    assert all(cache_get(url, "a")[1]["value"] == "a-newer" for url in (n1, n2, n3))


# --------------------------------------------------------------------------
# 7. ttl
# --------------------------------------------------------------------------


def test_ttl_expires_the_key_on_every_node(cluster_factory):
    cluster = cluster_factory(3)
    wait_cache_ready(cluster)
    n1, n2, n3 = urls(cluster)
    assert cache_set(n1, "lasting", "stays", ttl=60)[0] == 200
    set_at = time.monotonic()
    status, body = cache_set(n1, "short", "soon gone", ttl=0.5)
    assert status == 200, body
    status, got = cache_get(n2, "short")  # node2 fetches a copy, which must expire too
    read_at = time.monotonic()
    assert read_at - set_at < 0.45, f"too slow to check the value before its ttl ({read_at - set_at:.2f} s)"
    assert status == 200 and got["value"] == "soon gone", got
    assert cache_get(n1, "short")[0] == 200

    def expired_everywhere():
        return all(cache_get(url, "short")[0] == 404 for url in (n1, n2, n3))

    cluster.wait_until(expired_everywhere, 5, "the 0.5 s entry to expire on every node")
    assert time.monotonic() - set_at >= 0.5
    for url in (n1, n2, n3):
        assert cache_get(url, "short")[0] == 404  # no peer hands the expired copy back
        status, body = cache_get(url, "lasting")
        assert status == 200 and body["value"] == "stays"


# --------------------------------------------------------------------------
# 8. bad input
# --------------------------------------------------------------------------


BAD_REQUESTS = [
    ("POST", "/cache/set", {"value": 1}),  # missing key
    ("POST", "/cache/set", {"key": "bad key", "value": 1}),  # space
    ("POST", "/cache/set", {"key": "bad/key", "value": 1}),
    ("POST", "/cache/set", {"key": "bad!", "value": 1}),
    ("POST", "/cache/set", {"key": "", "value": 1}),
    ("POST", "/cache/set", {"key": "x" * 129, "value": 1}),
    ("POST", "/cache/set", {"key": 5, "value": 1}),
    ("POST", "/cache/set", {"key": "ttl0", "value": 1, "ttl": 0}),
    ("POST", "/cache/set", {"key": "ttlneg", "value": 1, "ttl": -1}),
    ("POST", "/cache/set", {"key": "ttlstr", "value": 1, "ttl": "5"}),
    ("POST", "/cache/set", {"key": "ttlbool", "value": 1, "ttl": True}),
    ("POST", "/cache/set", {"key": "ttlbig", "value": 1, "ttl": 2592001}),
    ("POST", "/cache/set", "not an object"),
    ("POST", "/cache/delete", {}),
    ("POST", "/cache/delete", {"key": "bad key"}),
    ("GET", "/cache/get/bad!key", None),
]


def test_bad_input_is_rejected_and_changes_nothing(cluster_factory):
    cluster = cluster_factory(3)
    wait_cache_ready(cluster)
    n1, n2, n3 = urls(cluster)
    status, base = cache_set(n1, "base", "unchanged")
    assert status == 200
    assert cache_get(n2, "base")[0] == 200
    # the largest accepted ttl and a fractional one are fine
    assert cache_set(n1, "ttlmax", 1, ttl=2592000)[0] == 200
    assert cache_set(n1, "ttlfrac", 1, ttl=30.5)[0] == 200
    before = {url: stats(url)["size"] for url in (n1, n2, n3)}

    for method, path, body in BAD_REQUESTS:
        status, err = call(method, n2 + path, body)
        assert status == 422 and err["error"] == "invalid_request" and isinstance(err["detail"], str), (
            method,
            path,
            body,
            status,
            err,
        )
    status, err = call("POST", n1 + "/cache/set", raw=b'{"key": "broken", "value": ')
    assert status == 422 and err["error"] == "invalid_request", (status, err)
    status, err = cache_set(n3, "big", "x" * MiB)
    assert status == 413 and err["error"] == "too_large", (status, err)
    status, err = cache_set(n1, "big", {"list": ["y" * 1000] * 1100})
    assert status == 413 and err["error"] == "too_large", (status, err)

    after = {url: stats(url)["size"] for url in (n1, n2, n3)}
    assert after == before
    for key in ("ttl0", "ttlneg", "ttlstr", "ttlbool", "ttlbig", "big", "broken"):
        assert cache_get(n1, key)[0] == 404, key
    status, body = cache_get(n3, "base")
    assert status == 200 and body["value"] == "unchanged" and body["version"] == base["version"]


# --------------------------------------------------------------------------
# 9. the LRU bound
# --------------------------------------------------------------------------


def test_lru_capacity_evicts_the_least_recently_used(cluster_factory):
    cluster = cluster_factory(1, extra_args=["--cache-capacity", "3"])
    wait_cache_ready(cluster)
    (url,) = urls(cluster)
    st = stats(url)
    assert st["capacity"] == 3 and st["size"] == 0, st
    for i in range(1, 5):
        assert cache_set(url, f"lru{i}", {"i": i})[0] == 200
    st = stats(url)
    assert st["size"] == 3 and st["evictions"] >= 1, st
    assert cache_get(url, "lru1")[0] == 404
    for i in (2, 3, 4):
        status, body = cache_get(url, f"lru{i}")
        assert status == 200 and body["value"] == {"i": i}, body
    # recency counts: lru2 was read first of the three, so a new key evicts it
    assert cache_get(url, "lru3")[0] == 200
    assert cache_get(url, "lru4")[0] == 200
    assert cache_set(url, "lru5", 5)[0] == 200
    assert cache_get(url, "lru2")[0] == 404
    for key in ("lru3", "lru4", "lru5"):
        assert cache_get(url, key)[0] == 200, key
    assert stats(url)["evictions"] >= 2
