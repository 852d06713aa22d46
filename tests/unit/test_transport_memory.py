"""The transport's in-memory twin (``rakit.transport.memory``): FIFO links, bounded queues, seeded faults.

Each test runs the senders' ``run()`` tasks and waits for what it expects
with a deadline (``until``); nothing sleeps to hope.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from driver_stubs import until

from rakit.raft.messages import AnyMessage, Heartbeat, RequestVote
from rakit.transport.base import Transport
from rakit.transport.memory import MemoryNetwork, MemoryTransport

NODES = ("a", "b", "c")


def hb(src: str, dst: str, commit: int = 0) -> Heartbeat:
    return Heartbeat(src=src, dst=dst, term=1, commit=commit)


class Net:
    """A network of ``NODES``, each transport running, each node's receive calls recorded."""

    def __init__(self, network: MemoryNetwork) -> None:
        self.network = network
        self.calls: dict[str, list[list[AnyMessage]]] = {n: [] for n in NODES}
        self.arrived: dict[str, list[tuple[float, AnyMessage]]] = {n: [] for n in NODES}
        self.transports = {n: network.transport(n, self._receiver(n)) for n in NODES}
        self.tasks = [asyncio.create_task(t.run()) for t in self.transports.values()]

    def _receiver(self, node: str) -> Any:
        def receive(messages: list[AnyMessage]) -> None:
            self.calls[node].append(messages)
            now = asyncio.get_running_loop().time()
            self.arrived[node].extend((now, m) for m in messages)

        return receive

    def got(self, node: str) -> list[AnyMessage]:
        return [m for _, m in self.arrived[node]]

    def send(self, *messages: AnyMessage) -> None:
        for m in messages:
            self.transports[m.src].send([m])

    async def settled(self) -> None:
        """Every queued message delivered or dropped."""
        await until(lambda: all(t.queued == 0 for t in self.transports.values()), 5, "the queues to drain")

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.fixture
async def net() -> AsyncIterator[Net]:
    running = Net(MemoryNetwork(rng=random.Random(7)))
    yield running
    await running.stop()


def test_the_transport_is_a_transport() -> None:
    transport: Transport = MemoryNetwork().transport("a")
    assert transport.sends_at_once is False
    assert isinstance(transport, MemoryTransport)


async def test_messages_arrive_in_order_one_batch_per_sender(net: Net) -> None:
    net.transports["a"].send([hb("a", "b", i) for i in range(5)] + [hb("a", "c", 9)])
    await until(lambda: len(net.got("b")) == 5 and net.got("c"), 5, "the messages to arrive")
    assert [m.commit for m in net.got("b")] == [0, 1, 2, 3, 4]  # type: ignore[attr-defined]
    assert len(net.calls["b"]) == 1  # what was due at once came in one receive call
    assert net.network.stats["sent"] == 6 and net.network.stats["delivered"] == 6


def test_nothing_leaves_a_node_whose_run_is_not_running() -> None:
    network = MemoryNetwork()
    got: list[AnyMessage] = []
    sender = network.transport("a")
    network.transport("b", got.extend)
    sender.send([hb("a", "b")])
    assert got == [] and sender.queued == 1


async def test_a_cut_loses_messages_both_ways_and_heal_restores_the_link(net: Net) -> None:
    net.network.cut("a", "b")
    net.send(hb("a", "b"), hb("b", "a"), hb("a", "c"))
    await until(lambda: net.got("c"), 5, "a -> c to arrive")
    await net.settled()
    assert net.got("a") == [] and net.got("b") == []
    assert net.network.stats["cut"] == 2
    net.network.heal()
    net.send(hb("a", "b"), hb("b", "a"))
    await until(lambda: net.got("a") and net.got("b"), 5, "the healed link to carry messages")


async def test_a_one_way_cut_loses_one_direction_only(net: Net) -> None:
    net.network.cut("a", "b", one_way=True)
    net.send(hb("a", "b"), hb("b", "a"))
    await until(lambda: net.got("a"), 5, "b -> a to arrive")
    await net.settled()
    assert net.got("b") == []


async def test_a_cut_made_while_a_message_is_in_flight_loses_it(net: Net) -> None:
    net.network.delay(0.05)
    net.send(hb("a", "b"))
    net.network.cut("a", "b")
    await net.settled()
    assert net.got("b") == [] and net.network.stats["cut"] == 1


