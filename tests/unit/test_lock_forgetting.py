"""Lock table rule 17: free records are forgotten beyond a bound, and tokens stay monotonic."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rakit.statemachines.locks import (
    Acquire,
    CancelWait,
    DelayEnd,
    Expire,
    Granted,
    LockTable,
    Release,
    SetOptions,
    Waiting,
)

X, S = "exclusive", "shared"


class Log:
    def __init__(self, max_free: int) -> None:
        self.table = LockTable(max_free=max_free)
        self.index = 0

    def __call__(self, command: Any) -> Any:
        self.index += 1
        return self.table.apply(self.index, command)

    def take_and_free(self, resource: str, client: str = "c") -> int:
        granted = self(Acquire(resource, client, X, 10, 0))
        assert isinstance(granted, Granted)
        self(Release(resource, client))
        return granted.token

    def recorded(self) -> set[str]:
        return {r["resource"] for r in self.table.table(10_000)["resources"]}


def test_the_oldest_free_records_beyond_the_bound_are_forgotten() -> None:
    log = Log(max_free=2)
    tokens = {name: log.take_and_free(name) for name in ("a", "b", "c")}
    assert log.recorded() == {"b", "c"}
    assert log.table.fencing_floor == tokens["a"]
    assert log.table.status("b")["fencing_token"] == tokens["b"]


def test_a_forgotten_resource_reports_the_floor_and_its_next_grant_is_above_it() -> None:
    log = Log(max_free=1)
    first = log.take_and_free("a")
    log.take_and_free("b")
    assert log.table.status("a")["fencing_token"] == first == log.table.fencing_floor
    assert log.table.status("never-used")["fencing_token"] == log.table.fencing_floor
    again = log(Acquire("a", "c", X, 10, 0))
    assert isinstance(again, Granted) and again.token > first


def test_nothing_is_forgotten_before_the_bound_and_unknown_resources_have_no_token() -> None:
    log = Log(max_free=10)
    for name in "abc":
        log.take_and_free(name)
    assert log.recorded() == set("abc") and log.table.fencing_floor is None
    assert log.table.status("never-used")["fencing_token"] is None


def test_held_waited_on_and_delayed_records_are_never_forgotten() -> None:
    log = Log(max_free=0)
    assert isinstance(log(Acquire("held", "h", X, 10, 0)), Granted)
    assert isinstance(log(Acquire("held", "w", X, 10, 5)), Waiting)
    granted = log(Acquire("delayed", "d", X, 10, 0, lock_delay=5))
    assert isinstance(granted, Granted)
    log(Expire("delayed", "d", granted.lease))  # lease stamp = the grant's index
    assert log.recorded() == {"held", "delayed"}
    log(DelayEnd("delayed"))
    assert log.recorded() == {"held"}  # free now, and the bound is 0
    log(CancelWait("held", "w"))
    log(Release("held", "h"))
    assert log.recorded() == set()


def test_a_command_on_a_free_record_makes_it_the_newest() -> None:
    log = Log(max_free=2)
    log.take_and_free("a")
    log.take_and_free("b")
    log(Release("a", "nobody"))  # NotHolder, but it names "a": "a" is now the newest free record
    log.take_and_free("c")
    assert log.recorded() == {"a", "c"}


def test_a_forgotten_record_takes_its_lock_delay_option_with_it() -> None:
    log = Log(max_free=1)
    log(SetOptions("a", 3.0))
    log.take_and_free("b")
    assert "a" not in log.recorded()
    assert log.table.table(10)["resources"][0]["lock_delay"] == 0.0


def test_snapshot_and_restore_keep_the_order_and_the_floor() -> None:
    log = Log(max_free=2)
    for name in "abc":
        log.take_and_free(name)
    twin = LockTable(max_free=2)
    twin.restore(log.table.snapshot())
    assert twin.fencing_floor == log.table.fencing_floor
    assert twin.snapshot() == log.table.snapshot()
    for table in (log.table, twin):  # the same next step on both: the same record forgotten
        table.apply(100, Acquire("d", "c", X, 10, 0))
        table.apply(101, Release("d", "c"))
    assert twin.snapshot() == log.table.snapshot()


_names = st.sampled_from(["r0", "r1", "r2", "r3", "r4", "r5"])
_clients = st.sampled_from(["c0", "c1", "c2"])
_commands = st.one_of(
    st.builds(
        lambda r, c, m, w: Acquire(r, c, m, 10, w), _names, _clients, st.sampled_from([X, S]), st.sampled_from([0, 5])
    ),
    st.builds(lambda r, c: Release(r, c), _names, _clients),
    st.builds(lambda r, c: CancelWait(r, c), _names, _clients),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_commands, max_size=60), st.integers(min_value=0, max_value=3))
def test_forgetting_changes_no_grant_and_no_token_goes_backwards(commands: list[Any], max_free: int) -> None:
    """A bounded table and an unbounded one agree on every result; statuses differ only by the floor."""
    bounded, unbounded = LockTable(max_free=max_free), LockTable()
    highest: dict[str, int] = {}
    for index, command in enumerate(commands, start=1):
        assert bounded.apply(index, command) == unbounded.apply(index, command)
        for name in ("r0", "r1", "r2", "r3", "r4", "r5"):
            token = bounded.status(name)["fencing_token"]
            exact = unbounded.status(name)["fencing_token"]
            assert (token is None) == (exact is None and bounded.fencing_floor is None)
            if token is not None:
                assert exact is None or token >= exact
                assert token >= highest.get(name, 0)
                highest[name] = token
    assert len(bounded.table(100)["resources"]) <= len(unbounded.table(100)["resources"])
