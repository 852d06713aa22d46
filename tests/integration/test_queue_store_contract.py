"""The QueueStore contract (``rakit.queue.store`` rules 1-9) on both stores: the dict twin and Redis.

Every contract test runs twice, ``[memory]`` on ``MemoryQueueStore`` and
``[redis]`` on ``RedisQueueStore`` over a private redis-server (conftest's
``redis_server``), both with a hand-moved clock, and looks only at what the
store answers (Redis keys and Redis failures are ``test_redis_store.py``'s
business).  ``test_the_twin_answers_as_redis_does`` drives both stores with
the same random calls and clock moves (Hypothesis, stateful) and compares
every answer: that is what makes the twin a twin.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from test_redis_store import FakeClock, clock, push_all  # noqa: F401 -- the hand-moved clock fixture

from rakit.errors import TooManyInFlight, Unavailable
from rakit.launcher import RedisProcess
from rakit.queue.memory_store import MemoryQueueStore
from rakit.queue.redis_store import RedisQueueStore, connect
from rakit.queue.store import DeadLetter, Delivery, PushResult, QueueStore, RequeueResult

pytestmark = pytest.mark.integration

Make = Callable[..., QueueStore]


@pytest.fixture(params=["memory", "redis"])
def redis_url(request: pytest.FixtureRequest) -> str | None:
    """None for the twin; the URL of a fresh private redis-server for Redis."""
    if request.param == "memory":
        return None
    server: RedisProcess = request.getfixturevalue("redis_server")
    return server.url


@pytest.fixture
async def make_store(redis_url: str | None, clock: FakeClock) -> AsyncIterator[Make]:
    """``make_store(**options)``: a store of the test's kind on the test's clock."""
    if redis_url is None:
        yield lambda **options: MemoryQueueStore(clock=clock, **options)
        return
    client = connect(redis_url)
    try:
        yield lambda **options: RedisQueueStore(client, clock=clock, **options)
    finally:
        await client.aclose()


@pytest.fixture
def store(make_store: Make) -> QueueStore:
    return make_store(max_deliveries=3, dedup_window=60.0)


async def drain(store: QueueStore, topic: str) -> list[tuple[str, int]]:
    """Pop ``topic`` empty (as one consumer): (id, delivery count) in delivery order."""
    got = []
    while (d := await store.pop(topic, "drain", 30)) is not None:
        got.append((d.message_id, d.delivery_count))
    return got


# -- order, bodies, dedup (rules 3, 4, 6) ------------------------------------------


async def test_fifo(store: QueueStore) -> None:
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


async def test_bodies_are_bytes_kept_exactly(store: QueueStore) -> None:
    body = bytes(range(256)) * 10 + b'{"json": true}'
    await store.push("t", "bin", body)
    d = await store.pop("t", "c", 5)
    assert d is not None and d.body == body


async def test_dedup_within_the_window_and_after_ack(store: QueueStore, clock: FakeClock) -> None:
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


async def test_the_window_counts_from_the_first_push_and_ends_at_its_edge(store: QueueStore, clock: FakeClock) -> None:
    await store.push("t", "a", b"1")
    d = await store.pop("t", "c", 5)
    assert d is not None and await store.ack("t", "c", "a")
    clock.advance(30)
    assert (await store.push("t", "a", b"2")).duplicate  # does not restart the window
    clock.advance(30)  # exactly 60 s after the first push: that instant is outside the window
    assert not (await store.push("t", "a", b"3")).duplicate


async def test_a_live_message_is_a_duplicate_even_after_the_window(store: QueueStore, clock: FakeClock) -> None:
    await store.push("t", "a", b"1")
    clock.advance(600)
    assert (await store.push("t", "a", b"2")).duplicate  # still ready
    d = await store.pop("t", "c", 30)
    assert d is not None
    assert (await store.push("t", "a", b"2")).duplicate  # in flight
    assert await store.nack("t", "c", "a")
    assert (await store.stats("t"))["ready"] == 1


async def test_dedup_window_zero_keeps_only_the_live_rule(make_store: Make) -> None:
    store = make_store(dedup_window=0)
    await store.push("t", "a", b"1")
    assert (await store.push("t", "a", b"1")).duplicate
    d = await store.pop("t", "c", 30)
    assert d is not None and await store.ack("t", "c", "a")
    assert not (await store.push("t", "a", b"1")).duplicate


# -- in flight: ack, nack, extend, the bound (rules 5, 7) ----------------------------


async def test_pop_delivers_the_head_with_its_deadline(store: QueueStore, clock: FakeClock) -> None:
    assert await store.next_deadline("orders") is None
    await push_all(store, "orders", ["m1", "m2"])
    d = await store.pop("orders", "c1", 12.5)
    assert d == Delivery("m1", b"body of m1", 1, clock.now + 12.5)
    assert await store.topics_with_inflight() == {"orders"}
    assert await store.next_deadline("orders") == clock.now + 12.5
    assert await store.stats("orders") == {"ready": 1, "in_flight": 1, "dead": 0}


async def test_ack(store: QueueStore) -> None:
    await push_all(store, "t", ["m1"])
    d = await store.pop("t", "c1", 30)
    assert d is not None
    assert not await store.ack("t", "c2", "m1")  # not this consumer's
    assert not await store.ack("t", "c1", "nope")  # never pushed
    assert await store.ack("t", "c1", "m1")
    assert not await store.ack("t", "c1", "m1")  # already acked
    assert await store.stats("t") == {"ready": 0, "in_flight": 0, "dead": 0}
    assert await store.topics_with_inflight() == set()
    assert await store.next_deadline("t") is None


async def test_ack_of_a_message_never_popped_is_false(store: QueueStore) -> None:
    await push_all(store, "t", ["m1"])
    assert not await store.ack("t", "c1", "m1")
    assert (await store.stats("t"))["ready"] == 1


async def test_nack_returns_the_message_to_the_head_with_its_count(store: QueueStore) -> None:
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


async def test_nack_at_max_deliveries_moves_to_dead_letters(store: QueueStore) -> None:
    await push_all(store, "t", ["m1"])
    for count in (1, 2, 3):
        d = await store.pop("t", "c", 30)
        assert d is not None and d.delivery_count == count
        assert await store.nack("t", "c", "m1")
    assert await store.stats("t") == {"ready": 0, "in_flight": 0, "dead": 1}
    assert await store.dead_letters("t") == [DeadLetter("m1", b"body of m1", 3)]


async def test_extend(store: QueueStore, clock: FakeClock) -> None:
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


async def test_an_expired_message_not_yet_requeued_is_still_in_flight(store: QueueStore, clock: FakeClock) -> None:
    await push_all(store, "t", ["m1", "m2"])
    assert await store.pop("t", "c", 5) is not None
    assert await store.pop("t", "c", 5) is not None
    clock.advance(10)
    assert await store.stats("t") == {"ready": 0, "in_flight": 2, "dead": 0}
    assert await store.topics_with_inflight() == {"t"}
    assert await store.ack("t", "c", "m1")
    assert await store.extend("t", "c", "m2", 5)  # from now
    assert await store.requeue_expired("t") == RequeueResult([], [])
    assert await store.next_deadline("t") == clock.now + 5


async def test_the_in_flight_bound_holds_per_consumer_and_topic(make_store: Make) -> None:
    store = make_store(max_in_flight=2)
    await push_all(store, "t", ["a", "b", "c", "d"])
    first = [await store.pop("t", "c", 30), await store.pop("t", "c", 30)]
    assert [d.message_id for d in first if d] == ["a", "b"]
    with pytest.raises(TooManyInFlight):
        await store.pop("t", "c", 30)
    assert await store.stats("t") == {"ready": 2, "in_flight": 2, "dead": 0}  # the refusal took nothing
    d = await store.pop("t", "other", 30)  # another consumer
    assert d is not None and d.message_id == "c"
    await store.push("u", "x", b"x")
    assert await store.pop("u", "c", 30) is not None  # another topic
    assert await store.ack("t", "other", "c") and await store.ack("t", "c", "a")
    d = await store.pop("t", "c", 30)  # room for one again: the next in order
    assert d is not None and d.message_id == "d"
    assert await store.pop("t", "other", 30) is None
    with pytest.raises(TooManyInFlight):  # full: refused even with nothing ready
        await store.pop("t", "c", 30)


# -- visibility timeouts, requeue, dead letters, redrive (rules 4, 5, 7) ----------------


async def test_expired_messages_go_back_to_the_head_in_push_order(store: QueueStore, clock: FakeClock) -> None:
    await push_all(store, "t", ["m1", "m2", "m3", "m4"])
    assert (d1 := await store.pop("t", "c1", 10)) is not None and d1.message_id == "m1"
    assert (d2 := await store.pop("t", "c2", 5)) is not None and d2.message_id == "m2"
    assert await store.requeue_expired("t", clock.now + 4.9) == RequeueResult([], [])
    clock.advance(6)
    assert await store.requeue_expired("t", clock.now) == RequeueResult(["m2"], [])
    assert await store.stats("t") == {"ready": 3, "in_flight": 1, "dead": 0}
    clock.advance(5)
    assert await store.requeue_expired("t") == RequeueResult(["m1"], [])  # now from the clock
    assert not await store.ack("t", "c1", "m1")  # its visibility ended: not in flight for c1
    assert await store.topics_with_inflight() == set()
    assert await drain(store, "t") == [("m1", 2), ("m2", 2), ("m3", 1), ("m4", 1)]


async def test_requeue_respects_limit_and_several_consumers(store: QueueStore, clock: FakeClock) -> None:
    ids = [f"m{i:02d}" for i in range(12)]
    await push_all(store, "t", ids)
    for i in range(12):
        assert await store.pop("t", f"c{i % 4}", 1 + i * 0.01) is not None
    clock.advance(5)
    first = await store.requeue_expired("t", limit=5)
    assert first.requeued == ids[:5]  # earliest deadlines first
    rest = await store.requeue_expired("t", limit=100)
    assert sorted(rest.requeued) == ids[5:]
    assert await store.topics_with_inflight() == set()
    assert [i for i, _ in await drain(store, "t")] == ids


async def test_equal_deadlines_are_requeued_by_consumer_then_id(store: QueueStore, clock: FakeClock) -> None:
    await push_all(store, "t", ["b", "a", "c", "d"])
    for consumer in ("c1", "c1", "c10", "c0"):  # one instant: every deadline equal
        assert await store.pop("t", consumer, 5) is not None
    clock.advance(5)  # the deadline itself counts as expired
    # "c10:c" sorts before "c1:b" (":" is after "0"), as the members compare.
    assert await store.requeue_expired("t", limit=3) == RequeueResult(["d", "c", "a"], [])
    assert await store.requeue_expired("t", limit=3) == RequeueResult(["b"], [])


async def test_after_max_deliveries_a_message_goes_to_dead_letters(store: QueueStore, clock: FakeClock) -> None:
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


async def test_redrive_moves_dead_letters_to_the_tail_with_a_fresh_count(store: QueueStore, clock: FakeClock) -> None:
    await push_all(store, "t", ["d1", "d2", "d3"])
    for _ in range(3):
        for _ in range(3):
            assert await store.pop("t", "c", 1) is not None
        clock.advance(2)
        await store.requeue_expired("t")
    assert [x.message_id for x in await store.dead_letters("t")] == ["d1", "d2", "d3"]
    assert [x.message_id for x in await store.dead_letters("t", limit=2, offset=1)] == ["d2", "d3"]
    assert await store.dead_letters("t", offset=3) == []
    await push_all(store, "t", ["live"])
    assert await store.redrive("t", limit=2) == 2
    assert await store.stats("t") == {"ready": 3, "in_flight": 0, "dead": 1}
    assert await store.redrive("t") == 1
    assert await store.redrive("t") == 0
    assert await drain(store, "t") == [("live", 1), ("d1", 1), ("d2", 1), ("d3", 1)]


# -- reads across topics (rule 8) ------------------------------------------------------


async def test_stats_and_discovery_over_several_topics(store: QueueStore) -> None:
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


async def test_topics_in_every_state_are_known_with_their_counts(make_store: Make) -> None:
    store = make_store(max_deliveries=1)
    assert await store.known_topics(100) == ([], False)
    for i in range(3):
        await store.push("mail", f"m{i}", b"{}")
    await store.pop("mail", "worker-1", 30)  # in flight
    await store.push("jobs", "j1", b"{}")
    assert await store.pop("jobs", "c", 30) is not None
    assert await store.nack("jobs", "c", "j1")  # max_deliveries=1: dead
    await store.push("done", "x", b"{}")
    await store.pop("done", "c", 30)
    assert await store.ack("done", "c", "x")  # empty now, but known
    await store.stats("read-only")  # reading a topic does not make it known
    await store.pop("read-only", "c", 30)

    topics, truncated = await store.known_topics(100)
    assert (topics, truncated) == (["done", "jobs", "mail"], False)
    assert await store.stats_many(topics) == {
        "done": {"ready": 0, "in_flight": 0, "dead": 0},
        "jobs": {"ready": 0, "in_flight": 0, "dead": 1},
        "mail": {"ready": 2, "in_flight": 1, "dead": 0},
    }
    assert await store.stats_many([]) == {}
    topics, truncated = await store.known_topics(2)
    assert len(topics) == 2 and truncated and topics == sorted(topics)
    with pytest.raises(ValueError):
        await store.known_topics(0)


# -- names and arguments (rule 3) ------------------------------------------------------

BAD_NAMES = ["", "a:b", "{a}", "a}b", "a{b", "a b", "é", "x" * 129, "a/b", "a\nb", None, 5]


@pytest.mark.parametrize("bad", BAD_NAMES)
async def test_bad_names_are_refused(store: QueueStore, bad: Any) -> None:
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


async def test_bad_arguments_are_refused_and_change_nothing(store: QueueStore, make_store: Make) -> None:
    for vt in (0, -1, float("nan"), float("inf"), "5", True):
        with pytest.raises(ValueError):
            await store.pop("t", "c", vt)
    with pytest.raises(TypeError):
        await store.push("t", "m", "text")  # type: ignore[arg-type]
    for call in (
        lambda: store.requeue_expired("t", limit=0),
        lambda: store.requeue_expired("t", now=float("nan")),
        lambda: store.redrive("t", limit=0),
        lambda: store.dead_letters("t", offset=-1),
        lambda: store.extend("t", "c", "m", 0),
    ):
        with pytest.raises(ValueError):
            await call()
    for options in ({"max_deliveries": 0}, {"max_in_flight": 0}, {"dedup_window": -1}):
        with pytest.raises(ValueError):
            make_store(**options)
    assert await store.known_topics(10) == ([], False)  # nothing was written
    assert await store.stats("t") == {"ready": 0, "in_flight": 0, "dead": 0}


# -- atomicity under concurrency (rule 1) -----------------------------------------------


async def test_concurrent_pops_never_deliver_a_message_twice_nor_lose_one(store: QueueStore) -> None:
    ids = [f"m{i}" for i in range(20)]
    await push_all(store, "t", ids)
    results = await asyncio.gather(*(store.pop("t", f"c{i % 7}", 30) for i in range(50)))
    got = [d.message_id for d in results if d is not None]
    assert sorted(got) == sorted(ids) and len(got) == len(set(got)) == 20
    assert await store.stats("t") == {"ready": 0, "in_flight": 20, "dead": 0}


async def test_concurrent_pushes_of_one_id_enqueue_it_once(store: QueueStore) -> None:
    results = await asyncio.gather(*(store.push("t", "same", f"{i}".encode()) for i in range(30)))
    assert sum(not r.duplicate for r in results) == 1
    assert (await store.stats("t"))["ready"] == 1


async def test_ack_racing_requeue_settles_each_message_exactly_once(store: QueueStore, clock: FakeClock) -> None:
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
    assert (await store.stats("t"))["in_flight"] == 0
    assert sorted(i for i, _ in await drain(store, "t")) == sorted(requeued)


# -- the twin's failure switch (rule 9) ------------------------------------------------------


async def test_a_failing_twin_raises_unavailable_and_changes_nothing(clock: FakeClock) -> None:
    store = MemoryQueueStore(clock=clock)
    assert store.redis_state.available is True
    await store.push("t", "a", b"1")
    store.fail_with = ConnectionError("switched off")
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: store.ping(),
        lambda: store.push("t", "b", b"2"),
        lambda: store.pop("t", "c", 5),
        lambda: store.ack("t", "c", "a"),
        lambda: store.nack("t", "c", "a"),
        lambda: store.extend("t", "c", "a", 5),
        lambda: store.requeue_expired("t"),
        lambda: store.redrive("t"),
        lambda: store.stats("t"),
        lambda: store.dead_letters("t"),
        lambda: store.topics_with_inflight(),
        lambda: store.known_topics(10),
        lambda: store.stats_many(["t"]),
        lambda: store.next_deadline("t"),
    ]
    for call in calls:
        with pytest.raises(Unavailable, match="ConnectionError: switched off"):
            await call()
    with pytest.raises(ValueError):  # arguments are still checked first, as with Redis
        await store.push("bad topic", "b", b"2")
    store.fail_with = Unavailable("Redis refused the node: DENIED")
    with pytest.raises(Unavailable, match="DENIED"):
        await store.stats("t")
    store.fail_with = None
    assert await store.stats("t") == {"ready": 1, "in_flight": 0, "dead": 0}
    assert await drain(store, "t") == [("a", 1)]


# -- the differential test: the twin answers as Redis does ------------------------------------

TOPICS = ["a", "b"]
IDS = ["m0", "m1", "m2", "m3", "x:1"]  # few ids: duplicates, acks of others' messages, a ":" in one
CONSUMERS = ["c0", "c1", "c10"]  # "c10:..." sorts before "c1:...": equal deadlines' order shows
TIMEOUTS = [0.1, 1, 2.5, 10]
topics, ids, consumers = st.sampled_from(TOPICS), st.sampled_from(IDS), st.sampled_from(CONSUMERS)


class TwinMachine(RuleBasedStateMachine):
    """Every call goes to both stores (same arguments, same clock); their answers must be equal.

    ``held`` collects what pops delivered, (topic, consumer, id), so that acks,
    nacks and extends often name a message in flight (or one that was, once:
    stale entries stay); the plain rules name any id, mostly not in flight.
    """

    held = Bundle("held")

    redis_url = ""  # set by the test

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.client = connect(self.redis_url)
        self.run(self.client.flushall())
        self.clock = FakeClock()
        self.stores: tuple[QueueStore, QueueStore] | None = None

    def run(self, coro: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.client.aclose())
        self.loop.close()

    def both(self, call: Callable[[QueueStore], Awaitable[Any]]) -> Any:
        assert self.stores is not None
        answers = []
        for store in self.stores:
            try:
                answers.append(self.run(call(store)))
            except (TooManyInFlight, ValueError) as exc:
                answers.append(type(exc).__name__)
        memory, redis = answers
        assert memory == redis, f"memory answered {memory!r}, redis {redis!r}"
        return memory

    @initialize(
        max_deliveries=st.integers(1, 3),
        dedup_window=st.sampled_from([0, 3, 60]),
        max_in_flight=st.integers(1, 4),
    )
    def configure(self, max_deliveries: int, dedup_window: float, max_in_flight: int) -> None:
        self.stores = (
            MemoryQueueStore(
                clock=self.clock, max_deliveries=max_deliveries, dedup_window=dedup_window, max_in_flight=max_in_flight
            ),
            RedisQueueStore(
                self.client,
                clock=self.clock,
                max_deliveries=max_deliveries,
                dedup_window=dedup_window,
                max_in_flight=max_in_flight,
            ),
        )

    @rule(seconds=st.sampled_from([0, 0.1, 1, 2.5, 3, 11, 61]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(topic=topics, message_id=ids, body=st.binary(max_size=6))
    def push(self, topic: str, message_id: str, body: bytes) -> None:
        self.both(lambda s: s.push(topic, message_id, body))

    @rule(target=held, topic=topics, consumer=consumers, timeout=st.sampled_from(TIMEOUTS))
    def pop(self, topic: str, consumer: str, timeout: float) -> Any:
        d = self.both(lambda s: s.pop(topic, consumer, timeout))
        return multiple((topic, consumer, d.message_id)) if isinstance(d, Delivery) else multiple()

    @rule(delivered=held, settle=st.sampled_from(["ack", "nack"]))
    def settle_delivered(self, delivered: tuple[str, str, str], settle: str) -> None:
        self.both(lambda s: getattr(s, settle)(*delivered))

    @rule(delivered=held, timeout=st.sampled_from(TIMEOUTS))
    def extend_delivered(self, delivered: tuple[str, str, str], timeout: float) -> None:
        self.both(lambda s: s.extend(*delivered, timeout))

    @rule(topic=topics, consumer=consumers, message_id=ids, settle=st.sampled_from(["ack", "nack"]))
    def ack_or_nack(self, topic: str, consumer: str, message_id: str, settle: str) -> None:
        self.both(lambda s: getattr(s, settle)(topic, consumer, message_id))

    @rule(topic=topics, consumer=consumers, message_id=ids, timeout=st.sampled_from(TIMEOUTS))
    def extend(self, topic: str, consumer: str, message_id: str, timeout: float) -> None:
        self.both(lambda s: s.extend(topic, consumer, message_id, timeout))

    @rule(topic=topics, limit=st.integers(1, 4), ahead=st.none() | st.sampled_from([-5.0, 0.0, 2.5, 100.0]))
    def requeue_expired(self, topic: str, limit: int, ahead: float | None) -> None:
        now = None if ahead is None else self.clock.now + ahead
        self.both(lambda s: s.requeue_expired(topic, now, limit))

    @rule(topic=topics, limit=st.integers(1, 3))
    def redrive(self, topic: str, limit: int) -> None:
        self.both(lambda s: s.redrive(topic, limit))

    @rule(topic=topics, limit=st.integers(1, 3), offset=st.integers(0, 3))
    def dead_letters_page(self, topic: str, limit: int, offset: int) -> None:
        self.both(lambda s: s.dead_letters(topic, limit, offset))

    def same_topic(self, topic: str) -> None:
        self.both(lambda s: s.stats(topic))
        self.both(lambda s: s.next_deadline(topic))
        self.both(lambda s: s.dead_letters(topic, 100))

    @invariant()
    def same_state(self) -> None:
        if self.stores is None:
            return
        for topic in TOPICS:
            self.same_topic(topic)
        self.both(lambda s: s.topics_with_inflight())
        self.both(lambda s: s.known_topics(100))
        self.both(lambda s: s.stats_many([*TOPICS, "never-pushed"]))


def test_the_twin_answers_as_redis_does(redis_server: RedisProcess) -> None:
    class Machine(TwinMachine):
        redis_url = redis_server.url

    # Same examples every run (as the other stateful tests); RAKIT_STATEFUL_RANDOM=1 explores afresh.
    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=int(os.environ.get("RAKIT_TWIN_EXAMPLES", "150")),
            stateful_step_count=60,
            deadline=None,
            derandomize=os.environ.get("RAKIT_STATEFUL_RANDOM") is None,
        ),
    )
