"""rakit.queue.redis_store on a real 3-shard Redis Cluster started on loopback.

Three ``redis-server --cluster-enabled yes`` processes on free ports; the
slots are split with ``redis-cli --cluster create`` when redis-cli exists,
else by hand (CLUSTER ADDSLOTSRANGE + CLUSTER MEET).  Every topic's keys share
one hash slot, so the same store runs unchanged through
``redis.asyncio.cluster.RedisCluster``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from rakit.launcher import LaunchError, find_redis_server, free_ports, port_is_free, wait_until
from rakit.queue.redis_store import DeadLetter, RedisQueueStore, RequeueResult, TopicKeys, connect, slot_of

pytestmark = pytest.mark.integration

SHARDS = 3


def _redis_server_or_skip() -> str:
    try:
        return find_redis_server()
    except LaunchError as exc:
        pytest.skip(f"no redis-server to build a Redis Cluster from: {exc}")


@dataclass
class Shard:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=2)


@dataclass
class ClusterInfo:
    shards: list[Shard]
    # slot ranges served by each shard's port
    ranges: dict[int, list[tuple[int, int]]]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.shards[0].port}/0"

    def port_of_slot(self, slot: int) -> int:
        for port, ranges in self.ranges.items():
            if any(a <= slot <= b for a, b in ranges):
                return port
        raise AssertionError(f"slot {slot} is not served")


def _cluster_state_ok(shards: list[Shard]) -> bool:
    for shard in shards:
        if shard.proc.poll() is not None:
            raise RuntimeError(f"redis-server on port {shard.port} exited: {shard.log.read_text()[-500:]}")
        c = shard.client()
        try:
            info = c.execute_command("CLUSTER", "INFO")
            text = info.decode() if isinstance(info, bytes) else str(info)
            if "cluster_state:ok" not in text or "cluster_known_nodes:3" not in text:
                return False
        except (redis.RedisError, OSError):
            return False
        finally:
            c.close()
    return True


def _create_cluster(shards: list[Shard]) -> None:
    cli = shutil.which("redis-cli")
    if cli and not os.environ.get("RAKIT_TEST_CLUSTER_BY_HAND"):
        out = subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{s.port}" for s in shards),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        if out.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {out.stdout[-800:]} {out.stderr[-800:]}")
        return
    # By hand: split the 16384 slots in equal ranges, then introduce the nodes.
    per = 16384 // len(shards)
    for i, shard in enumerate(shards):
        start, end = i * per, (16383 if i == len(shards) - 1 else (i + 1) * per - 1)
        c = shard.client()
        try:
            c.execute_command("CLUSTER", "ADDSLOTSRANGE", start, end)
        finally:
            c.close()
    first = shards[0].client()
    try:
        for shard in shards[1:]:
            first.execute_command("CLUSTER", "MEET", "127.0.0.1", shard.port)
    finally:
        first.close()


def _slot_ranges(shard: Shard) -> dict[int, list[tuple[int, int]]]:
    c = shard.client()
    try:
        ranges: dict[int, list[tuple[int, int]]] = {}
        for entry in c.execute_command("CLUSTER", "SLOTS"):
            start, end, primary = int(entry[0]), int(entry[1]), entry[2]
            ranges.setdefault(int(primary[1]), []).append((start, end))
        return ranges
    finally:
        c.close()


def cluster_ports(n: int, timeout: float = 10.0) -> list[int]:
    """``n`` free ports whose cluster-bus port (port + 10000) is valid and free too."""
    chosen: list[int] = []

    def more() -> bool:
        for port in free_ports(n):
            if (
                port + 10000 <= 65535
                and port not in chosen
                and port + 10000 not in chosen
                and port_is_free(port + 10000)
                and len(chosen) < n
            ):
                chosen.append(port)
        return len(chosen) == n

    wait_until(more, timeout, f"{n} free ports with free cluster-bus ports", interval=0.01)
    return chosen


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    exe = _redis_server_or_skip()
    root = tmp_path_factory.mktemp("redis-cluster")
    shards: list[Shard] = []
    try:
        for port in cluster_ports(SHARDS):
            data = root / str(port)
            data.mkdir()
            log = data / "redis.log"
            conf = data / "redis.conf"
            conf.write_text(
                "\n".join(
                    [
                        f"port {port}",
                        "bind 127.0.0.1",
                        f'dir "{data}"',
                        f'logfile "{log}"',
                        "cluster-enabled yes",
                        "cluster-config-file nodes.conf",
                        "cluster-node-timeout 2000",
                        "appendonly no",
                        'save ""',
                        "daemonize no",
                        "protected-mode no",
                    ]
                )
                + "\n"
            )
            proc = subprocess.Popen(
                [exe, str(conf)],
                cwd=data,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            shards.append(Shard(port, proc, log))

        def answers(shard: Shard) -> bool:
            c = shard.client()
            try:
                return bool(c.ping())
            except (redis.RedisError, OSError):
                if shard.proc.poll() is not None:
                    raise RuntimeError(f"redis-server on port {shard.port} exited") from None
                return False
            finally:
                c.close()

        for shard in shards:
            wait_until(lambda s=shard: answers(s), 10, f"redis-server on port {shard.port}")
        _create_cluster(shards)
        wait_until(lambda: _cluster_state_ok(shards), 20, "cluster_state:ok on every shard", interval=0.1)
        ranges = _slot_ranges(shards[0])
        assert sorted(ranges) == sorted(s.port for s in shards), ranges
        yield ClusterInfo(shards, ranges)
    finally:
        for shard in shards:
            if shard.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    shard.proc.send_signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                shard.proc.wait(5)


@pytest.fixture
async def cluster_client(redis_cluster: ClusterInfo) -> AsyncIterator[Any]:
    r = connect(redis_cluster.url, cluster=True)
    try:
        await r.initialize()
        yield r
    finally:
        await r.aclose()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def topics_on_every_shard(cluster: ClusterInfo, prefix: str) -> dict[int, str]:
    """One topic name per shard port, named ``{prefix}-{n}``."""
    chosen: dict[int, str] = {}
    n = 0
    while len(chosen) < SHARDS:
        topic = f"{prefix}-{n}"
        chosen.setdefault(cluster.port_of_slot(slot_of(topic)), topic)
        n += 1
    return chosen


async def test_topics_on_three_shards_push_pop_ack_requeue_dead_letter(
    redis_cluster: ClusterInfo, cluster_client: Any
) -> None:
    clock = FakeClock()
    store = RedisQueueStore(cluster_client, max_deliveries=2, dedup_window=60, clock=clock)
    by_port = topics_on_every_shard(redis_cluster, "orders")
    topics = list(by_port.values())
    # The client agrees the topics live on three different shards.
    nodes = {cluster_client.get_node_from_key(TopicKeys(t).queue).port for t in topics}
    assert nodes == {s.port for s in redis_cluster.shards}

    for t in topics:
        for i in range(4):
            assert not (await store.push(t, f"m{i}", f"{t}/{i}".encode())).duplicate
        assert (await store.push(t, "m0", b"again")).duplicate
    for t in topics:
        d0 = await store.pop(t, "c1", 5)
        d1 = await store.pop(t, "c2", 5)
        assert d0 is not None and d1 is not None
        assert (d0.message_id, d0.body, d0.delivery_count) == ("m0", f"{t}/0".encode(), 1)
        assert d1.message_id == "m1"
        assert await store.ack(t, "c1", "m0")
        assert not await store.ack(t, "c1", "m0")
    assert await store.topics_with_inflight() == set(topics)

    clock.now += 10
    for t in topics:
        assert await store.requeue_expired(t) == RequeueResult(["m1"], [])
        d = await store.pop(t, "c3", 5)
        assert d is not None and (d.message_id, d.delivery_count) == ("m1", 2)
    clock.now += 10
    for t in topics:
        assert await store.requeue_expired(t) == RequeueResult([], ["m1"])
        assert await store.dead_letters(t) == [DeadLetter("m1", f"{t}/1".encode(), 2)]
        assert await store.stats(t) == {"ready": 2, "in_flight": 0, "dead": 1}
        assert await store.redrive(t) == 1
        d = await store.pop(t, "c4", 5)
        assert d is not None and d.message_id == "m2"
        assert await store.nack(t, "c4", "m2")
    assert await store.topics_with_inflight() == set()

    # Every key of a topic, the in-flight registry included, sits on the shard
    # that serves the topic's slot.
    for port, t in by_port.items():
        shard = next(s for s in redis_cluster.shards if s.port == port)
        c = shard.client()
        try:
            keys = {k.decode() for k in c.keys(f"*{{{t}}}*")}
            k = TopicKeys(t)
            assert {k.queue, k.bodies, k.order, k.seq, k.dedup} <= keys
            assert c.execute_command("CLUSTER", "KEYSLOT", k.inflight_topics) == slot_of(t)
        finally:
            c.close()


async def test_concurrent_pops_on_a_cluster_never_duplicate(redis_cluster: ClusterInfo, cluster_client: Any) -> None:
    store = RedisQueueStore(cluster_client, clock=FakeClock())
    topics = list(topics_on_every_shard(redis_cluster, "race").values())
    ids = [f"m{i}" for i in range(20)]
    for t in topics:
        for i in ids:
            await store.push(t, i, b"x")
    results = await asyncio.gather(*(store.pop(t, f"c{i % 5}", 30) for t in topics for i in range(50)))
    for t_index, t in enumerate(topics):
        got = [d.message_id for d in results[t_index * 50 : (t_index + 1) * 50] if d is not None]
        assert sorted(got) == sorted(ids) and len(set(got)) == 20
        assert await store.stats(t) == {"ready": 0, "in_flight": 20, "dead": 0}
    assert set(topics) <= await store.topics_with_inflight()


async def test_scripts_flushed_from_every_shard_are_reloaded(redis_cluster: ClusterInfo, cluster_client: Any) -> None:
    store = RedisQueueStore(cluster_client, clock=FakeClock())
    topics = list(topics_on_every_shard(redis_cluster, "noscript").values())
    for t in topics:
        await store.push(t, "a", b"1")
    for shard in redis_cluster.shards:
        c = shard.client()
        try:
            c.script_flush()
        finally:
            c.close()
    for t in topics:
        assert not (await store.push(t, "b", b"2")).duplicate
        d = await store.pop(t, "c", 5)
        assert d is not None and d.message_id == "a"
