"""JSON comparison of KV values (statemachines/kv/values.py): typed the way JSON is."""

from __future__ import annotations

import pytest

from rakit.statemachines.holds import Refused
from rakit.statemachines.kv import Compare, KvIncr, KvPut, KvStore, KvTxn, TxnGet
from rakit.statemachines.kv.values import MAX_DEPTH, as_integer, compare


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (b"1", b"1.0"),
        (b"1", b" 1 "),
        (b'{"a": 1, "b": [true, null]}', b'{"b": [true, null], "a": 1.0}'),
        (b'"x"', b'"x"'),
        (b"null", b"null"),
        (b"[1, 2]", b"[1.0, 2]"),
        (b"false", b"false"),
    ],
)
def test_equal_json_values_compare_equal(a: bytes, b: bytes) -> None:
    assert compare(a, "==", b) and compare(b, "==", a)
    assert not compare(a, "!=", b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (b"true", b"1"),
        (b"false", b"0"),
        (b"null", b"0"),
        (b"null", b"false"),
        (b'"1"', b"1"),
        (b"[1, 2]", b"[2, 1]"),
        (b'{"a": 1}', b'{"a": true}'),
        (b'{"a": 1}', b'{"a": 1, "b": 2}'),
        (b"[]", b"{}"),
        (b'""', b"null"),
        (b"[true]", b"[1]"),
    ],
)
def test_different_json_values_compare_unequal(a: bytes, b: bytes) -> None:
    assert not compare(a, "==", b) and not compare(b, "==", a)
    assert compare(a, "!=", b)


def test_order_on_two_numbers() -> None:
    assert compare(b"1", "<", b"2") and compare(b"2.5", ">", b"2")
    assert compare(b"-1", "<", b"0.5")
    assert not compare(b"2", "<", b"2.0") and not compare(b"2", ">", b"2.0")


def test_order_on_two_strings() -> None:
    assert compare(b'"a"', "<", b'"b"') and compare(b'"b"', ">", b'"a"')
    assert compare(b'"B"', "<", b'"a"')  # code point order
    assert not compare(b'"a"', "<", b'"a"')


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (b"1", b'"2"'),
        (b'"1"', b"2"),
        (b"true", b"2"),
        (b"0", b"true"),
        (b"false", b"true"),
        (b"null", b"1"),
        (b"[1]", b"[2]"),
        (b'{"a": 1}', b'{"a": 2}'),
    ],
)
def test_order_on_anything_else_is_false_both_ways(a: bytes, b: bytes) -> None:
    assert not compare(a, "<", b) and not compare(a, ">", b)
    assert not compare(b, "<", a) and not compare(b, ">", a)


def test_as_integer_takes_integers_only() -> None:
    assert as_integer(b"7") == 7 and as_integer(b"-3") == -3
    assert as_integer(b"123456789012345678901234567890") == 123456789012345678901234567890
    for data in (b"true", b"false", b"1.5", b"1.0", b'"1"', b"null", b"[1]", b"not json", b""):
        assert as_integer(data) is None, data


def test_a_value_that_is_not_json_compares_false() -> None:
    for op in ("==", "!=", "<", ">"):
        assert not compare(b"not json", op, b"1") and not compare(b"1", op, b"{")


def _nested(depth: int, inner: bytes = b"1") -> bytes:
    return b'[{"a": ' * (depth // 2) + b"[" * (depth % 2) + inner + b"]" * (depth % 2) + b"}]" * (depth // 2)


def test_a_value_nested_too_deeply_compares_false_and_never_raises() -> None:
    """Deep values recursed out of the apply (RecursionError on every replica); beyond MAX_DEPTH they are not JSON."""
    deep = b"[" * 600 + b"]" * 600  # the HTTP layer takes it (it refuses ~1000 deep)
    for op in ("==", "!=", "<", ">"):
        assert not compare(deep, op, deep) and not compare(b"1", op, deep) and not compare(deep, op, b"1")
    assert as_integer(deep) is None
    assert compare(_nested(MAX_DEPTH), "==", _nested(MAX_DEPTH))
    assert not compare(_nested(MAX_DEPTH + 1), "==", _nested(MAX_DEPTH + 1))
    brackets_in_strings = b'["' + b"[" * 500 + b'", "\\"[[["]'  # strings hold no depth
    assert compare(brackets_in_strings, "==", brackets_in_strings)
    open_string = b"[" * 101 + b'"' + b'\\"' * 200_000  # not JSON; scanning it from each quote took minutes
    assert not compare(open_string, "==", open_string) and as_integer(open_string) is None


def test_a_txn_on_a_deep_value_applies() -> None:
    store, deep = KvStore(), b"[" * 600 + b"]" * 600
    store.apply(1, KvPut("k", deep))
    assert store.apply(2, KvTxn([Compare("k", "value", "==", b"[]")], [], [TxnGet("k")])).succeeded is False
    assert isinstance(store.apply(3, KvTxn([Compare("k", "value", "==", deep)], [], [])), Refused)
    assert store.apply(4, KvIncr("k", 1)) == Refused("not_integer", "the value of 'k' is not an integer")
    assert store.revision == 1
