"""Cache versions: total order, wire form, and the hybrid clock (rules of rakit.cache.rules.versions)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rakit.cache.rules.versions import MIN_VERSION, HybridClock, Version

node_ids = st.text(alphabet="abcnode123_.:-", min_size=1, max_size=8)
versions = st.builds(Version, st.integers(0, 2**53), node_ids)


def test_order_is_counter_then_node() -> None:
    assert Version(1, "b") < Version(2, "a")
    assert Version(2, "a") < Version(2, "b")
    assert Version(2, "a") == Version(2, "a")
    assert max(Version(5, "node1"), Version(5, "node2"), Version(4, "node9")) == Version(5, "node2")
    assert MIN_VERSION < Version(0, "a")
    assert Version(7, "") < Version(7, "a")


@given(versions, versions)
def test_order_is_total_and_consistent_with_tuples(a: Version, b: Version) -> None:
    assert (a < b) == ((a.counter, a.node) < (b.counter, b.node))
    assert (a < b) + (a == b) + (a > b) == 1


@given(versions)
def test_encode_decode_round_trip(v: Version) -> None:
    text = v.encode()
    assert isinstance(text, str)
    assert Version.decode(text) == v
    assert hash(Version.decode(text)) == hash(v)


def test_encoded_form() -> None:
    assert Version(1718000000000001, "node1").encode() == "1718000000000001.node1"
    assert Version.decode("12.a.b") == Version(12, "a.b")


@pytest.mark.parametrize("text", ["", "12", ".node", "x.node", "-1.node", "1e3.n", "١.n", 12])
def test_decode_refuses_malformed(text: object) -> None:
    with pytest.raises(ValueError):
        Version.decode(text)  # type: ignore[arg-type]


def test_constructor_checks() -> None:
    with pytest.raises(ValueError):
        Version(-1, "a")
    with pytest.raises(TypeError):
        Version(True, "a")
    with pytest.raises(TypeError):
        Version("1", "a")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        HybridClock("")


def test_versions_are_frozen_and_hashable() -> None:
    v = Version(1, "a")
    with pytest.raises(AttributeError):
        v.counter = 2  # type: ignore[misc]
    assert {v: 1}[Version(1, "a")] == 1


def test_tick_follows_wall_clock_and_never_repeats() -> None:
    clock = HybridClock("n1")
    assert clock.tick(1000) == Version(1000, "n1")
    assert clock.tick(1000) == Version(1001, "n1")  # same microsecond: last + 1
    assert clock.tick(999) == Version(1002, "n1")  # wall clock went back: still rises
    assert clock.tick(5000) == Version(5000, "n1")
    assert clock.last == 5000


def test_observe_puts_next_tick_above_the_observed_version() -> None:
    clock = HybridClock("a")
    clock.observe(Version(10_000, "zzz"))  # a higher node id with the same counter...
    v = clock.tick(5)
    assert v > Version(10_000, "zzz")  # ...still loses to the next tick
    clock.observe(Version(3, "b"))  # observing an older version changes nothing
    assert clock.last == v.counter


def test_floor_starts_clock_above_it() -> None:
    assert HybridClock("a", floor=50).tick(10) == Version(51, "a")


@given(
    st.lists(st.integers(0, 10**6), min_size=1, max_size=30),
    st.lists(st.integers(0, 3), min_size=1, max_size=30),
    st.integers(1, 10**6),
)
def test_restarted_clock_issues_above_everything_before(before: list[int], steps: list[int], gap: int) -> None:
    """Given a non-decreasing wall clock, a fresh clock after a restart wins.

    The wall clock advances by ``steps`` (maybe 0) per tick; the restart
    takes ``gap`` µs more than the counters ran ahead of the wall clock.
    """
    clock = HybridClock("n1")
    wall = 0
    issued = []
    for step in steps:
        wall += step
        issued.append(clock.tick(wall))
    for counter in before:  # versions observed from peers whose clocks are behind
        if counter <= wall:
            clock.observe(Version(counter, "n2"))
    assert issued == sorted(set(issued))  # strictly rising
    restart_wall = max(wall, clock.last) + gap
    fresh = HybridClock("n1")
    assert fresh.tick(restart_wall) > max(issued)
