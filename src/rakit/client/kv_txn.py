"""Building a KV txn (API v2 "KV", ``POST /kv/txn``): compares, then the ops of each branch.

>>> from rakit.client.kv_txn import compare, op
>>> client.kv.txn(
...     compare=[compare.value("config:mode") == "blue", compare.version("config:lock") == 0],
...     success=[op.put("config:mode", "green"), op.get("config:mode")],
...     failure=[op.get("config:mode")],
... )

A compare is ``compare.<target>(key) <op> value`` with ``<op>`` one of
``==``, ``!=``, ``<``, ``>``; the targets are ``value``, ``version``,
``mod_revision``, ``create_revision`` and ``exists`` (``compare.exists(k) ==
True``; ``compare.absent(k)`` says the same of an absent key).  An absent key
has revisions and version 0, ``exists`` False, and every ``value`` compare
on it is false.  ``client.kv.compare`` and ``client.kv.op`` are these two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Compare", "Op", "Target", "compare", "op"]

TargetName = Literal["value", "version", "mod_revision", "create_revision", "exists"]
CompareOp = Literal["==", "!=", "<", ">"]


@dataclass(frozen=True, slots=True)
class Compare:
    """One compare of a txn: ``key``'s ``target`` ``op`` ``value``."""

    key: str
    target: TargetName
    op: CompareOp
    value: Any

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "target": self.target, "op": self.op, "value": self.value}


class Target:
    """``compare.value(key)`` and the like: compared with ``==``, ``!=``, ``<``, ``>`` it makes a ``Compare``."""

    __slots__ = ("key", "name")
    __hash__ = None  # type: ignore[assignment]  # == builds a Compare: a Target is no dict key

    def __init__(self, key: str, name: TargetName) -> None:
        self.key = key
        self.name = name

    def __eq__(self, value: object) -> Compare:  # type: ignore[override]
        return Compare(self.key, self.name, "==", value)

    def __ne__(self, value: object) -> Compare:  # type: ignore[override]
        return Compare(self.key, self.name, "!=", value)

    def __lt__(self, value: object) -> Compare:
        return Compare(self.key, self.name, "<", value)

    def __gt__(self, value: object) -> Compare:
        return Compare(self.key, self.name, ">", value)

    def __repr__(self) -> str:
        return f"compare.{self.name}({self.key!r})"


class _Compares:
    """The targets a compare can look at (``compare.value(key) == x``)."""

    @staticmethod
    def value(key: str) -> Target:
        return Target(key, "value")

    @staticmethod
    def version(key: str) -> Target:
        return Target(key, "version")

    @staticmethod
    def mod_revision(key: str) -> Target:
        return Target(key, "mod_revision")

    @staticmethod
    def create_revision(key: str) -> Target:
        return Target(key, "create_revision")

    @staticmethod
    def exists(key: str) -> Target:
        return Target(key, "exists")

    @staticmethod
    def absent(key: str) -> Compare:
        return Compare(key, "exists", "==", False)


@dataclass(frozen=True, slots=True)
class Op:
    """One op of a txn branch: a put (with ``value``), a delete or a get of ``key``."""

    kind: Literal["put", "delete", "get"]
    key: str
    value: Any = None

    def to_json(self) -> dict[str, Any]:
        if self.kind == "put":
            return {"put": {"key": self.key, "value": self.value}}
        return {self.kind: {"key": self.key}}


class _Ops:
    """The ops a txn branch can hold (``op.put(key, value)``, ``op.delete(key)``, ``op.get(key)``)."""

    @staticmethod
    def put(key: str, value: Any) -> Op:
        return Op("put", key, value)

    @staticmethod
    def delete(key: str) -> Op:
        return Op("delete", key)

    @staticmethod
    def get(key: str) -> Op:
        return Op("get", key)


compare = _Compares()
op = _Ops()
