"""Coherence of one node's cache: one test per row of ``rakit.cache.rules.coherence.TABLE``.

Each ``test_row_N_...`` is named after its row and runs from every source
state of the row; the rule tests after them cover watermark, floor,
tombstone eviction, epoch and restart.
"""

from __future__ import annotations

import pytest

from rakit.cache.rules.coherence import TABLE, CacheNode, Event, FetchTicket, State, next_state
from rakit.cache.rules.lru import ENTRY_OVERHEAD, CacheEntry, EntryTooLarge
from rakit.cache.rules.versions import MIN_VERSION, HybridClock, Version

NOW_US = 1_000_000
K = "k"


def make(node_id: str = "n1", capacity: int = 8, max_bytes: int = 10**6, **kw: object) -> CacheNode:
    return CacheNode(node_id, capacity, max_bytes, HybridClock(node_id), **kw)  # type: ignore[arg-type]


def held_state(node: CacheNode, key: str = K) -> State:
    entry = node.peek(key, None)
    return State.I if entry is None else State(entry.state)


def enter(node: CacheNode, state: State, key: str = K) -> Version | None:
    """Bring ``key`` at ``node`` into ``state``; the held version."""
    if state is State.I:
        return None
    v = node.local_set(key, b'"v"', None, 0.0, NOW_US)
    if state is State.E:
        assert node.confirm_write(key, v)
    elif state is State.S:
        assert node.serve_fetch(key, 0.0) is not None
    assert held_state(node, key) is state
    return v


def answer(version: Version, value: bytes = b'"peer"', key: str = K, expires_at: float | None = None) -> CacheEntry:
    return CacheEntry(key, value, version, "M", expires_at)


def rows(number: int) -> list[State]:
    (row,) = [r for r in TABLE if r.number == number]
    return sorted(row.sources)


# -- the table itself -----------------------------------------------------


def test_table_rows_are_numbered_and_do_not_overlap() -> None:
    assert [r.number for r in TABLE] == list(range(1, len(TABLE) + 1))
    pairs = [(s, r.event) for r in TABLE for s in r.sources]
    assert len(pairs) == len(set(pairs))


def test_table_is_in_the_module_docstring() -> None:
    import rakit.cache.rules.coherence as coherence

    doc = coherence.__doc__ or ""
    for row in TABLE:
        line = next(line for line in doc.splitlines() if line.startswith(f"{row.number:2d}  "))
        assert row.event.name in line
        assert set(line.split()[1 : len(row.sources) + 1]) == {s.value for s in row.sources}


def test_pairs_outside_the_table_are_broken_invariants() -> None:
    with pytest.raises(KeyError):
        next_state(State.I, Event.CONFIRM)
    with pytest.raises(KeyError):
        next_state(State.I, Event.EVICT)


# -- one test per row -----------------------------------------------------


@pytest.mark.parametrize("start", rows(1))
def test_row_1_set_from_any_to_M(start: State) -> None:
    node = make()
    before = enter(node, start)
    v = node.local_set(K, b'"new"', None, 0.0, NOW_US)
    assert before is None or v > before
    assert held_state(node) is State.M
    assert node.peek(K, 0.0).value == b'"new"'  # type: ignore[union-attr]
    assert node.watermark(K) == v


@pytest.mark.parametrize("start", rows(2))
def test_row_2_delete_from_any_to_I(start: State) -> None:
    node = make()
    before = enter(node, start)
    v, existed = node.local_delete(K, NOW_US)
    assert existed == (start is not State.I)
    assert before is None or v > before
    assert held_state(node) is State.I
    assert node.watermark(K) == v


@pytest.mark.parametrize("start", rows(3))
def test_row_3_confirm_M_to_E(start: State) -> None:
    node = make()
    v = node.local_set(K, b"1", None, 0.0, NOW_US)
    assert node.confirm_write(K, v)
    assert held_state(node) is State.E
    assert not node.confirm_write(K, v)  # again: not in M any more, nothing happens


def test_row_3_confirm_of_a_replaced_write_does_nothing() -> None:
    node = make()
    old = node.local_set(K, b"1", None, 0.0, NOW_US)
    node.local_set(K, b"2", None, 0.0, NOW_US)
    assert not node.confirm_write(K, old)
    assert held_state(node) is State.M
    assert not node.confirm_write("absent", old)


