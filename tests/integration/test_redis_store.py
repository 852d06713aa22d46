"""rakit.queue.redis_store against a private redis-server on a free port."""

from __future__ import annotations

import asyncio
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
    DeadLetter,
    Delivery,
    PushResult,
    RedisQueueStore,
    RequeueResult,
    TopicKeys,
    connect,
    slot_of,
    slot_tag,
)

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


async def push_all(store: RedisQueueStore, topic: str, ids: list[str]) -> None:
    for i in ids:
        assert await store.push(topic, i, f"body of {i}".encode()) == PushResult(i, duplicate=False)


async def ready_ids(client: Any, topic: str) -> list[str]:
    return [m.decode() for m in await client.zrange(TopicKeys(topic).queue, 0, -1)]


# -- basics ---------------------------------------------------------------


async def test_fifo(store: RedisQueueStore) -> None:
    ids = [f"m{i}" for i in range(10)]
    await push_all(store, "orders", ids)
    got = []
    for _ in ids:
        d = await store.pop("orders", "c1", 30)
        assert d is not None
        assert d.body == f"body of {d.message_id}".encode() and d.delivery_count == 1
        got.append(d.message_id)
    assert got == ids
    assert await store.pop("orders", "c1", 30) is None
    assert await store.pop("never-pushed", "c1", 30) is None


async def test_bodies_are_bytes_kept_exactly(store: RedisQueueStore) -> None:
    body = bytes(range(256)) * 10 + b'{"json": true}'
    await store.push("t", "bin", body)
    d = await store.pop("t", "c", 5)
    assert d is not None and d.body == body


async def test_dedup_within_the_window_and_after_ack(store: RedisQueueStore, clock: FakeClock) -> None:
    assert await store.push("t", "a", b"1") == PushResult("a", duplicate=False)
    assert await store.push("t", "a", b"other") == PushResult("a", duplicate=True)
    assert (await store.stats("t"))["ready"] == 1
    d = await store.pop("t", "c", 30)
    assert d is not None and d.body == b"1"
    assert await store.ack("t", "c", "a")
    clock.advance(59)
    assert await store.push("t", "a", b"again") == PushResult("a", duplicate=True)  # acked, still in window
    assert await store.stats("t") == {"ready": 0, "in_flight": 0, "dead": 0}
    clock.advance(2)  # 61 s after the first push: forgotten
    assert await store.push("t", "a", b"new") == PushResult("a", duplicate=False)
    d = await store.pop("t", "c", 30)
    assert d is not None and d.body == b"new" and d.delivery_count == 1
    # The same id on another topic is another message.
    assert await store.push("u", "a", b"x") == PushResult("a", duplicate=False)


async def test_a_live_message_is_a_duplicate_even_after_the_window(store: RedisQueueStore, clock: FakeClock) -> None:
    await store.push("t", "a", b"1")
    clock.advance(600)
    assert (await store.push("t", "a", b"2")).duplicate  # still ready
    d = await store.pop("t", "c", 30)
    assert d is not None
    assert (await store.push("t", "a", b"2")).duplicate  # in flight
    assert await store.nack("t", "c", "a")
    assert (await store.stats("t"))["ready"] == 1


async def test_dedup_window_zero_keeps_only_the_live_rule(client: Any, clock: FakeClock) -> None:
    store = RedisQueueStore(client, dedup_window=0, clock=clock)
    await store.push("t", "a", b"1")
    assert (await store.push("t", "a", b"1")).duplicate
    d = await store.pop("t", "c", 30)
    assert d is not None and await store.ack("t", "c", "a")
    assert not (await store.push("t", "a", b"1")).duplicate
    assert not await client.exists(TopicKeys("t").dedup)


