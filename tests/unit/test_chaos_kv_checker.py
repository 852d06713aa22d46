"""The KV linearizability checker on hand-written histories (more cases to come)."""

from __future__ import annotations

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