@pytest.mark.parametrize("start", rows(4))
def test_row_4_invalidate_newer_than_copy_from_MES_to_I(start: State) -> None:
    node = make()
    v = enter(node, start)
    assert v is not None
    newer = Version(v.counter + 1, "n2")
    assert node.on_invalidate(K, newer)
    assert held_state(node) is State.I
    assert node.watermark(K) == newer
    assert node.statistics().invalidations_dropped == 1


@pytest.mark.parametrize("start", rows(5))
def test_row_5_invalidate_with_no_copy_stays_I(start: State) -> None:
    node = make()
    assert not node.on_invalidate(K, Version(5, "n2"))
    assert held_state(node) is State.I
    assert node.watermark(K) == Version(5, "n2")
    assert not node.on_invalidate(K, Version(3, "n3"))  # older: the watermark never falls
    assert node.watermark(K) == Version(5, "n2")


@pytest.mark.parametrize("start", rows(6))
def test_row_6_invalidate_old_keeps_the_copy(start: State) -> None:
    node = make()
    v = enter(node, start)
    assert v is not None
    for late in (Version(v.counter - 1, "n2"), Version(v.counter, "a"), v):  # older, lower id, duplicate
        assert not node.on_invalidate(K, late)
        assert held_state(node) is start
        assert node.peek(K, 0.0).version == v  # type: ignore[union-attr]
    assert node.watermark(K) == v


@pytest.mark.parametrize("start", rows(7))
def test_row_7_serve_from_MES_to_S(start: State) -> None:
    node = make()
    v = enter(node, start)
    served = node.serve_fetch(K, 0.0)
    assert served is not None and served.version == v and served.state == State.S
    assert held_state(node) is State.S


@pytest.mark.parametrize("start", rows(8))
def test_row_8_serve_with_no_copy_stays_I(start: State) -> None:
    node = make()
    assert node.serve_fetch(K, 0.0) is None
    assert held_state(node) is State.I


@pytest.mark.parametrize("start", rows(9))
def test_row_9_fetch_keep_from_any_to_S(start: State) -> None:
    node = make()
    held = enter(node, start)
    ticket = node.begin_fetch(K)
    newest = Version((held.counter if held else NOW_US) + 10, "n3")
    got = node.complete_fetch(ticket, [None, answer(Version(1, "n2"), b'"old"'), answer(newest, b'"new"')], 0.0)
    assert got is not None and got.version == newest and got.value == b'"new"' and got.state == State.S
    assert held_state(node) is State.S
    assert node.lookup(K, 0.0).version == newest  # type: ignore[union-attr]
    assert node.clock.last >= newest.counter  # observed
    assert node.statistics().fetches_kept == 1


@pytest.mark.parametrize("start", rows(10))
def test_row_10_fetch_skip_keeps_state_and_answers_the_copy(start: State) -> None:
    node = make()
    held = enter(node, start)
    if start is State.I:
        node.on_invalidate(K, Version(NOW_US, "n9"))
    ticket = node.begin_fetch(K)
    older = Version(NOW_US - 1, "n2")  # not newer than the copy, or below the watermark
    got = node.complete_fetch(ticket, [answer(older)], 0.0)
    assert held_state(node) is start
    assert (got.version if got else None) == held
    # no answers at all: same
    assert (node.complete_fetch(node.begin_fetch(K), [None, None], 0.0) or None) == node.peek(K, 0.0)


@pytest.mark.parametrize("start", rows(11))
def test_row_11_evict_from_MES_to_I(start: State) -> None:
    node = make(capacity=1)
    v = enter(node, start)
    assert v is not None
    node.local_set("other", b"1", None, 0.0, NOW_US)
    assert held_state(node) is State.I
    assert node.watermark(K) == v  # eviction does not touch the watermark
    assert node.statistics().evictions == 1