async def test_pop_moves_the_head_to_processing(store: RedisQueueStore, client: Any, clock: FakeClock) -> None:
    await push_all(store, "orders", ["m1", "m2"])
    d = await store.pop("orders", "c1", 12.5)
    assert d == Delivery("m1", b"body of m1", 1, clock.now + 12.5)
    k = TopicKeys("orders")
    assert k.queue == "queue:{orders}" and k.processing("c1") == "processing:{orders}:c1"
    assert await ready_ids(client, "orders") == ["m2"]
    assert await client.lrange("processing:{orders}:c1", 0, -1) == [b"m1"]
    assert float(await client.hget("timestamps:{orders}:c1", "m1")) == clock.now + 12.5
    assert await client.zrange("deadlines:{orders}", 0, -1, withscores=True) == [(b"c1:m1", clock.now + 12.5)]
    assert await client.hget("deliveries:{orders}", "m1") == b"1"
    assert await store.topics_with_inflight() == {"orders"}
    assert await client.sismember(INFLIGHT_SLOTS_KEY, slot_of("orders"))
    assert await store.next_deadline("orders") == clock.now + 12.5
    assert await store.stats("orders") == {"ready": 1, "in_flight": 1, "dead": 0}


async def test_ack(store: RedisQueueStore, client: Any) -> None:
    await push_all(store, "t", ["m1"])
    d = await store.pop("t", "c1", 30)
    assert d is not None
    assert not await store.ack("t", "c2", "m1")  # not this consumer's
    assert not await store.ack("t", "c1", "nope")  # never pushed
    assert await store.ack("t", "c1", "m1")
    assert not await store.ack("t", "c1", "m1")  # already acked
    assert await store.stats("t") == {"ready": 0, "in_flight": 0, "dead": 0}
    assert await store.topics_with_inflight() == set()
    # Nothing of the message is left but its dedup entry.
    k = TopicKeys("t")
    assert sorted(key.decode() for key in await client.keys("*{t}*")) == sorted([k.seq, k.dedup])


async def test_ack_of_a_message_never_popped_is_false(store: RedisQueueStore) -> None:
    await push_all(store, "t", ["m1"])
    assert not await store.ack("t", "c1", "m1")
    assert (await store.stats("t"))["ready"] == 1


async def test_nack_returns_the_message_to_the_head_with_its_count(store: RedisQueueStore) -> None:
    await push_all(store, "t", ["m1", "m2", "m3"])
    d1 = await store.pop("t", "c1", 30)
    d2 = await store.pop("t", "c2", 30)
    assert d1 is not None and d2 is not None
    assert await store.nack("t", "c2", "m2")
    assert await store.nack("t", "c1", "m1")
    assert not await store.nack("t", "c1", "m1")  # no longer in flight
    assert not await store.nack("t", "c1", "m3")  # never popped
    got = [await store.pop("t", "c3", 30) for _ in range(3)]
    # Back in push order at the head, their deliveries counted.
    assert [(d.message_id, d.delivery_count) for d in got if d] == [("m1", 2), ("m2", 2), ("m3", 1)]


async def test_nack_at_max_deliveries_moves_to_dead_letters(store: RedisQueueStore) -> None:
    await push_all(store, "t", ["m1"])
    for count in (1, 2, 3):
        d = await store.pop("t", "c", 30)
        assert d is not None and d.delivery_count == count
        assert await store.nack("t", "c", "m1")
    assert await store.stats("t") == {"ready": 0, "in_flight": 0, "dead": 1}
    assert await store.dead_letters("t") == [DeadLetter("m1", b"body of m1", 3)]


# -- visibility timeouts, dead letters -----------------------------------------


async def test_expired_messages_go_back_to_the_head_in_push_order(
    store: RedisQueueStore, client: Any, clock: FakeClock
) -> None:
    await push_all(store, "t", ["m1", "m2", "m3", "m4"])
    assert (d1 := await store.pop("t", "c1", 10)) is not None and d1.message_id == "m1"
    assert (d2 := await store.pop("t", "c2", 5)) is not None and d2.message_id == "m2"
    assert await store.requeue_expired("t", clock.now + 4.9) == RequeueResult([], [])
    clock.advance(6)
    assert await store.requeue_expired("t", clock.now) == RequeueResult(["m2"], [])
    assert await ready_ids(client, "t") == ["m2", "m3", "m4"]
    clock.advance(5)
    assert await store.requeue_expired("t") == RequeueResult(["m1"], [])  # now from the clock
    assert await ready_ids(client, "t") == ["m1", "m2", "m3", "m4"]
    assert not await store.ack("t", "c1", "m1")  # its visibility ended: not in flight for c1
    assert await client.llen("processing:{t}:c1") == 0 and await client.hlen("timestamps:{t}:c1") == 0
    d = await store.pop("t", "c3", 10)
    assert d is not None and (d.message_id, d.delivery_count) == ("m1", 2)
    assert await store.stats("t") == {"ready": 3, "in_flight": 1, "dead": 0}


