"""The record of a chaos run: every operation and every fault, as JSON lines.

An ``Op`` is one client request as Jepsen records it: when it was sent
(``invoke``), when its answer came or the client gave up (``complete``),
which node it went to, and its outcome ``type``:

- ``"ok"``: it happened (the node answered success);
- ``"fail"``: it certainly did not happen (a definite refusal, e.g. ``409``);
- ``"info"``: unknown — a timeout, a dropped connection, a ``503`` from a
  node that may have passed it on.  It may take effect at any time after
  ``invoke``, even after ``complete``.

A ``Fault`` is one nemesis action: the interval during which it was fully in
place (``start`` once every cut/kill was made, ``end`` when healing began),
the nodes it touched and, for network faults, the ``minority``: nodes that
could not exchange messages with a majority of the cluster (themselves
included) while it lasted.

Times are seconds since the run began (one monotonic clock, in the one
process that runs every client and the nemesis).  The file is JSON lines:
one object per line, ``{"kind": "op", ...}`` or ``{"kind": "fault", ...}``,
plus one ``{"kind": "meta", ...}`` line describing the run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

OpType = Literal["ok", "fail", "info"]
OP_TYPES: tuple[str, ...] = ("ok", "fail", "info")


@dataclass(frozen=True, slots=True)
class Op:
    """One client operation and its outcome (see the module docstring)."""

    workload: str  # "locks" | "queue" | "cache"
    process: int  # the logical client that made it (one request at a time per process)
    f: str  # the operation: acquire/release, push/pop/ack, set/get
    node: str  # the node the request was sent to
    invoke: float
    complete: float
    type: str  # OpType
    args: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None  # the answer's JSON on "ok" (and on "fail" when there is one)
    error: str | None = None  # the error code or the exception's name on "fail"/"info"

    @property
    def latency(self) -> float:
        return self.complete - self.invoke


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault, fully in place from ``start`` until healing began at ``end``."""

    nemesis: str  # partition | isolate-leader | asymmetric | bridge | kill | pause | redis-kill
    start: float
    end: float
    nodes: tuple[str, ...] = ()  # the nodes (or "redis") it acted on
    minority: tuple[str, ...] = ()  # nodes cut off from a majority while it lasted
    detail: dict[str, Any] = field(default_factory=dict)


def op_to_json(op: Op) -> dict[str, Any]:
    return {"kind": "op", **asdict(op)}


def fault_to_json(fault: Fault) -> dict[str, Any]:
    out = asdict(fault)
    out["nodes"] = list(fault.nodes)
    out["minority"] = list(fault.minority)
    return {"kind": "fault", **out}


def op_from_json(obj: dict[str, Any]) -> Op:
    return Op(
        workload=obj["workload"],
        process=int(obj["process"]),
        f=obj["f"],
        node=obj["node"],
        invoke=float(obj["invoke"]),
        complete=float(obj["complete"]),
        type=obj["type"],
        args=dict(obj.get("args") or {}),
        result=obj.get("result"),
        error=obj.get("error"),
    )


def fault_from_json(obj: dict[str, Any]) -> Fault:
    return Fault(
        nemesis=obj["nemesis"],
        start=float(obj["start"]),
        end=float(obj["end"]),
        nodes=tuple(obj.get("nodes") or ()),
        minority=tuple(obj.get("minority") or ()),
        detail=dict(obj.get("detail") or {}),
    )


@dataclass(slots=True)
class History:
    """A whole run: its description, operations (in completion order) and faults."""

    meta: dict[str, Any] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)

    def of(self, workload: str) -> list[Op]:
        return [op for op in self.ops if op.workload == workload]

    def lines(self) -> Iterator[str]:
        yield json.dumps({"kind": "meta", **self.meta}, sort_keys=True)
        for fault in self.faults:
            yield json.dumps(fault_to_json(fault), sort_keys=True)
        for op in self.ops:
            yield json.dumps(op_to_json(op), sort_keys=True)

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(line + "\n" for line in self.lines()))
        return path

    @classmethod
    def parse(cls, lines: Iterable[str]) -> History:
        history = cls()
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            obj = json.loads(line)
            kind = obj.pop("kind", None)
            if kind == "op":
                history.ops.append(op_from_json(obj))
            elif kind == "fault":
                history.faults.append(fault_from_json(obj))
            elif kind == "meta":
                history.meta.update(obj)
            else:
                raise ValueError(f"line {number}: unknown record kind {kind!r}")
        return history

    @classmethod
    def read(cls, path: str | Path) -> History:
        with open(path) as fh:
            return cls.parse(fh)


@dataclass(slots=True)
class Verdict:
    """What a checker found: ``violations`` (each a one-line explanation) and figures."""

    workload: str
    violations: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not self.violations