@pytest.mark.parametrize("start", rows(12))
def test_row_12_expire_from_MES_to_I(start: State) -> None:
    node = make()
    v = node.local_set(K, b"1", 5.0, 0.0, NOW_US)
    if start is State.E:
        node.confirm_write(K, v)
    elif start is State.S:
        node.serve_fetch(K, 0.0)
    assert held_state(node) is start
    assert node.lookup(K, 4.9) is not None
    assert node.lookup(K, 5.0) is None
    assert held_state(node) is State.I
    stats = node.statistics()
    assert (stats.hits, stats.misses, stats.expirations) == (1, 1, 1)


@pytest.mark.parametrize("start", rows(13))
def test_row_13_drop_all_from_any_to_I(start: State) -> None:
    node = make()
    enter(node, start)
    node.local_set("other", b"1", None, 0.0, NOW_US)
    assert node.drop_all("lost contact with n2") == (2 if start is not State.I else 1)
    assert held_state(node) is State.I and len(node) == 0
    stats = node.statistics()
    assert (stats.epoch, stats.drops, stats.last_drop_reason) == (1, 1, "lost contact with n2")


# -- rules ------------------------------------------------------------------


def test_rule_3_late_fetch_answer_cannot_resurrect_an_invalidated_value() -> None:
    node = make()
    ticket = node.begin_fetch(K)
    old = Version(NOW_US, "n2")
    node.on_invalidate(K, Version(NOW_US + 1, "n3"))  # the write overtakes the answer
    assert node.complete_fetch(ticket, [answer(old)], 0.0) is None
    assert node.peek(K, 0.0) is None
    assert node.statistics().fetches_refused == 1
    # the write's own value is accepted (equal to the watermark)
    got = node.complete_fetch(node.begin_fetch(K), [answer(Version(NOW_US + 1, "n3"))], 0.0)
    assert got is not None and held_state(node) is State.S


def test_rule_4_answers_are_checked_against_the_watermark_at_completion() -> None:
    node = make()
    node.on_invalidate(K, Version(10, "n2"))
    ticket = node.begin_fetch(K)
    assert ticket == FetchTicket(K, 0, Version(10, "n2"))
    node.on_invalidate(K, Version(20, "n2"))  # during the fetch
    assert node.complete_fetch(ticket, [answer(Version(15, "n3"))], 0.0) is None


def test_rule_5_tombstone_eviction_raises_the_floor() -> None:
    node = make(tombstone_capacity=2)
    node.on_invalidate("a", Version(30, "n2"))
    ticket = node.begin_fetch("a")  # in flight while "a"'s tombstone is evicted
    node.on_invalidate("b", Version(10, "n2"))
    node.on_invalidate("c", Version(20, "n2"))  # evicts "a"
    assert node.watermark("a") is None
    assert node.floor == Version(30, "n2")
    assert node.fetch_floor("zzz") == Version(30, "n2")
    assert node.fetch_floor("c") == Version(30, "n2")  # max(watermark, floor)
    assert node.complete_fetch(ticket, [answer(Version(25, "n3"), key="a")], 0.0) is None
    assert node.complete_fetch(node.begin_fetch("x"), [answer(Version(29, "n3"), key="x")], 0.0) is None
    assert node.complete_fetch(node.begin_fetch("x"), [answer(Version(31, "n3"), key="x")], 0.0) is not None
    assert node.epoch == 0  # no epoch bump needed
    stats = node.statistics()
    assert (stats.tombstones, stats.tombstone_evictions) == (2, 1)


def test_rule_5_floor_only_rises() -> None:
    node = make(tombstone_capacity=1)
    node.on_invalidate("a", Version(30, "n2"))
    node.on_invalidate("b", Version(10, "n2"))  # evicts a@30
    node.on_invalidate("c", Version(5, "n2"))  # evicts b@10
    assert node.floor == Version(30, "n2")


def test_rule_6_drop_all_refuses_fetches_begun_before() -> None:
    node = make()
    ticket = node.begin_fetch(K)
    node.drop_all("invalidation gap")
    assert node.complete_fetch(ticket, [answer(Version(NOW_US + 5, "n2"))], 0.0) is None
    assert node.peek(K, 0.0) is None
    got = node.complete_fetch(node.begin_fetch(K), [answer(Version(NOW_US + 5, "n2"))], 0.0)
    assert got is not None


