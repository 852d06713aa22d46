"""rakit.queue.redis_store against a private redis-server on a free port: what only Redis has.

Keys, scripts, restarts, timeouts.  The store's behaviour (the ``QueueStore``
contract) is tested on this store and its twin together:
``test_queue_store_contract.py``, which uses this module's fixtures.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from rakit.errors import Unavailable
from rakit.launcher import RedisProcess, free_port
from rakit.queue.redis_store import (
    INFLIGHT_SLOTS_KEY,
    PushResult,
    RedisQueueStore,
    RequeueResult,
    TopicKeys,
    connect,
    slot_of,
    slot_tag,
)
from rakit.queue.store import QueueStore

pytestmark = pytest.mark.integration


class FakeClock:
    """The store's clock, moved by hand."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def client(redis_server: RedisProcess) -> AsyncIterator[Any]:
    r = connect(redis_server.url)
    try:
        yield r
    finally:
        await r.aclose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(client: Any, clock: FakeClock) -> RedisQueueStore:
    return RedisQueueStore(client, max_deliveries=3, dedup_window=60.0, clock=clock)


async def push_all(store: QueueStore, topic: str, ids: list[str]) -> None:
    for i in ids:
        assert await store.push(topic, i, f"body of {i}".encode()) == PushResult(i, duplicate=False)


async def ready_ids(client: Any, topic: str) -> list[str]:
    return [m.decode() for m in await client.zrange(TopicKeys(topic).queue, 0, -1)]


# -- what a message leaves in Redis (the contract itself: test_queue_store_contract.py) --------


async def test_pop_moves_the_head_to_processing(store: RedisQueueStore, client: Any, clock: FakeClock) -> None:
    await push_all(store, "orders", ["m1", "m2"])
    assert await store.pop("orders", "c1", 12.5) is not None
    k = TopicKeys("orders")
    assert k.queue == "queue:{orders}" and k.processing("c1") == "processing:{orders}:c1"
    assert await ready_ids(client, "orders") == ["m2"]
    assert await client.lrange("processing:{orders}:c1", 0, -1) == [b"m1"]
    assert float(await client.hget("timestamps:{orders}:c1", "m1")) == clock.now + 12.5
    assert await client.zrange("deadlines:{orders}", 0, -1, withscores=True) == [(b"c1:m1", clock.now + 12.5)]
    assert await client.hget("deliveries:{orders}", "m1") == b"1"
    assert await client.sismember(INFLIGHT_SLOTS_KEY, slot_of("orders"))
    assert await client.smembers(TopicKeys("orders").inflight_topics) == {b"orders"}


async def test_requeue_and_ack_leave_only_the_sequence_and_the_dedup_entry(
    store: RedisQueueStore, client: Any, clock: FakeClock
) -> None:
    await push_all(store, "t", ["m1", "m2"])
    assert await store.pop("t", "c1", 5) is not None
    assert await store.pop("t", "c1", 50) is not None
    clock.advance(6)
    assert await store.requeue_expired("t") == RequeueResult(["m1"], [])
    assert await ready_ids(client, "t") == ["m1"]
    assert await client.lrange("processing:{t}:c1", 0, -1) == [b"m2"]
    assert await client.hkeys("timestamps:{t}:c1") == [b"m2"]
    assert await store.ack("t", "c1", "m2")
    d = await store.pop("t", "c2", 5)
    assert d is not None and await store.ack("t", "c2", d.message_id)
    k = TopicKeys("t")
    assert sorted(key.decode() for key in await client.keys("*{t}*")) == sorted([k.seq, k.dedup])
    assert not await client.exists(k.inflight_topics)  # the slot's registry set emptied


async def test_dedup_window_zero_writes_no_dedup_key(client: Any, clock: FakeClock) -> None:
    store = RedisQueueStore(client, dedup_window=0, clock=clock)
    assert not (await store.push("t", "a", b"1")).duplicate
    assert (await store.push("t", "a", b"1")).duplicate
    assert not await client.exists(TopicKeys("t").dedup)


# -- names and arguments ----------------------------------------------------------