async def test_a_partition_keeps_each_group_to_itself(net: Net) -> None:
    net.network.partition(["a"])  # b and c, named in no group, are one more group
    assert not net.network.reachable("a", "b") and not net.network.reachable("c", "a")
    assert net.network.reachable("b", "c")
    net.send(hb("a", "b"), hb("a", "c"), hb("b", "c"), hb("c", "a"))
    await until(lambda: net.got("c"), 5, "b -> c to arrive")
    await net.settled()
    assert net.got("a") == [] and net.got("b") == []
    net.network.partition(["a", "b"], ["c"])
    assert net.network.reachable("a", "b") and not net.network.reachable("b", "c")
    with pytest.raises(ValueError, match="two groups"):
        net.network.partition(["a", "b"], ["b"])
    net.network.heal()
    assert all(net.network.reachable(x, y) for x in NODES for y in NODES)


async def test_a_drop_rule_loses_what_it_matches_until_removed(net: Net) -> None:
    remove = net.network.drop(lambda m: isinstance(m, RequestVote))
    vote = RequestVote(src="a", dst="b", term=2, last_index=0, last_term=0)
    net.send(vote, hb("a", "b"))
    await until(lambda: net.got("b"), 5, "the heartbeat to arrive")
    await net.settled()
    assert net.got("b") == [hb("a", "b")] and net.network.stats["rule"] == 1
    remove()
    remove()  # twice is harmless
    net.send(vote)
    await until(lambda: vote in net.got("b"), 5, "the vote to arrive once the rule is gone")


def _fates(seed: int) -> list[bool]:
    """Which of 200 messages a 30% drop rate loses, on a network seeded ``seed``."""
    network = MemoryNetwork(rng=random.Random(seed))
    network.drop(rate=0.3)
    sender = network.transport("a")
    fates = []
    for i in range(200):
        before = network.stats["rule"]
        sender.send([hb("a", "b", i)])
        fates.append(network.stats["rule"] > before)
    return fates


def test_a_drop_rate_is_drawn_from_the_seeded_random() -> None:
    fates = _fates(1)
    assert fates == _fates(1)  # the same seed loses the same messages
    assert fates != _fates(2)
    assert 30 < sum(fates) < 90  # about 60 of 200
    with pytest.raises(ValueError, match="probability"):
        MemoryNetwork().drop(rate=1.5)


async def test_a_delay_holds_each_message_and_keeps_the_order(net: Net) -> None:
    net.network.delay(0.05, jitter=0.05)
    started = asyncio.get_running_loop().time()
    net.transports["a"].send([hb("a", "b", i) for i in range(20)])
    await until(lambda: len(net.got("b")) == 20, 5, "the delayed messages to arrive")
    times = [t for t, _ in net.arrived["b"]]
    assert min(times) - started >= 0.05
    assert times == sorted(times)
    assert [m.commit for m in net.got("b")] == list(range(20))  # type: ignore[attr-defined]
    with pytest.raises(ValueError):
        net.network.delay(-1)


def test_every_link_queue_is_bounded() -> None:
    network = MemoryNetwork(max_queued=3)
    sender = network.transport("a")
    sender.send([hb("a", "b", i) for i in range(5)] + [hb("a", "c")])
    assert sender.queued == 4
    assert network.stats["overflow"] == 2
    with pytest.raises(ValueError):
        MemoryNetwork(max_queued=0)


async def test_messages_to_an_unknown_node_are_counted_and_dropped(net: Net) -> None:
    net.transports["a"].send([hb("a", "z")])
    net.network.detach("b")
    net.send(hb("a", "b"))
    await net.settled()
    assert net.network.stats["unknown"] == 2 and net.got("b") == []
    net.network.attach("b", lambda messages: net.arrived["b"].extend((0.0, m) for m in messages))
    net.send(hb("a", "b"))
    await until(lambda: net.got("b"), 5, "b, attached again, to receive")


async def test_a_new_transport_for_an_id_replaces_the_old_one(net: Net) -> None:
    old = net.transports["a"]
    net.network.delay(0.05)
    old.send([hb("a", "b")])
    new = net.network.transport("a")
    old.send([hb("a", "b")])  # dropped at once: this node restarted
    assert net.network.stats["stale"] == 1
    await until(lambda: old.queued == 0, 5, "the old transport's queue to be dropped")
    assert net.network.stats["stale"] == 2 and net.got("b") == []
    task = asyncio.create_task(new.run())
    try:
        new.send([hb("a", "b", 1)])
        await until(lambda: net.got("b"), 5, "the new transport to deliver")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_stopped_transport_forgets_what_it_had_queued() -> None:
    network = MemoryNetwork()
    sender = network.transport("a")
    network.delay(10.0)
    task = asyncio.create_task(sender.run())
    sender.send([hb("a", "b")])
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert sender.queued == 0 and network.stats["stale"] == 1
