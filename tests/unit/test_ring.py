"""rakit.queue.ring: determinism, spread, minimal movement, fail-over order."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from rakit.queue.ring import DEFAULT_VNODES, ConsistentHashRing, stable_hash

KEYS = [f"topic-{i}" for i in range(10_000)]


def owners(ring: ConsistentHashRing) -> dict[str, str]:
    return {k: ring.owner(k) for k in KEYS}


def test_default_vnodes_is_at_least_100() -> None:
    assert DEFAULT_VNODES >= 100
    assert ConsistentHashRing(["a"]).vnodes == DEFAULT_VNODES


def test_same_node_set_gives_the_same_ring_whatever_the_insertion_order() -> None:
    a = ConsistentHashRing(["node1", "node2", "node3"])
    b = ConsistentHashRing(["node3", "node1", "node2"])
    c = ConsistentHashRing(["node2"])
    c.add("node3")
    c.add("node1")
    assert owners(a) == owners(b) == owners(c)
    for k in KEYS[:500]:
        assert a.successors(k) == b.successors(k) == c.successors(k)


def test_the_ring_is_the_same_in_another_process() -> None:
    # Python's hash() is salted per process; the ring must not depend on it.
    code = (
        "from rakit.queue.ring import ConsistentHashRing, stable_hash;"
        "r = ConsistentHashRing(['node1', 'node2', 'node3']);"
        "print(stable_hash('orders'), *[r.owner(f'topic-{i}') for i in range(200)])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    ).stdout.split()
    ring = ConsistentHashRing(["node1", "node2", "node3"])
    assert int(out[0]) == stable_hash("orders")
    assert out[1:] == [ring.owner(f"topic-{i}") for i in range(200)]


def test_stable_hash_is_a_fixed_function() -> None:
    # Pinned value: changing the hash would move every topic to another owner.
    assert stable_hash("orders") == int.from_bytes(
        __import__("hashlib").blake2b(b"orders", digest_size=8).digest(), "big"
    )
    assert 0 <= stable_hash("x") < 2**64


@pytest.mark.parametrize("size", [3, 5])
def test_keys_spread_evenly(size: int) -> None:
    ring = ConsistentHashRing([f"node{i + 1}" for i in range(size)])
    counts = Counter(owners(ring).values())
    mean = len(KEYS) / size
    spread = {n: round(c / mean, 3) for n, c in sorted(counts.items())}
    print(f"\n{size} nodes, {len(KEYS)} keys, share / mean share: {spread}")
    assert set(counts) == ring.nodes
    for node, count in counts.items():
        assert abs(count - mean) <= 0.20 * mean, f"{node} owns {count} keys, mean {mean:.0f}"


@pytest.mark.parametrize("size", [3, 5])
def test_removing_a_node_moves_only_the_keys_it_owned(size: int) -> None:
    names = [f"node{i + 1}" for i in range(size)]
    ring = ConsistentHashRing(names)
    before = owners(ring)
    successors_before = {k: ring.successors(k) for k in KEYS}
    gone = names[1]
    ring.remove(gone)
    after = owners(ring)
    moved = {k for k in KEYS if before[k] != after[k]}
    assert moved == {k for k in KEYS if before[k] == gone}
    for k in moved:
        # ... each to the node that was next in its fail-over order.
        assert after[k] == successors_before[k][1]
    assert gone not in after.values()


@pytest.mark.parametrize("size", [3, 5])
def test_adding_a_node_takes_only_its_share(size: int) -> None:
    ring = ConsistentHashRing([f"node{i + 1}" for i in range(size)])
    before = owners(ring)
    ring.add("newcomer")
    after = owners(ring)
    moved = [k for k in KEYS if before[k] != after[k]]
    assert all(after[k] == "newcomer" for k in moved)
    share = len(moved) / len(KEYS)
    print(f"\nadding a node to {size}: {share:.3f} of the keys moved (ideal {1 / (size + 1):.3f})")
    assert abs(share - 1 / (size + 1)) <= 0.25 / (size + 1)


def test_successors_are_the_fail_over_order() -> None:
    names = [f"node{i + 1}" for i in range(5)]
    ring = ConsistentHashRing(names)
    for k in KEYS[:1000]:
        order = ring.successors(k)
        assert order[0] == ring.owner(k)
        assert sorted(order) == sorted(names)  # every node, each once
        # The owner gone, the next one serves; that one gone too, the one after.
        smaller = ConsistentHashRing(names)
        for i in range(len(order) - 1):
            smaller.remove(order[i])
            assert smaller.owner(k) == order[i + 1]
            assert smaller.successors(k) == order[i + 1 :]


def test_add_and_remove_are_idempotent_and_reversible() -> None:
    ring = ConsistentHashRing(["a", "b", "c"])
    before = owners(ring)
    ring.add("a")
    ring.remove("zzz")
    ring.add("d")
    ring.remove("d")
    assert owners(ring) == before
    assert ring.nodes == frozenset({"a", "b", "c"})
    assert len(ring) == 3 and "a" in ring and "d" not in ring


def test_empty_ring_and_bad_arguments() -> None:
    ring = ConsistentHashRing([])
    assert ring.successors("t") == []
    with pytest.raises(LookupError):
        ring.owner("t")
    with pytest.raises(ValueError):
        ConsistentHashRing(["a"], vnodes=0)
    with pytest.raises(ValueError):
        ring.add("")
    single = ConsistentHashRing(["only"])
    assert single.owner("t") == "only" and single.successors("t") == ["only"]
