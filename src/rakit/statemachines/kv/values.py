"""Comparing JSON values (the txn's ``value`` compares, ``incr``), typed the way JSON is.

``true`` is not ``1``, ``1`` equals ``1.0`` (one JSON number), objects compare
by their members whatever their order.  ``<``/``>`` are defined for two
numbers or two strings; anything else compares false, and so does a value
that is not JSON at all (the HTTP layer sends JSON only; a store restored or
fed otherwise must still apply without raising), and one nested deeper than
``MAX_DEPTH`` arrays or objects: decoding and comparing recurse, and the
HTTP layer takes values ~1000 deep, which would raise ``RecursionError`` out
of an apply -- on every replica, at a depth that depends on each one's stack.
The bound is counted on the bytes, so every replica decides alike.
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Any

import msgspec

MAX_DEPTH = 100
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_STRINGS_CLOSED = re.compile(rb'(?:"(?:[^"\\]|\\.)*"|[^"])*', re.DOTALL)  # one pass: the end, if strings close
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [1 if chr(b) in "[{" else -1 for b in range(256)]  # read for brackets only


def _tagged(value: Any) -> Any:
    """A form where Python's ``==`` is JSON's: bools apart from numbers, dict order ignored."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    if value is None:
        return ("z",)
    if isinstance(value, list):
        return ("l", tuple(_tagged(v) for v in value))
    return ("o", frozenset((k, _tagged(v)) for k, v in value.items()))


def _too_deep(data: bytes) -> bool:
    """Whether ``data`` opens more than ``MAX_DEPTH`` arrays or objects at once (brackets in strings aside).

    Linear time: a string left open (no JSON then) counts as too deep before ``_STRING`` would rescan the
    rest from each quote in it.
    """
    if len(data.translate(None, _NOT_BRACKET)) <= MAX_DEPTH:
        return False
    closed = _STRINGS_CLOSED.match(data)
    if closed is None or closed.end() != len(data):
        return True
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKET)
    return len(brackets) > MAX_DEPTH and max(accumulate(map(_STEP.__getitem__, brackets))) > MAX_DEPTH


def decode(data: bytes) -> Any:
    """The JSON value of ``data``; ``msgspec.DecodeError`` if it is not JSON or is nested too deeply."""
    if _too_deep(data):
        raise msgspec.DecodeError(f"not JSON, or nested deeper than {MAX_DEPTH} arrays or objects")
    return msgspec.json.decode(data)


def compare(actual: bytes, op: str, expected: bytes) -> bool:
    """Whether ``actual op expected``; a value that is not JSON compares false (an apply never raises)."""
    try:
        a, b = decode(actual), decode(expected)
    except msgspec.DecodeError:
        return False
    if op in ("==", "!="):
        return bool(_tagged(a) == _tagged(b)) == (op == "==")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b))
    strings = isinstance(a, str) and isinstance(b, str)
    if not (numbers or strings):
        return False
    return bool(a < b) if op == "<" else bool(a > b)


def as_integer(data: bytes) -> int | None:
    """The integer a value holds (``incr``), or None: ``true`` and ``1.5`` are not integers."""
    try:
        value = decode(data)
    except msgspec.DecodeError:
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