async def test_a_client_decoding_replies_is_refused(client: Any) -> None:
    decoded = connect("redis://127.0.0.1:1/0", decode_responses=True)
    try:
        with pytest.raises(ValueError, match="decode_responses"):
            RedisQueueStore(decoded)
    finally:
        await decoded.aclose()
    assert await client.dbsize() == 0  # nothing was written


def test_key_names_of_different_topics_or_consumers_never_collide() -> None:
    # Allowed names contain no ':', '{' or '}', so a key name splits back into
    # (family, topic, consumer) one way only.
    names = ["a", "a.b", "a-b", "a_b", "b", "ab", "A", "orders", "orders.c1", "c1", "0", "x" * 128, "."]
    seen: dict[str, tuple[str, str | None]] = {}
    for topic in names:
        k = TopicKeys(topic)
        keys = [(key, None) for key in k.all_keys()] + [
            (key, c) for c in names for key in (k.processing(c), k.timestamps(c))
        ]
        for key, consumer in keys:
            assert key not in seen, f"{key} of {(topic, consumer)} collides with {seen[key]}"
            seen[key] = (topic, consumer)
            assert key.count("{") == 1 and key[key.index("{") + 1 : key.index("}")] == topic
    for slot in (0, 1, 16383, slot_of("orders")):
        assert slot_of(slot_tag(slot)) == slot
        assert f"inflight-topics:{{{slot_tag(slot)}}}" not in seen


# -- durability and failure --------------------------------------------------------


async def test_acknowledged_pushes_survive_sigkill_and_restart_from_the_aof(tmp_path: Path) -> None:
    server = RedisProcess(free_port(), tmp_path / "aof", appendonly=True, appendfsync="always")
    server.start(wait=True, timeout=10)
    r = connect(server.url)
    try:
        store = RedisQueueStore(r, clock=FakeClock())
        ids = [f"m{i:03d}" for i in range(100)]
        await push_all(store, "durable", ids)
        for _ in range(10):
            assert await store.pop("durable", "c", 30) is not None
        for i in ids[:5]:
            assert await store.ack("durable", "c", i)
        server.kill()
        assert not server.alive
        server.start(wait=True, timeout=10)
        # Same client and store: it reconnects and reloads its scripts (NOSCRIPT) by itself.
        assert await store.stats("durable") == {"ready": 90, "in_flight": 5, "dead": 0}
        got = []
        while (d := await store.pop("durable", "c2", 30)) is not None:
            got.append(d.message_id)
        assert got == ids[10:]
        assert await store.topics_with_inflight() == {"durable"}
    finally:
        await r.aclose()
        server.stop()


async def test_calls_raise_unavailable_quickly_while_redis_is_down(redis_server: RedisProcess) -> None:
    r = connect(redis_server.url)
    try:
        store = RedisQueueStore(r)
        await store.push("t", "m1", b"x")
        calls = {
            "push": lambda: store.push("t", "m2", b"x"),
            "pop": lambda: store.pop("t", "c", 5),
            "ack": lambda: store.ack("t", "c", "m1"),
            "requeue": lambda: store.requeue_expired("t"),
            "stats": lambda: store.stats("t"),
            "discovery": lambda: store.topics_with_inflight(),
        }

        async def assert_unavailable(why: str) -> None:
            for name, call in calls.items():
                started = time.monotonic()
                with pytest.raises(Unavailable):
                    await call()
                elapsed = time.monotonic() - started
                assert elapsed < 5, f"{name} took {elapsed:.2f} s while Redis was {why}"

        # Frozen (SIGSTOP): connections hang, so the timeouts must fire.
        assert redis_server.pid is not None
        os.kill(redis_server.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            await assert_unavailable("frozen")
            print(f"\nfrozen Redis: {len(calls)} calls failed in {time.monotonic() - started:.2f} s")
        finally:
            os.kill(redis_server.pid, signal.SIGCONT)
        # Dead (SIGKILL): connections are refused.
        redis_server.kill()
        await assert_unavailable("dead")
        # Back again: service resumes with the same client, nothing half-done.
        redis_server.start(wait=True, timeout=10)
        assert (await store.stats("t"))["ready"] >= 1
        d = await store.pop("t", "c", 5)
        assert d is not None and d.message_id == "m1"
        assert await store.ack("t", "c", "m1")
    finally:
        await r.aclose()
