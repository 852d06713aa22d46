"""The bounded LRU store: eviction order, byte bound, TTL, oversize refusal, statistics."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rakit.cache.rules.lru import ENTRY_OVERHEAD, CacheEntry, EntryTooLarge, LruStore, entry_size
from rakit.cache.rules.versions import Version
from rakit.errors import TooLarge

V = Version(1, "n1")


def entry(key: str, value: bytes = b"1", expires_at: float | None = None, state: str = "S") -> CacheEntry:
    return CacheEntry(key, value, V, state, expires_at)


def keys(store: LruStore) -> list[str]:
    return [k for k, _ in store.items()]


def test_size_is_key_plus_value_plus_overhead() -> None:
    e = entry("abc", b'"hello"')
    assert e.size == 3 + 7 + ENTRY_OVERHEAD == entry_size("abc", b'"hello"')


def test_evicts_least_recently_used_by_count() -> None:
    store = LruStore(capacity=3, max_bytes=10**6)
    for k in "abc":
        assert store.put(entry(k), 0) == []
    assert store.get("a", 0) is not None  # a becomes most recently used
    assert store.put(entry("d"), 0) == ["b"]
    assert keys(store) == ["c", "a", "d"]
    assert store.put(entry("e"), 0) == ["c"]
    assert len(store) == 3
    assert store.statistics().evictions == 2


def test_peek_does_not_touch() -> None:
    store = LruStore(capacity=2, max_bytes=10**6)
    store.put(entry("a"), 0)
    store.put(entry("b"), 0)
    assert store.peek("a", 0) is not None
    assert store.put(entry("c"), 0) == ["a"]
    stats = store.statistics()
    assert (stats.hits, stats.misses) == (0, 0)


def test_replacing_a_key_moves_it_and_recounts_bytes() -> None:
    store = LruStore(capacity=3, max_bytes=10**6)
    store.put(entry("a", b"1"), 0)
    store.put(entry("b", b"1"), 0)
    store.put(entry("a", b"12345"), 0)
    assert keys(store) == ["b", "a"]
    assert store.bytes == entry_size("a", b"12345") + entry_size("b", b"1")
    assert len(store) == 2


def test_byte_bound_evicts_until_it_holds() -> None:
    big = b"x" * 100
    one = entry_size("a", big)
    store = LruStore(capacity=100, max_bytes=3 * one)
    for k in "abc":
        store.put(entry(k, big), 0)
    assert store.bytes == 3 * one
    huge = b"x" * (100 + one)  # needs the room of two entries
    assert store.put(entry("d", huge), 0) == ["a", "b"]
    assert keys(store) == ["c", "d"]
    assert store.bytes <= store.max_bytes


def test_value_larger_than_the_store_is_refused_and_changes_nothing() -> None:
    store = LruStore(capacity=10, max_bytes=ENTRY_OVERHEAD + 10)
    store.put(entry("a", b"12345678"), 0)  # 1 + 8 + overhead: fits
    big = entry("b", b"123456789012")
    assert not store.fits(big)
    with pytest.raises(EntryTooLarge) as raised:
        store.put(big, 0)
    assert isinstance(raised.value, TooLarge)
    assert raised.value.status == 413
    assert raised.value.body()["error"] == "too_large"
    assert keys(store) == ["a"]
    # an exact fit is accepted and evicts the rest
    exact = entry("c", b"x" * 9)
    assert exact.size == store.max_bytes
    assert store.put(exact, 0) == ["a"]


def test_ttl_expiry_is_a_miss_and_removes_the_entry() -> None:
    store = LruStore(capacity=10, max_bytes=10**6)
    store.put(entry("a", expires_at=10.0), 0)
    store.put(entry("b"), 0)
    assert store.get("a", 9.999) is not None
    assert store.get("a", 10.0) is None  # dead from expires_at on
    assert "a" not in store
    assert store.get("b", 10**9) is not None  # no expiry
    stats = store.statistics()
    assert (stats.hits, stats.misses, stats.expirations) == (2, 1, 1)


def test_peek_removes_dead_entries_without_counting_a_miss() -> None:
    store = LruStore(capacity=10, max_bytes=10**6)
    store.put(entry("a", expires_at=1.0), 0)
    assert store.peek("a", None) is not None  # no now: no expiry check
    assert store.peek("a", 2.0) is None
    stats = store.statistics()
    assert (stats.misses, stats.expirations, stats.size, stats.bytes) == (0, 1, 0, 0)


def test_dead_entries_pushed_out_by_put_count_as_expirations() -> None:
    store = LruStore(capacity=1, max_bytes=10**6)
    store.put(entry("a", expires_at=1.0), 0)
    assert store.put(entry("b"), 5.0) == ["a"]
    stats = store.statistics()
    assert (stats.evictions, stats.expirations) == (0, 1)


def test_purge_expired() -> None:
    store = LruStore(capacity=10, max_bytes=10**6)
    store.put(entry("a", expires_at=1.0), 0)
    store.put(entry("b", expires_at=3.0), 0)
    store.put(entry("c"), 0)
    assert store.purge_expired(2.0) == ["a"]
    assert keys(store) == ["b", "c"]
    assert store.statistics().expirations == 1


def test_remove_clear_restate() -> None:
    store = LruStore(capacity=10, max_bytes=10**6)
    store.put(entry("a", state="M"), 0)
    store.put(entry("b"), 0)
    restated = store.restate("a", "S")
    assert restated is not None and restated.state == "S"
    assert keys(store) == ["a", "b"]  # restate does not move
    assert store.restate("zz", "S") is None
    removed = store.remove("a")
    assert removed is not None and removed.key == "a"
    assert store.remove("a") is None
    assert store.bytes == entry("b").size
    assert store.clear() == 1
    assert (len(store), store.bytes) == (0, 0)


def test_statistics() -> None:
    store = LruStore(capacity=2, max_bytes=10**6)
    store.put(entry("a"), 0)
    store.get("a", 0)
    store.get("x", 0)
    store.put(entry("b"), 0)
    store.put(entry("c"), 0)
    stats = store.statistics()
    assert stats.size == 2 and stats.capacity == 2 and stats.max_bytes == 10**6
    assert stats.bytes == 2 * entry("a").size
    assert (stats.hits, stats.misses, stats.evictions, stats.expirations) == (1, 1, 1, 0)


def test_bad_bounds() -> None:
    with pytest.raises(ValueError):
        LruStore(0, 100)
    with pytest.raises(ValueError):
        LruStore(1, 0)


ops = st.lists(
    st.tuples(
        st.sampled_from(["put", "get", "peek", "remove"]),
        st.sampled_from("abcdef"),
        st.integers(0, 300),
    ),
    max_size=60,
)


@given(ops, st.integers(1, 4), st.integers(ENTRY_OVERHEAD + 1, 3 * ENTRY_OVERHEAD + 600))
def test_matches_a_plain_list_model(operations: list[tuple[str, str, int]], capacity: int, max_bytes: int) -> None:
    """Against a list kept in recency order, evicting from the front."""
    store = LruStore(capacity, max_bytes)
    model: list[tuple[str, int]] = []  # (key, size), least recent first
    for op, key, n in operations:
        present = [k for k, _ in model]
        if op == "put":
            e = entry(key, b"x" * n)
            if e.size > max_bytes:
                with pytest.raises(EntryTooLarge):
                    store.put(e, 0)
                continue
            model = [(k, s) for k, s in model if k != key] + [(key, e.size)]
            expected = []
            while len(model) > capacity or sum(s for _, s in model) > max_bytes:
                expected.append(model.pop(0)[0])
            assert store.put(e, 0) == expected
        elif op == "get":
            assert (store.get(key, 0) is not None) == (key in present)
            if key in present:
                model = [(k, s) for k, s in model if k != key] + [m for m in model if m[0] == key]
        elif op == "peek":
            assert (store.peek(key, 0) is not None) == (key in present)
        else:
            assert (store.remove(key) is not None) == (key in present)
            model = [(k, s) for k, s in model if k != key]
        assert keys(store) == [k for k, _ in model]
        assert store.bytes == sum(s for _, s in model)
