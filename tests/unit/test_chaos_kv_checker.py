"""The KV linearizability checker on hand-written histories (more cases to come)."""

from __future__ import annotations

import random

from rakit.chaos.checkers._kv_model import KvOp, Read
from rakit.chaos.checkers.kv import check_kv


def put(p: int, t0: float, t1: float | None, v: int, outcome: str = "ok") -> KvOp:
    return KvOp(p, "put", t0, t1, outcome, key="a", value=v)


def get(p: int, t0: float, t1: float, v: int) -> KvOp:
    return KvOp(p, "get", t0, t1, "ok", key="a", read=Read(True, v))


def test_read_after_write_passes() -> None:
    assert check_kv([put(0, 0, 1, 1), get(1, 2, 3, 1)]).valid


def test_stale_read_is_caught() -> None:
    verdict = check_kv([put(0, 0, 1, 1), put(0, 1.5, 1.8, 2), get(1, 2, 3, 1)])
    assert not verdict.valid
    assert "not linearizable" in verdict.violations[0]


def test_unknown_write_seen_later_passes() -> None:
    assert check_kv([put(0, 0, None, 1, "info"), get(1, 2, 3, 1)]).valid


def test_unknown_write_seen_before_its_invoke_is_caught() -> None:
    assert not check_kv([get(1, 0, 1, 1), put(0, 2, None, 1, "info")]).valid


def test_lost_increment_is_caught() -> None:
    ops = [
        KvOp(0, "incr", 0, 1, "ok", key="c", delta=1, read=Read(True, 1)),
        KvOp(1, "incr", 2, 3, "ok", key="c", delta=1, read=Read(True, 1)),
    ]
    assert not check_kv(ops).valid


def random_history(seed: int, n: int = 2000, keys: int = 8, clients: int = 16, info: float = 0.02) -> list[KvOp]:
    """Puts and gets from a real sequential execution at random points inside overlapping intervals."""
    rnd = random.Random(seed)
    store: dict[str, int] = {}
    clock = [0.0] * clients
    points = []
    for _ in range(n):
        c = rnd.randrange(clients)
        t0 = clock[c] + rnd.random()
        t1 = t0 + rnd.random() * 3
        clock[c] = t1
        points.append((rnd.uniform(t0, t1), c, t0, t1))
    ops = []
    for uid, (_, c, t0, t1) in enumerate(sorted(points)):
        k = f"k{rnd.randrange(keys)}"
        if rnd.random() < 0.5:
            v = store.get(k)
            ops.append(KvOp(c, "get", t0, t1, "ok", key=k, read=Read(v is not None, v)))
        elif rnd.random() < info:
            if rnd.random() < 0.5:
                store[k] = uid
            ops.append(KvOp(c, "put", t0, None, "info", key=k, value=uid))
        else:
            store[k] = uid
            ops.append(KvOp(c, "put", t0, t1, "ok", key=k, value=uid))
    return ops


def test_random_real_histories_pass_and_a_mutated_read_is_caught() -> None:
    caught = 0
    for seed in range(5):
        ops = random_history(seed)
        assert check_kv(ops).valid, seed
        i = next(i for i, o in enumerate(ops) if i > len(ops) // 2 and o.f == "get" and o.read and o.read.found)
        ops[i] = KvOp(ops[i].process, "get", ops[i].invoke, ops[i].complete, "ok", key=ops[i].key, read=Read(True, -1))
        caught += not check_kv(ops).valid
    assert caught == 5