async def test_requeue_respects_limit_and_several_consumers(
    store: RedisQueueStore, client: Any, clock: FakeClock
) -> None:
    ids = [f"m{i:02d}" for i in range(12)]
    await push_all(store, "t", ids)
    for i in range(12):
        assert await store.pop("t", f"c{i % 4}", 1 + i * 0.01) is not None
    clock.advance(5)
    first = await store.requeue_expired("t", limit=5)
    assert first.requeued == ids[:5]  # earliest deadlines first
    rest = await store.requeue_expired("t", limit=100)
    assert sorted(rest.requeued) == ids[5:]
    assert await ready_ids(client, "t") == ids
    assert await store.topics_with_inflight() == set()


async def test_after_max_deliveries_a_message_goes_to_dead_letters(store: RedisQueueStore, clock: FakeClock) -> None:
    await push_all(store, "t", ["m1", "m2"])
    for count in (1, 2, 3):
        d = await store.pop("t", "c", 5)
        assert d is not None and (d.message_id, d.delivery_count) == ("m1", count)
        clock.advance(6)
        result = await store.requeue_expired("t")
        assert result == (RequeueResult(["m1"], []) if count < 3 else RequeueResult([], ["m1"]))
    assert await store.stats("t") == {"ready": 1, "in_flight": 0, "dead": 1}
    assert await store.dead_letters("t") == [DeadLetter("m1", b"body of m1", 3)]
    assert (await store.push("t", "m1", b"x")).duplicate  # a dead letter is still live
    d = await store.pop("t", "c", 5)
    assert d is not None and d.message_id == "m2"


async def test_redrive_moves_dead_letters_to_the_tail_with_a_fresh_count(
    store: RedisQueueStore, client: Any, clock: FakeClock
) -> None:
    await push_all(store, "t", ["d1", "d2", "d3"])
    for _ in range(3):
        for _ in range(3):
            assert await store.pop("t", "c", 1) is not None
        clock.advance(2)
        await store.requeue_expired("t")
    assert [x.message_id for x in await store.dead_letters("t")] == ["d1", "d2", "d3"]
    assert [x.message_id for x in await store.dead_letters("t", limit=2, offset=1)] == ["d2", "d3"]
    await push_all(store, "t", ["live"])
    assert await store.redrive("t", limit=2) == 2
    assert await ready_ids(client, "t") == ["live", "d1", "d2"]
    assert await store.redrive("t") == 1
    assert await store.redrive("t") == 0
    got = [await store.pop("t", "c", 5) for _ in range(4)]
    assert [(d.message_id, d.delivery_count) for d in got if d] == [("live", 1), ("d1", 1), ("d2", 1), ("d3", 1)]


async def test_extend(store: RedisQueueStore, clock: FakeClock) -> None:
    await push_all(store, "t", ["m1"])
    assert await store.pop("t", "c", 5) is not None
    assert await store.extend("t", "c", "m1", 100)
    assert await store.next_deadline("t") == clock.now + 100
    clock.advance(50)
    assert await store.requeue_expired("t") == RequeueResult([], [])
    assert not await store.extend("t", "other", "m1", 100)
    assert not await store.extend("t", "c", "unknown", 100)
    clock.advance(51)
    assert await store.requeue_expired("t") == RequeueResult(["m1"], [])
    assert not await store.extend("t", "c", "m1", 100)  # requeued: no longer in flight


