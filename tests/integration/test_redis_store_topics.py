"""RedisQueueStore.known_topics / stats_many (the dashboard's /queue/topics) on a private redis-server.

What only Redis has: its keyspace scan.  The listing's behaviour is in test_queue_store_contract.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_redis_store import client  # noqa: F401 -- the same private-Redis client fixture

from rakit.errors import Unavailable
from rakit.launcher import RedisProcess
from rakit.queue.redis_store import RedisQueueStore

pytestmark = pytest.mark.integration


async def test_keys_of_no_topic_are_ignored(client: Any) -> None:
    store = RedisQueueStore(client)
    await store.push("mail", "m0", b"{}")
    await store.pop("mail", "worker-1", 30)  # processing:{mail}:worker-1 must not count as a topic
    await client.set("unrelated:{key}", b"1")
    await client.set("queue:{bad name}", b"1")  # not a topic name
    assert await store.known_topics(100) == (["mail"], False)


async def test_a_scan_over_its_budget_is_flagged_partial(client: Any) -> None:
    store = RedisQueueStore(client)
    for i in range(5):
        await store.push(f"t{i}", "m", b"1")
    # A big keyspace with few SCAN calls allowed: a partial answer, flagged, not a stall.
    await client.mset({f"noise:{i}": b"x" for i in range(3000)})
    _, truncated = await store.known_topics(100, max_scans=1, scan_count=10)
    assert truncated
    topics, truncated = await store.known_topics(100)
    assert (topics, truncated) == ([f"t{i}" for i in range(5)], False)


async def test_redis_down_is_unavailable(redis_server: RedisProcess, client: Any) -> None:
    store = RedisQueueStore(client, op_timeout=2.0)
    await store.push("a", "m", b"1")
    redis_server.stop()
    with pytest.raises(Unavailable):
        await store.known_topics(10)
    with pytest.raises(Unavailable):
        await store.stats_many(["a"])
