"""Comparing JSON values (the txn's ``value`` compares, ``incr``), typed the way JSON is.

``true`` is not ``1``, ``1`` equals ``1.0`` (one JSON number), objects compare
by their members whatever their order.  ``<``/``>`` are defined for two
numbers or two strings; anything else compares false.
"""

from __future__ import annotations

from typing import Any

import msgspec


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


def decode(data: bytes) -> Any:
    return msgspec.json.decode(data)


def compare(actual: bytes, op: str, expected: bytes) -> bool:
    a, b = decode(actual), decode(expected)
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
