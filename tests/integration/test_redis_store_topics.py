"""RedisQueueStore.known_topics / stats_many (the dashboard's /queue/topics) on a private redis-server."""

from __future__ import annotations

from typing import Any

import pytest
from test_redis_store import client  # noqa: F401 -- the same private-Redis client fixture

from rakit.errors import Unavailable
from rakit.launcher import RedisProcess
from rakit.queue.redis_store import RedisQueueStore

pytestmark = pytest.mark.integration


async def test_topics_in_every_state_are_found_with_their_counts(client: Any) -> None:
    store = RedisQueueStore(client, max_deliveries=1)
    for i in range(3):
        await store.push("mail", f"m{i}", b"{}")
    await store.pop("mail", "worker-1", 30)  # in flight (processing:{mail}:worker-1 must not count as a topic)
    await store.push("jobs", "j1", b"{}")
    d = await store.pop("jobs", "c", 30)
    assert d is not None
    await store.nack("jobs", "c", "j1")  # max_deliveries=1: dead
    await store.push("done", "x", b"{}")
    await store.pop("done", "c", 30)
    await store.ack("done", "c", "x")  # empty now, but known (its sequence stays)
    await client.set("unrelated:{key}", b"1")
    await client.set("queue:{bad name}", b"1")  # not a topic name: ignored

    topics, truncated = await store.known_topics(100)
    assert (topics, truncated) == (["done", "jobs", "mail"], False)
    assert await store.stats_many(topics) == {
        "done": {"ready": 0, "in_flight": 0, "dead": 0},
        "jobs": {"ready": 0, "in_flight": 0, "dead": 1},
        "mail": {"ready": 2, "in_flight": 1, "dead": 0},
    }
    assert await store.stats_many([]) == {}


async def test_listing_is_bounded(client: Any) -> None:
    store = RedisQueueStore(client)
    for i in range(5):
        await store.push(f"t{i}", "m", b"1")
    topics, truncated = await store.known_topics(2)
    assert len(topics) == 2 and truncated and topics == sorted(topics)
    # A big keyspace with few SCAN calls allowed: a partial answer, flagged, not a stall.
    await client.mset({f"noise:{i}": b"x" for i in range(3000)})
    _, truncated = await store.known_topics(100, max_scans=1, scan_count=10)
    assert truncated
    topics, truncated = await store.known_topics(100)
    assert (topics, truncated) == ([f"t{i}" for i in range(5)], False)
    with pytest.raises(ValueError):
        await store.known_topics(0)


async def test_redis_down_is_unavailable(redis_server: RedisProcess, client: Any) -> None:
    store = RedisQueueStore(client, op_timeout=2.0)
    await store.push("a", "m", b"1")
    redis_server.stop()
    with pytest.raises(Unavailable):
        await store.known_topics(10)
    with pytest.raises(Unavailable):
        await store.stats_many(["a"])
