"""``client.kv`` and ``rakit kv`` on a real 3-node cluster: conditional writes, txn, cas from many
threads, and watches that survive a node falling silent (paused) without losing or repeating a change."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from rakit.client import AsyncClient, Client, KvEvent, RevisionMismatch
from rakit.client.kv_txn import compare, op

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from rakit.launcher import LocalCluster

    c = LocalCluster(3, tmp_path_factory.mktemp("kvclient"))
    c.start()
    c.wait_for_leader(timeout=15)
    yield c
    c.close()


@pytest.fixture
def client(cluster) -> Iterator[Client]:
    with Client([n.url for n in cluster.nodes.values()]) as c:
        yield c


def rakit(cluster, *args: str, stdin: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAKIT_NODES": ",".join(n.url for n in cluster.nodes.values()), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "rakit", "kv", *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=timeout,
    )


def test_put_get_conditions_and_txn(client: Client) -> None:
    first = client.kv.put("t1:mode", "blue", if_absent=True)
    record = client.kv.get("t1:mode")
    assert record is not None and record.value == "blue" and record.mod_revision == first.revision
    assert record.version == 1 and record.revision >= first.revision
    with pytest.raises(RevisionMismatch) as stale:
        client.kv.put("t1:mode", "green", if_revision=first.revision + 1000)
    assert stale.value.current_revision == first.revision
    second = client.kv.put("t1:mode", "green", if_revision=first.revision)
    assert second.previous_revision == first.revision and second.revision > first.revision
    assert client.kv.get("t1:nope") is None
    result = client.kv.txn(
        [compare.value("t1:mode") == "green", compare.absent("t1:lock")],
        [op.put("t1:mode", "red"), op.put("t1:lock", "me"), op.get("t1:mode")],
        [op.get("t1:mode")],
    )
    assert result.succeeded and result.results[2].value == "red" and result.results[2].mod_revision == result.revision
    again = client.kv.txn([compare.absent("t1:lock")], [op.delete("t1:lock")], [op.get("t1:lock")])
    assert not again.succeeded and again.results[0].value == "me"
    assert [r.key for r in client.kv.scan("t1:", page_size=1)] == ["t1:lock", "t1:mode"]
    assert client.kv.delete_prefix("t1:") == 2 and client.kv.range("t1:").items == []


def test_cas_from_many_threads_loses_no_increment(client: Client, cluster) -> None:
    urls = [n.url for n in cluster.nodes.values()]
    per_thread, threads = 15, 4
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            with Client(urls[i % 3 :] + urls[: i % 3]) as own:
                for _ in range(per_thread):
                    own.kv.cas("t2:counter", lambda n: (n or 0) + 1, retries=200)
        except BaseException as exc:  # reported below
            errors.append(exc)

    running = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in running:
        t.start()
    for t in running:
        t.join(120)
    assert not errors and not any(t.is_alive() for t in running)
    record = client.kv.get("t2:counter")
    assert record is not None and record.value == per_thread * threads and record.version == per_thread * threads
    assert client.kv.incr("t2:counter", 5) == per_thread * threads + 5


def collect(
    client: Client, prefix: str, start: int, count: int, idle: float = 10.0
) -> tuple[list[KvEvent], threading.Thread]:
    events: list[KvEvent] = []

    def run() -> None:
        for event in client.kv.watch(prefix=prefix, start_revision=start, idle_timeout=idle):
            events.append(event)
            if len(events) >= count:
                return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return events, thread


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_watch_sees_every_change_once_in_order_across_a_silent_node(client: Client, cluster) -> None:
    leader = cluster.wait_for_leader(timeout=15)
    silent = next(i for i in cluster.nodes if i != leader)
    others = [n.url for i, n in cluster.nodes.items() if i != silent]
    start = client.kv.range("t3:", limit=1).revision + 1
    with Client([cluster.nodes[silent].url, *others]) as watching:
        events, thread = collect(watching, "t3:", start, count=10, idle=3.0)
        client.kv.put("t3:a", 1)
        txn = client.kv.txn([], [op.put("t3:b", 2), op.put("t3:c", 3), op.put("t3:d", 4)])
        client.kv.put("other", 0)  # not watched
        wait_for(lambda: len(events) >= 4, 15, "the first four events")
        cluster.nodes[silent].pause()  # the watch's node stops answering: only its idle timeout tells
        try:
            with Client(others) as writer:
                assert writer.kv.delete_prefix("t3:") == 4
                for i in range(2):
                    writer.kv.put(f"t3:e{i}", i)
            thread.join(30)
        finally:
            cluster.nodes[silent].resume()
    assert not thread.is_alive(), f"got {len(events)} events"
    seen = [(e.revision, e.key, e.type) for e in events]
    assert len(set(seen)) == len(seen) == 10  # nothing twice
    assert [e.revision for e in events] == sorted(e.revision for e in events)
    assert seen[0][1:] == ("t3:a", "put") and {k for r, k, _ in seen[1:4]} == {"t3:b", "t3:c", "t3:d"}
    assert {r for r, _, _ in seen[1:4]} == {txn.revision}  # one txn, one revision
    assert [t for _, _, t in seen[4:8]] == ["delete"] * 4 and len({r for r, _, _ in seen[4:8]}) == 1
    assert [(k, t) for _, k, t in seen[8:]] == [("t3:e0", "put"), ("t3:e1", "put")]


def test_cli_kv_commands(cluster) -> None:
    put = rakit(cluster, "put", "t4:mode", '{"c": "blue"}', "--json")
    assert put.returncode == 0, put.stderr
    revision = json.loads(put.stdout)["revision"]
    got = json.loads(rakit(cluster, "get", "t4:mode", "--json").stdout)
    assert got["value"] == {"c": "blue"} and got["mod_revision"] == revision
    stale = rakit(cluster, "put", "t4:mode", "x", "--if-revision", str(revision + 1000))
    assert (
        stale.returncode == 1
        and "revision_mismatch" in stale.stderr
        and f"current revision: {revision}" in stale.stderr
    )
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rakit",
            "kv",
            "watch",
            "--prefix",
            "t4:",
            "--from-revision",
            str(revision),
            "--count",
            "3",
            "--json",
        ],
        env={**os.environ, "RAKIT_NODES": ",".join(n.url for n in cluster.nodes.values())},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    doc = {
        "compare": [{"key": "t4:mode", "target": "mod_revision", "op": "==", "value": revision}],
        "success": [{"put": {"key": "t4:mode", "value": "green"}}, {"put": {"key": "t4:n", "value": 1}}],
        "failure": [],
    }
    txn = rakit(cluster, "txn", "--json", stdin=json.dumps(doc))
    assert txn.returncode == 0, txn.stderr
    assert json.loads(txn.stdout)["succeeded"]
    out, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert (events[0]["key"], events[0]["value"], events[0]["revision"]) == ("t4:mode", {"c": "blue"}, revision)
    assert sorted((e["key"], e["value"]) for e in events[1:]) == [("t4:mode", "green"), ("t4:n", 1)]
    assert events[1]["revision"] == events[2]["revision"] == json.loads(txn.stdout)["revision"]
    listed = json.loads(rakit(cluster, "range", "--prefix", "t4:", "--json").stdout)
    assert [(r["key"], r["value"]) for r in listed["items"]] == [("t4:mode", "green"), ("t4:n", 1)]
    assert json.loads(rakit(cluster, "del", "--prefix", "t4:", "--json").stdout) == {"deleted": 2}


async def test_async_client_cas_and_watch(cluster) -> None:
    urls = [n.url for n in cluster.nodes.values()]
    async with AsyncClient(urls) as client:
        start = (await client.kv.range("t5:", limit=1)).revision + 1
        await asyncio.gather(*(client.kv.cas("t5:n", lambda n: (n or 0) + 1, retries=100) for _ in range(8)))
        done = await client.kv.txn([compare.value("t5:n") == 8], [op.put("t5:done", True), op.delete("t5:n")])
        assert done.succeeded
        seen: list[KvEvent] = []
        async with contextlib.aclosing(client.kv.watch(prefix="t5:", start_revision=start)) as stream:
            async for event in stream:
                seen.append(event)
                if len(seen) == 10:
                    break
    assert [e.value for e in seen[:8]] == list(range(1, 9))
    assert {(e.key, e.type) for e in seen[8:]} == {("t5:done", "put"), ("t5:n", "delete")}
    assert seen[8].revision == seen[9].revision == done.revision
