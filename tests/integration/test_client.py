"""``rakit.Client`` and ``rakit.AsyncClient`` against real 3-node clusters.

Failover while the leader is killed, renewal keeping a lock past its ttl,
``LockLost`` when the lease runs out (renewal stopped, another client takes
the lock), the consumer helper through a handler failure and a consumer
process killed mid-stream, and the cache and error mapping.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import rakit
from rakit.client.runner import RetryPolicy

pytestmark = pytest.mark.integration


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def leader_of(client: rakit.Client) -> str | None:
    for node in client.status():
        if node.get("role") == "leader":
            return node["node_id"]
    return None


def cache_ready(client: rakit.Client) -> bool:
    for url in client.nodes:
        try:
            client.cache.stats(url)
            if not client.cache.stats(url)["serving"]:
                return False
        except rakit.RakitError:
            return False
    return True


@pytest.fixture
def cluster(cluster_factory):
    return cluster_factory(3)


@pytest.fixture
def client(cluster):
    with rakit.Client([n.url for n in cluster.nodes.values()], timeout=3.0, retry_deadline=20.0) as c:
        wait_for(lambda: leader_of(c), 15, "a leader")
        yield c


def test_errors_are_named_exceptions_with_the_server_code(client):
    with client.lock("res", client_id="a1", ttl=5):
        with pytest.raises(rakit.LockConflict) as caught:
            client.acquire("res", "a2", timeout=0)
        assert caught.value.error == "conflict" and caught.value.status == 409 and caught.value.detail
        with pytest.raises(rakit.LockTimeout):
            client.acquire("res", "a2", timeout=0.3)
    with pytest.raises(rakit.NotHolder):
        client.release("res", "nobody")
    with pytest.raises(rakit.InvalidRequest) as bad:
        client.acquire("bad name!", "a1")
    assert bad.value.status == 422
    with pytest.raises(rakit.NotInFlight):
        client.queue("t").ack("no-such-message", "c1")


def test_deadlock_carries_the_cycle(client):
    client.acquire("x", "p", ttl=10)
    client.acquire("y", "q", ttl=10)
    outcome: list[object] = []
    waiter = threading.Thread(target=lambda: outcome.append(client.acquire("y", "p", timeout=5)))
    waiter.start()
    wait_for(lambda: client.lock_status("y")["waiters"], 5, "p waiting for y")
    with pytest.raises(rakit.Deadlock) as caught:
        client.acquire("x", "q", timeout=5)
    assert set(caught.value.cycle) == {"p", "q"}
    client.release("x", "p")
    client.release("y", "q")  # the waiting p is granted y
    waiter.join(10)
    assert outcome and outcome[0]["acquired"]
    client.release("y", "p")


def test_requests_fail_over_while_the_leader_is_killed(cluster, client):
    leader = leader_of(client)
    assert leader is not None
    done: list[int] = []
    errors: list[Exception] = []
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            try:
                with client.lock(f"fo-{i % 4}", ttl=5, timeout=5) as lease:
                    assert lease.fencing_token
                done.append(i)
            except rakit.RakitError as exc:  # every failure must be a named one, and rare
                errors.append(exc)
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    wait_for(lambda: len(done) >= 5, 20, "locks before the kill")
    cluster.nodes[leader].kill()
    before = len(done)
    wait_for(lambda: len(done) >= before + 10, 30, "locks after the kill (failover)")
    stop.set()
    thread.join(30)
    assert leader_of(client) not in (None, leader)
    assert not errors, f"the client should have retried through the failover: {errors[:3]}"


def test_renewal_keeps_a_lock_past_its_ttl(client):
    with client.lock("long", ttl=1.5, timeout=2) as lease:
        token = lease.fencing_token
        time.sleep(4.0)  # the point of the test: hold it well past the ttl
        assert not lease.is_lost
        lease.check()
        status = client.lock_status("long")
        assert status["holders"] == [lease.client_id] and status["fencing_token"] == token
    assert client.lock_status("long")["holders"] == []


def test_lock_lost_when_the_lease_runs_out_sync(client):
    other = rakit.Client(client.nodes)
    try:
        lease = client.lock("lost-sync", ttl=1.0, renew=False).acquire()
        wait_for(lambda: client.lock_status("lost-sync")["holders"] == [], 10, "the lease to expire")
        with other.lock("lost-sync", ttl=5, timeout=5) as theirs:
            assert theirs.fencing_token > lease.fencing_token
            with pytest.raises(rakit.LockLost):
                lease.check()
            with pytest.raises(rakit.NotHolder):
                lease.renew()
    finally:
        other.close()


def async_lock_lost_scenario():
    async def scenario(urls: list[str]) -> None:
        async with rakit.AsyncClient(urls, timeout=3.0) as client, rakit.AsyncClient(urls) as other:
            lock = client.lock("lost-async", ttl=1.0)
            reached_end = False
            with pytest.raises(rakit.LockLost):
                async with lock as lease:
                    # A stuck client: its renewals stop, the lease runs out, another takes it ...
                    assert lease._renewer is not None
                    lease._renewer.cancel()
                    deadline = time.monotonic() + 10
                    while (await client.lock_status("lost-async"))["holders"]:
                        assert time.monotonic() < deadline
                        await asyncio.sleep(0.05)
                    await other.acquire("lost-async", "thief", ttl=10)
                    # ... and when renewal runs again, the loss cancels this block.
                    lease._renewer = asyncio.create_task(lease._renew_loop())
                    await asyncio.sleep(10)
                    reached_end = True
            assert not reached_end and lock.is_lost
            assert (await client.lock_status("lost-async"))["holders"] == ["thief"]

    return scenario


def test_async_lock_lost(cluster):
    urls = [n.url for n in cluster.nodes.values()]
    with rakit.Client(urls) as c:
        wait_for(lambda: leader_of(c), 15, "a leader")
    asyncio.run(async_lock_lost_scenario()(urls))


def test_async_client_basics(cluster):
    urls = [n.url for n in cluster.nodes.values()]

    async def scenario() -> None:
        async with rakit.AsyncClient(urls) as client:
            nodes = await client.status()
            assert len(nodes) == 3 and all(n["ok"] for n in nodes)
            async with client.lock("a-res", ttl=5) as lease:
                assert (await client.lock_status("a-res"))["fencing_token"] == lease.fencing_token
            q = client.queue("a-topic")
            mid = await q.push({"n": 1}, message_id="m-1")
            assert await q.push({"n": 1}, message_id="m-1") == mid  # deduplicated
            got: list[object] = []

            async def handler(message: object) -> None:
                got.append(message)

            assert await q.consume(handler, "ac", wait=0.5, idle_exit=True) == 1
            assert got == [{"n": 1}]

    with rakit.Client(urls) as c:
        wait_for(lambda: leader_of(c), 15, "a leader")
    asyncio.run(scenario())


def test_consumer_helper_nacks_a_failing_message_and_delivers_it_again(client):
    q = client.queue("jobs")
    for i in range(6):
        q.push({"i": i}, message_id=f"job-{i}")
    handled: list[int] = []
    failed_once: set[int] = set()

    def handler(message: dict[str, int]) -> None:
        if message["i"] == 3 and 3 not in failed_once:
            failed_once.add(3)
            raise RuntimeError("crash in the middle")
        handled.append(message["i"])

    acked = q.consume(handler, "w1", wait=0.5, idle_exit=True, visibility_timeout=10)
    assert acked == 6 and sorted(handled) == list(range(6)) and failed_once == {3}
    assert q.stats()["in_flight"] == 0 and q.stats()["ready"] == 0


CONSUMER = textwrap.dedent("""
    import sys, time, rakit
    client = rakit.Client(sys.argv[1])
    def handler(message):
        print("got", message["i"], flush=True)
        if message["i"] == 2:
            time.sleep(60)  # killed here, between pop and ack
    client.queue("stream").consume(handler, "doomed", wait=1, visibility_timeout=2)