async def test_stats_and_discovery_over_several_topics(store: RedisQueueStore) -> None:
    assert await store.stats("empty") == {"ready": 0, "in_flight": 0, "dead": 0}
    for t in ("a", "b", "c"):
        await push_all(store, t, ["1", "2", "3"])
    assert await store.pop("a", "x", 5) is not None
    assert await store.pop("b", "x", 5) is not None
    assert await store.pop("b", "y", 5) is not None
    assert await store.topics_with_inflight() == {"a", "b"}
    assert await store.stats("b") == {"ready": 1, "in_flight": 2, "dead": 0}
    assert await store.ack("b", "x", "1")
    assert await store.topics_with_inflight() == {"a", "b"}
    assert await store.ack("b", "y", "2")
    assert await store.topics_with_inflight() == {"a"}


# -- names and arguments ----------------------------------------------------------

BAD_NAMES = ["", "a:b", "{a}", "a}b", "a{b", "a b", "é", "x" * 129, "a/b", "a\nb", None, 5]


@pytest.mark.parametrize("bad", BAD_NAMES)
async def test_bad_names_are_refused(store: RedisQueueStore, bad: Any) -> None:
    with pytest.raises(ValueError):
        await store.push(bad, "m", b"x")
    with pytest.raises(ValueError):
        await store.pop(bad, "c", 5)
    with pytest.raises(ValueError):
        await store.pop("t", bad, 5)
    with pytest.raises(ValueError):
        await store.ack("t", bad, "m")
    with pytest.raises(ValueError):
        await store.stats(bad)
    if bad != "a:b":  # a colon is allowed in a message id
        with pytest.raises(ValueError):
            await store.push("t", bad, b"x")


async def test_bad_arguments_are_refused(store: RedisQueueStore, client: Any) -> None:
    for vt in (0, -1, float("nan"), float("inf"), "5", True):
        with pytest.raises(ValueError):
            await store.pop("t", "c", vt)
    with pytest.raises(TypeError):
        await store.push("t", "m", "text")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await store.requeue_expired("t", limit=0)
    with pytest.raises(ValueError):
        RedisQueueStore(client, max_deliveries=0)
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


# -- atomicity under concurrency -------------------------------------------------


async def test_concurrent_pops_never_deliver_a_message_twice_nor_lose_one(store: RedisQueueStore) -> None:
    ids = [f"m{i}" for i in range(20)]
    await push_all(store, "t", ids)
    results = await asyncio.gather(*(store.pop("t", f"c{i % 7}", 30) for i in range(50)))
    got = [d.message_id for d in results if d is not None]
    assert sorted(got) == sorted(ids) and len(got) == len(set(got)) == 20
    assert await store.stats("t") == {"ready": 0, "in_flight": 20, "dead": 0}


async def test_concurrent_pushes_of_one_id_enqueue_it_once(store: RedisQueueStore) -> None:
    results = await asyncio.gather(*(store.push("t", "same", f"{i}".encode()) for i in range(30)))
    assert sum(not r.duplicate for r in results) == 1
    assert (await store.stats("t"))["ready"] == 1


async def test_ack_racing_requeue_settles_each_message_exactly_once(
    store: RedisQueueStore, client: Any, clock: FakeClock
) -> None:
    ids = [f"m{i}" for i in range(40)]
    await push_all(store, "t", ids)
    for i in range(40):
        assert await store.pop("t", f"c{i % 5}", 1) is not None
    clock.advance(2)
    acks = [store.ack("t", f"c{i % 5}", ids[i]) for i in range(40)]
    outcome = await asyncio.gather(store.requeue_expired("t"), *acks, store.requeue_expired("t"))
    requeued = outcome[0].requeued + outcome[-1].requeued
    acked = [ids[i] for i, ok in enumerate(outcome[1:-1]) if ok]
    assert sorted(requeued + acked) == sorted(ids)  # every message once: acked xor back in the queue
    assert sorted(await ready_ids(client, "t")) == sorted(requeued)
    assert (await store.stats("t"))["in_flight"] == 0


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
