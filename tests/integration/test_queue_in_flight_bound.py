"""The per-consumer in-flight bound of the queue store: ``max_in_flight`` messages of one
topic in flight for one consumer; one more pop raises ``TooManyInFlight`` and changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from rakit.errors import TooManyInFlight
from rakit.launcher import RedisProcess
from rakit.queue.redis_store import MAX_IN_FLIGHT, RedisQueueStore, TopicKeys, connect

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(redis_server: RedisProcess) -> AsyncIterator[Any]:
    r = connect(redis_server.url)
    try:
        yield r
    finally:
        await r.aclose()


async def snapshot(client: Any) -> dict[bytes, Any]:
    """Every key and its value (the whole Redis state of the test)."""
    out: dict[bytes, Any] = {}
    for key in sorted(await client.keys("*")):
        kind = (await client.type(key)).decode()
        if kind == "zset":
            out[key] = await client.zrange(key, 0, -1, withscores=True)
        elif kind == "list":
            out[key] = await client.lrange(key, 0, -1)
        elif kind == "hash":
            out[key] = await client.hgetall(key)
        elif kind == "set":
            out[key] = sorted(await client.smembers(key))
        else:
            out[key] = await client.get(key)
    return out


def test_the_default_bound_is_1000() -> None:
    assert MAX_IN_FLIGHT == 1000


async def test_one_pop_over_the_bound_is_refused_and_changes_nothing(client: Any) -> None:
    store = RedisQueueStore(client, max_in_flight=3)
    for i in range(5):
        await store.push("t", f"m{i}", b"x")
    popped = [await store.pop("t", "c", 30) for _ in range(3)]
    assert [d.message_id for d in popped if d] == ["m0", "m1", "m2"]
    before = await snapshot(client)
    with pytest.raises(TooManyInFlight) as refused:
        await store.pop("t", "c", 30)
    assert refused.value.status == 429 and refused.value.body()["error"] == "too_many_in_flight"
    assert await snapshot(client) == before
    assert await store.stats("t") == {"ready": 2, "in_flight": 3, "dead": 0}

    # Other consumers, and other topics of the same consumer, are not held back.
    other = await store.pop("t", "d", 30)
    assert other is not None and other.message_id == "m3"
    await store.push("u", "u1", b"y")
    assert (await store.pop("u", "c", 30)) is not None

    # Each ack or nack makes room for one more.
    assert await store.ack("t", "c", "m0")
    again = await store.pop("t", "c", 30)
    assert again is not None and again.message_id == "m4"
    with pytest.raises(TooManyInFlight):
        await store.pop("t", "c", 30)
    assert await store.nack("t", "c", "m1")
    assert (await store.pop("t", "c", 30)) is not None  # m1 again


async def test_expired_messages_make_room_once_requeued(client: Any) -> None:
    now = [1_700_000_000.0]
    store = RedisQueueStore(client, max_in_flight=2, clock=lambda: now[0])
    for i in range(3):
        await store.push("t", f"m{i}", b"x")
    assert (await store.pop("t", "c", 5)) and (await store.pop("t", "c", 5))
    with pytest.raises(TooManyInFlight):
        await store.pop("t", "c", 5)
    now[0] += 10
    with pytest.raises(TooManyInFlight):  # expired but not requeued yet: still in flight (rule 7)
        await store.pop("t", "c", 5)
    result = await store.requeue_expired("t")
    assert sorted(result.requeued) == ["m0", "m1"]
    assert (await store.pop("t", "c", 5)).message_id == "m0"  # type: ignore[union-attr]


async def test_concurrent_pops_never_pass_the_bound(client: Any) -> None:
    store = RedisQueueStore(client, max_in_flight=7)
    for i in range(40):
        await store.push("t", f"m{i}", b"x")

    async def pop() -> str:
        try:
            d = await store.pop("t", "c", 30)
        except TooManyInFlight:
            return "refused"
        return "popped" if d else "empty"

    outcomes = await asyncio.gather(*(pop() for _ in range(30)))
    assert outcomes.count("popped") == 7 and outcomes.count("refused") == 23
    assert await store.stats("t") == {"ready": 33, "in_flight": 7, "dead": 0}
    assert await client.hlen(TopicKeys("t").timestamps("c")) == 7