""")


def test_a_consumer_killed_mid_stream_loses_nothing(client, tmp_path):
    q = client.queue("stream")
    for i in range(5):
        q.push({"i": i}, message_id=f"s-{i}")
    script = tmp_path / "consumer.py"
    script.write_text(CONSUMER)
    proc = subprocess.Popen([sys.executable, str(script), ",".join(client.nodes)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = []
        while len(lines) < 3:
            line = proc.stdout.readline()
            assert line, "the consumer exited early"
            lines.append(line.split()[1])
        assert lines == ["0", "1", "2"]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(10)
    seen: list[int] = []
    deadline = time.monotonic() + 30
    while sorted(set(seen)) != [2, 3, 4] and time.monotonic() < deadline:
        q.consume(lambda m: seen.append(m["i"]), "survivor", wait=1, idle_exit=True, visibility_timeout=10)
    assert sorted(set(seen)) == [2, 3, 4]  # message 2 redelivered after its visibility timeout


def test_cache_get_set_delete_with_default(client):
    wait_for(lambda: cache_ready(client), 20, "the cache to serve")
    assert client.cache.get("missing", default="dflt") == "dflt"
    version = client.cache.set("user:1", {"name": "Ada"}, ttl=60)
    assert version.endswith((".node1", ".node2", ".node3"))
    for url in client.nodes:
        assert client.cache.stats(url)["node"]
    assert client.cache.get("user:1") == {"name": "Ada"}
    assert client.cache.delete("user:1") is True
    assert client.cache.get("user:1", default=None) is None
    with pytest.raises(rakit.TooLarge):
        client.cache.set("big", "x" * (1024 * 1024 + 10))


def test_unreachable_nodes_raise_connection_failed_quickly():
    client = rakit.Client(["http://127.0.0.1:9"], attempts=2, retry_deadline=2.0, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(rakit.ConnectionFailed):
        client.cache.get("k")
    assert time.monotonic() - started < 5
    assert RetryPolicy().attempts >= 2