def test_rule_6_drop_all_keeps_watermarks_and_floor() -> None:
    node = make(tombstone_capacity=1)
    node.on_invalidate("a", Version(30, "n2"))
    node.on_invalidate("b", Version(40, "n2"))
    node.drop_all("restart")
    assert node.watermark("b") == Version(40, "n2")
    assert node.floor == Version(30, "n2")


def test_rule_7_restarted_node_refuses_answers_older_than_its_start() -> None:
    node = make(floor=Version(NOW_US, ""))
    assert node.complete_fetch(node.begin_fetch(K), [answer(Version(NOW_US - 1, "n2"))], 0.0) is None
    assert node.complete_fetch(node.begin_fetch(K), [answer(Version(NOW_US, "n2"))], 0.0) is not None


def test_rule_2_writes_beat_everything_observed() -> None:
    node = make()
    node.on_invalidate("a", Version(NOW_US * 5, "zz"))
    assert node.local_set("b", b"1", None, 0.0, NOW_US) > Version(NOW_US * 5, "zz")
    node.complete_fetch(node.begin_fetch("c"), [answer(Version(NOW_US * 9, "zz"), key="c")], 0.0)
    v, _ = node.local_delete("c", NOW_US)
    assert v > Version(NOW_US * 9, "zz")


def test_rule_2_concurrent_writers_converge_on_the_highest() -> None:
    a, b = make("a"), make("b")
    va = a.local_set(K, b'"A"', None, 0.0, NOW_US)
    vb = b.local_set(K, b'"B"', None, 0.0, NOW_US)  # same microsecond: "b" > "a"
    assert vb > va
    assert b.on_invalidate(K, va) is False  # b keeps its newer copy
    assert a.on_invalidate(K, vb) is True  # a drops its older one
    assert a.peek(K, 0.0) is None and b.peek(K, 0.0).version == vb  # type: ignore[union-attr]


def test_rule_9_too_large_changes_nothing() -> None:
    node = make(max_bytes=ENTRY_OVERHEAD + 10)
    last = node.clock.last
    with pytest.raises(EntryTooLarge):
        node.local_set(K, b"x" * 20, None, 0.0, NOW_US)
    assert node.clock.last == last and node.watermark(K) is None and len(node) == 0


def test_fetch_answer_details() -> None:
    node = make(max_bytes=ENTRY_OVERHEAD + 10)
    # expired answers are ignored
    dead = answer(Version(NOW_US, "n2"), expires_at=1.0)
    assert node.complete_fetch(node.begin_fetch(K), [dead], 2.0) is None
    # an answer too large for this store is answered but not kept
    big = answer(Version(NOW_US, "n2"), b"x" * 50)
    assert node.complete_fetch(node.begin_fetch(K), [big], 0.0) == big.with_state(State.S)
    assert node.peek(K, 0.0) is None
    # an answer for another key is a broken invariant
    with pytest.raises(ValueError):
        node.complete_fetch(node.begin_fetch(K), [answer(Version(1, "n2"), key="other")], 0.0)


def test_local_set_ttl_and_validation() -> None:
    node = make()
    node.local_set(K, b"1", 2.5, 10.0, NOW_US)
    assert node.peek(K, 0.0).expires_at == 12.5  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        node.local_set(K, b"1", 0, 10.0, NOW_US)
    with pytest.raises(ValueError):
        CacheNode("n1", 4, 1000, HybridClock("n2"))


def test_local_delete_with_now_ignores_a_dead_copy() -> None:
    node = make()
    node.local_set(K, b"1", 1.0, 0.0, NOW_US)
    _, existed = node.local_delete(K, NOW_US, now_s=5.0)
    assert not existed


def test_statistics_count() -> None:
    node = make()
    node.local_set(K, b"1", None, 0.0, NOW_US)
    node.lookup(K, 0.0)
    node.lookup("nope", 0.0)
    node.serve_fetch(K, 0.0)
    node.on_invalidate(K, Version(1, "n2"))
    node.local_delete(K, NOW_US)
    stats = node.statistics()
    assert (stats.sets, stats.deletes, stats.hits, stats.misses) == (1, 1, 1, 1)
    assert (stats.fetches_served, stats.invalidations_received, stats.invalidations_dropped) == (1, 1, 0)
    assert stats.floor == MIN_VERSION and stats.tombstone_capacity == 4096
