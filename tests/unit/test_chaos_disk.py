"""The ``corrupt`` nemesis: its damage is what the store refuses, and its checker."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from rakit.chaos import nemesis as nem
from rakit.chaos.checkers import check_all
from rakit.chaos.checkers.disk import check_disk
from rakit.chaos.disk import damage_log, records
from rakit.chaos.history import Fault, History
from rakit.raft.messages import Entry, HardState
from rakit.storage.file_store import FileLogStore, WalError


def write_log(path: Path, saves: int) -> None:
    store = FileLogStore(path)
    for i in range(1, saves + 1):
        store.save(HardState(term=1, vote="n1", commit=i), [Entry(term=1, index=i, data=b"x" * 20)])
    store.close()


def test_the_damage_is_mid_log_and_the_store_refuses_it(tmp_path: Path) -> None:
    path = tmp_path / "raft.wal"
    write_log(path, 20)
    spans = records(path.read_bytes())
    offset = damage_log(path, random.Random(1))
    assert offset is not None and offset in [s for s, _ in spans[:-1]]
    with pytest.raises(WalError, match=f"byte {offset}"):
        FileLogStore(path)


def test_a_log_too_short_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "raft.wal"
    write_log(path, 2)
    before = path.read_bytes()
    assert damage_log(path, random.Random(1)) is None and path.read_bytes() == before
    assert damage_log(tmp_path / "missing.wal", random.Random(1)) is None


def corrupt(refused: bool | None, damaged_at: int | None = 100) -> Fault:
    detail = {"damaged_at": damaged_at} if refused is None else {"damaged_at": damaged_at, "refused": refused}
    return Fault("corrupt", 1.0, 2.0, ("node2",), (), detail)


def test_a_node_that_started_on_a_damaged_log_is_a_violation() -> None:
    verdict = check_disk([corrupt(True), corrupt(False), corrupt(None, damaged_at=None)])
    assert verdict.stats == {"damaged": 2, "refused": 1}
    assert len(verdict.violations) == 1 and "node2 started on a log damaged at byte 100" in verdict.violations[0]
    assert check_disk([corrupt(True)]).valid


def test_the_disk_verdict_joins_only_runs_with_corrupt_faults() -> None:
    plain = History(meta={}, ops=[], faults=[Fault("kill", 1.0, 2.0, ("node1",))])
    assert [v.workload for v in check_all(plain)] == ["locks", "queue", "cache"]
    damaged = History(meta={}, ops=[], faults=[corrupt(True)])
    assert [v.workload for v in check_all(damaged)] == ["locks", "queue", "cache", "disk"]


def test_the_nemesis_is_planned_and_named() -> None:
    assert nem.parse_nemeses("disk") == ("corrupt",) and "corrupt" in nem.parse_nemeses("all")
    steps = nem.plan(3, 60, ["corrupt"], ["node1", "node2", "node3"])
    assert steps and all(s.kind == "corrupt" and s.target for s in steps)
