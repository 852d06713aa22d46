"""Simulation: nodes of two membership generations never serve their caches at the same moment.

This is the claim the cache's membership rules rest on (``rakit.cache.rules.contact``
rule 7, ``rakit.cache.service`` "Membership").  Each simulated node has a
``ContactTable`` and a generation; the network delays, drops and partitions pings and
acks; the configuration grows and shrinks one node at a time, a new one only
once every staying member has adopted the current one (the endpoints' gate),
while nodes adopt at random moments, joiners jump straight to the latest and
removed nodes may never learn of their removal (but hear newer generations
from the peers they still reach, and stop hearing from the Raft leader).
After every event: the nodes that serve (a member of their own generation's
configuration, holding leases, not behind a generation a peer reported,
heard from the leader within the grace) all have the same generation.
Seeded; a failure names its seed.  (Dropping the mute or the Raft-contact
rule makes it fail; the gate is defence in depth this model does not need.)
"""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass, field

import pytest

from rakit.cache.rules.contact import ContactTable

POOL = ["a", "b", "c", "d", "e", "f"]
GRACE = 3.0  # CacheSettings.raft_grace
MUTE = GRACE * 1.05 + 0.1  # what CacheService.set_members mutes for
RUNS = 400
EVENTS = 400


@dataclass
class Node:
    id: str
    table: ContactTable
    gen: int = -1
    switched_at: float = 0.0
    deaf: bool = False  # a removed node that never hears of its removal
    newest: int = -1  # the newest generation heard of from a peer
    raft_until: float = float("inf")  # removed: the leader stopped replicating to it, + grace


@dataclass
class World:
    rng: random.Random
    configs: list[frozenset[str]]
    nodes: dict[str, Node] = field(default_factory=dict)
    now: float = 0.0
    queue: list[tuple[float, int, tuple]] = field(default_factory=list)
    seq: itertools.count = field(default_factory=itertools.count)
    side: dict[str, int] = field(default_factory=dict)  # a partition: messages across sides are lost

    def linked(self, a: str, b: str) -> bool:
        return self.side.get(a, 0) == self.side.get(b, 0)

    def at(self, when: float, event: tuple) -> None:
        heapq.heappush(self.queue, (when, next(self.seq), event))

    def adopt(self, node: Node, gen: int) -> None:
        node.gen, node.switched_at = gen, self.now
        node.table.reconfigure(self.configs[gen], self.now, mute=MUTE)

    def serving_generations(self) -> set[int]:
        return {
            n.gen
            for n in self.nodes.values()
            if n.gen >= 0
            and n.id in self.configs[n.gen]
            and n.newest <= n.gen
            and self.now < n.raft_until
            and n.table.serving(self.now)
        }


def make_world(seed: int) -> World:
    rng = random.Random(seed)
    first = frozenset(POOL[: rng.choice([1, 3, 3, 5])])
    world = World(rng, [first])
    for node_id in POOL:
        table = ContactTable(node_id, first if node_id in first else [], 0.0, muted=True)
        world.nodes[node_id] = Node(node_id, table, 0 if node_id in first else -1)
    return world


def step(world: World) -> None:
    rng, now = world.rng, world.now
    if world.queue and (rng.random() < 0.6 or not any(True for _ in world.nodes)):
        world.now, _, event = heapq.heappop(world.queue)
        deliver(world, event)
        return
    world.now = now = now + rng.uniform(0.0, 0.25)
    roll = rng.random()
    latest = len(world.configs) - 1
    if roll < 0.03:  # partition the nodes into two random sides, or heal
        world.side = {n: rng.randrange(2) for n in POOL} if rng.random() < 0.6 else {}
    elif roll < 0.6:  # a ping from a member to one of its peers
        node = world.nodes[rng.choice(POOL)]
        if node.table.peers and node.gen >= 0:
            peer = rng.choice(node.table.peers)
            if rng.random() > 0.15:
                world.at(now + rng.uniform(0.0, 0.3), ("ping", node.id, peer, node.gen, now))
    elif roll < 0.7:  # a node adopts the latest configuration (or never does, if removed)
        lagging = [
            n
            for n in world.nodes.values()
            if n.gen < latest and not n.deaf and (n.id in world.configs[latest] or n.gen >= 0)
        ]
        if lagging:
            node = rng.choice(lagging)
            if node.id not in world.configs[latest] and rng.random() < 0.5:
                node.deaf = True
            else:
                world.adopt(node, latest)
    else:  # the next change, once every staying member adopted the current one
        current = world.configs[latest]
        outside = [n for n in POOL if n not in current and world.nodes[n].gen == -1]
        if outside and (len(current) < 2 or rng.random() < 0.5):
            new = current | {rng.choice(outside)}
        elif len(current) > 1:
            new = current - {rng.choice(sorted(current))}
        else:
            return
        if all(world.nodes[n].gen == latest for n in new & current):
            world.configs.append(frozenset(new))
            for gone in current - new:  # the leader no longer replicates to it
                world.nodes[gone].raft_until = now + GRACE


def deliver(world: World, event: tuple) -> None:
    kind, src, dst, gen, sent_at = event
    now = world.now
    if not world.linked(src, dst):
        return
    world.nodes[dst].newest = max(world.nodes[dst].newest, gen)
    if kind == "ping":
        node = world.nodes[dst]
        node.table.check(now)
        same = src in node.table.peers and gen == node.gen and dst in world.configs[max(node.gen, 0)] and node.gen >= 0
        acked = same and node.table.accept(src, now)
        if world.rng.random() > 0.15:
            world.at(now + world.rng.uniform(0.0, 0.3), ("ack" if acked else "nack", dst, src, node.gen, sent_at))
    elif kind == "ack":
        node = world.nodes[dst]
        if gen == node.gen and sent_at >= node.switched_at:
            node.table.on_ack(src, sent_at, now)
        else:
            node.table.check(now)


@pytest.mark.parametrize("block", range(4))
def test_two_generations_never_serve_at_once(block: int) -> None:
    changes = served = 0
    for seed in range(block * RUNS // 4, (block + 1) * RUNS // 4):
        world = make_world(seed)
        for _ in range(EVENTS):
            step(world)
            generations = world.serving_generations()
            assert len(generations) <= 1, f"seed {seed} at t={world.now:.3f}: generations {generations} serve"
            served += bool(generations)
        changes += len(world.configs) - 1
    # The runs exercised something: configurations changed and nodes served.
    assert changes > RUNS // 8 and served > RUNS * EVENTS // 50
