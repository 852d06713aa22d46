"""The KV checker's input types and its model: what each operation does to the keys it touches.

The types are documented in ``rakit.chaos.checkers.kv`` (the public module).
Model rules:

1. **State.**  The model of a group of keys is a tuple of *cells*, one per key
   in sorted key order; a cell is ``(value, mod_revision)`` where ``value`` is
   the frozen JSON value or ``ABSENT``, and ``mod_revision`` the revision of
   the last write, ``0`` for a key never written, or ``None`` when unknown (it
   was written by an op whose answer was not seen).  Every key starts absent
   with revision 0.
2. **Revisions.**  Revisions are one cluster-wide counter, so along the
   linearization the writes of one key carry growing revisions: a write whose
   answered revision is not greater than the cell's known revision is not a
   legal step.  A read of a cell whose revision is unknown *learns* the
   revision it returned.
3. **Steps.**  ``step(state)`` returns every state the op may leave (none: the
   op is not legal here).  Only unknown conditions branch: an ``info`` cas or
   txn whose compare cannot be decided (an unknown revision, a ``version``
   target) may either apply or not.  A ``get`` inside a txn sees the txn's
   earlier ops.  An ``incr`` of an absent key starts from 0 (as the server
   does); of a non-integer value it changes nothing.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

ABSENT: Hashable = ("<absent>",)  # freeze() never returns a tuple, so no JSON value equals it
NOTHING: Any = ("<nothing>",)  # "no expected value given" (cas by revision)

Cell = tuple[Hashable, int | None]
State = tuple[Cell, ...]
Step = Callable[[State], tuple[State, ...]]

INITIAL: Cell = (ABSENT, 0)
OUTCOMES = ("ok", "fail", "info")


def freeze(value: Any) -> Hashable:
    """A hashable stand-in for a JSON value: numbers and strings as they are, the rest tagged."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, str | int | float) or value is None:
        return value
    return ("json", json.dumps(value, sort_keys=True, default=repr))


def thaw(value: Hashable) -> Any:
    """The JSON value back (for explanations)."""
    if value == ABSENT:
        return "<absent>"
    if isinstance(value, tuple) and len(value) == 2 and value[0] in ("bool", "json"):
        return value[1] if value[0] == "bool" else json.loads(value[1])
    return value


@dataclass(frozen=True, slots=True)
class Read:
    """What a get saw: whether the key existed, its value and ``mod_revision`` (None: not answered)."""

    found: bool
    value: Any = None
    mod_revision: int | None = None


@dataclass(frozen=True, slots=True)
class Compare:
    """One txn compare: ``target`` is value | mod_revision | exists | version, ``op`` is == != < >."""

    key: str
    target: str
    op: str
    value: Any


@dataclass(frozen=True, slots=True)
class TxnStep:
    """One txn op: ``kind`` is put | delete | get."""

    kind: str
    key: str
    value: Any = None


@dataclass(frozen=True, slots=True)
class KvOp:
    """One KV client operation and its outcome (see ``rakit.chaos.checkers.kv``)."""

    process: int
    f: str  # put | get | cas | delete | incr | txn
    invoke: float
    complete: float | None  # ignored (open forever) when outcome is "info"
    outcome: str  # ok | fail | info
    key: str = ""  # every op but txn
    value: Any = None  # put, cas: the value written
    delta: int = 0  # incr
    expect_revision: int | None = None  # cas: if_revision (0 = the key must be absent)
    expect_value: Any = NOTHING  # cas: the value the key must hold
    compares: tuple[Compare, ...] = ()  # txn
    success: tuple[TxnStep, ...] = ()  # txn
    failure: tuple[TxnStep, ...] = ()  # txn
    # the answer, on ok:
    read: Read | None = None  # get: what it saw; incr: the new value (found=True)
    revision: int | None = None  # put, cas, incr, delete, txn: the revision its write made
    succeeded: bool | None = None  # cas, txn: whether the condition held
    deleted: int | None = None  # delete: how many keys it removed (0 or 1)
    reads: tuple[Read | None, ...] = ()  # txn: per op of the branch taken (a get's Read, else None)
    node: str = ""
    note: dict[str, Any] = field(default_factory=dict)  # free-form, shown in explanations

    def keys(self) -> tuple[str, ...]:
        """Every key the op may touch."""
        if self.f != "txn":
            return (self.key,)
        names = {c.key for c in self.compares} | {s.key for s in (*self.success, *self.failure)}
        return tuple(sorted(names))

    def writes(self) -> bool:
        """Whether the op may change some key."""
        if self.f == "get":
            return False
        if self.f == "txn":
            return any(s.kind != "get" for s in (*self.success, *self.failure))
        return True


# --- compares ----------------------------------------------------------------------------------------------

ORDER = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt}


def _cmp(left: Any, op: str, right: Any) -> bool | None:
    if left is None or right is None:
        return None
    fn = ORDER.get(op)
    if fn is None:
        return None
    if op in ("<", ">") and not (
        (isinstance(left, int | float) and isinstance(right, int | float))
        or (isinstance(left, str) and isinstance(right, str))
    ):
        return None
    try:
        return bool(fn(left, right))
    except TypeError:
        return None


def evaluate(cell: Cell, compare: Compare) -> bool | None:
    """True, False, or None when the state cannot tell (unknown revision, untracked target)."""
    value, rev = cell
    if compare.target == "exists":
        return _cmp(value != ABSENT, compare.op, bool(compare.value))
    if compare.target == "mod_revision":
        if value == ABSENT:
            return _cmp(0, compare.op, compare.value)
        return _cmp(rev, compare.op, compare.value)
    if compare.target == "value":
        if value == ABSENT:
            return False
        if compare.op in ("==", "!="):
            return (value == freeze(compare.value)) == (compare.op == "==")
        return _cmp(thaw(value), compare.op, compare.value)
    return None  # version, create_revision: not tracked


def holds_all(results: Sequence[bool | None]) -> bool | None:
    if any(r is False for r in results):
        return False
    return True if all(r is True for r in results) else None


# --- steps -------------------------------------------------------------------------------------------------


def _write(cell: Cell, value: Hashable, revision: int | None) -> Cell | None:
    """The cell after a write answered with ``revision`` (None if that revision goes back: rule 2)."""
    if revision is not None and cell[1] is not None and revision <= cell[1]:
        return None
    return (value, revision)


def _see(cell: Cell, read: Read) -> Cell | None:
    """The cell after a read that saw ``read`` (None if it cannot have)."""
    value, rev = cell
    if not read.found:
        return cell if value == ABSENT else None
    if value != freeze(read.value):
        return None
    if read.mod_revision is None or rev == read.mod_revision:
        return cell
    return (value, read.mod_revision) if rev is None else None


def _replace(state: State, i: int, cell: Cell) -> State:
    return (*state[:i], cell, *state[i + 1 :])


def _cas_holds(cell: Cell, op: KvOp) -> bool | None:
    if op.expect_value is not NOTHING:
        return cell[0] != ABSENT and cell[0] == freeze(op.expect_value)
    expect = op.expect_revision
    if expect is None or expect == 0:
        return cell[0] == ABSENT
    if cell[0] == ABSENT:
        return False
    return None if cell[1] is None else cell[1] == expect


def _branch(state: State, index: dict[str, int], steps: Sequence[TxnStep], op: KvOp) -> State | None:
    """The state after a txn branch (gets checked against ``op.reads`` when ok)."""
    reads = op.reads if op.outcome == "ok" else ()
    revision = op.revision if op.outcome == "ok" else None
    before = state
    for n, s in enumerate(steps):
        i = index[s.key]
        if s.kind == "get":
            seen = reads[n] if n < len(reads) else None
            if seen is not None:
                cell = _see(state[i], seen)
                if cell is None:
                    return None
                state = _replace(state, i, cell)
            continue
        new = freeze(s.value) if s.kind == "put" else ABSENT
        if s.kind == "delete" and state[i][0] == ABSENT:
            continue
        cell = _write(before[i], new, revision)
        if cell is None:
            return None
        state = _replace(state, i, cell)
    return state


def compile_step(op: KvOp, index: dict[str, int]) -> Step:
    """The model step of one ok or info op over a group whose key positions are ``index``."""
    ok = op.outcome == "ok"
    revision = op.revision if ok else None

    if op.f == "get":
        i, read = index[op.key], op.read

        def get(state: State) -> tuple[State, ...]:
            if read is None:
                return (state,)
            cell = _see(state[i], read)
            return () if cell is None else (_replace(state, i, cell),)

        return get

    if op.f == "put":
        i, value = index[op.key], freeze(op.value)

        def put(state: State) -> tuple[State, ...]:
            cell = _write(state[i], value, revision)
            return () if cell is None else (_replace(state, i, cell),)

        return put

    if op.f == "cas":
        i, value = index[op.key], freeze(op.value)

        def cas(state: State) -> tuple[State, ...]:
            holds = _cas_holds(state[i], op)
            out: list[State] = []
            if holds is not False and (not ok or op.succeeded is not False):
                cell = _write(state[i], value, revision)
                if cell is not None:
                    out.append(_replace(state, i, cell))
            if holds is not True and (not ok or op.succeeded is False):
                out.append(state)
            return tuple(out)

        return cas

    if op.f == "delete":
        i = index[op.key]

        def delete(state: State) -> tuple[State, ...]:
            present = state[i][0] != ABSENT
            if ok and op.deleted is not None and (op.deleted > 0) != present:
                return ()
            if not present:
                return (state,)
            cell = _write(state[i], ABSENT, revision)
            return () if cell is None else (_replace(state, i, cell),)

        return delete

    if op.f == "incr":
        i = index[op.key]

        def incr(state: State) -> tuple[State, ...]:
            value = state[i][0]
            current = 0 if value == ABSENT else value
            if not isinstance(current, int) or isinstance(current, bool):
                return (state,) if not ok or op.read is None or freeze(op.read.value) == value else ()
            new = current + op.delta
            if ok and op.read is not None and op.read.found and freeze(op.read.value) != new:
                return ()
            cell = _write(state[i], new, revision)
            return () if cell is None else (_replace(state, i, cell),)

        return incr

    if op.f == "txn":

        def txn(state: State) -> tuple[State, ...]:
            holds = holds_all([evaluate(state[index[c.key]], c) for c in op.compares])
            out: list[State] = []
            for branch, taken in ((op.success, True), (op.failure, False)):
                if holds is (not taken) or (ok and op.succeeded is not None and op.succeeded is not taken):
                    continue
                after = _branch(state, index, branch, op)
                if after is not None and after not in out:
                    out.append(after)
            return tuple(out)

        return txn

    raise ValueError(f"unknown KV op {op.f!r}")


def describe(op: KvOp) -> str:
    """One op as ``p3 cas ok @n2 [1.250, 1.300] k=a expect=4 -> 5 succeeded=True rev=17``."""
    span = f"[{op.invoke:.3f}, {'...' if op.outcome == 'info' or op.complete is None else f'{op.complete:.3f}'}]"
    head = f"p{op.process} {op.f} {op.outcome}{' @' + op.node if op.node else ''} {span}"
    parts: list[str] = []
    if op.f != "txn":
        parts.append(f"k={op.key}")
    if op.f in ("put", "cas"):
        if op.expect_value is not NOTHING:
            parts.append(f"expect={op.expect_value!r}")
        elif op.f == "cas":
            parts.append(f"if_revision={op.expect_revision}")
        parts.append(f"-> {op.value!r}")
    if op.f == "incr":
        parts.append(f"delta={op.delta}")
    if op.f == "txn":
        cmp = " && ".join(f"{c.key}.{c.target}{c.op}{c.value!r}" for c in op.compares) or "true"
        then = ", ".join(_fmt_step(s) for s in op.success)
        other = ", ".join(_fmt_step(s) for s in op.failure)
        parts.append(f"if {cmp} then [{then}] else [{other}]")
    if op.outcome == "ok":
        if op.read is not None:
            read = op.read
            parts.append(f"=> {read.value!r} (mod_revision={read.mod_revision})" if read.found else "=> not found")
        if op.succeeded is not None:
            parts.append(f"succeeded={op.succeeded}")
        if op.deleted is not None:
            parts.append(f"deleted={op.deleted}")
        if op.reads:
            parts.append("reads=[" + ", ".join("-" if r is None else _fmt_read(r) for r in op.reads) + "]")
        if op.revision is not None:
            parts.append(f"rev={op.revision}")
    parts.extend(f"{name}={value}" for name, value in op.note.items())
    return f"{head} {' '.join(parts)}"


def _fmt_step(s: TxnStep) -> str:
    return f"put {s.key}={s.value!r}" if s.kind == "put" else f"{s.kind} {s.key}"


def _fmt_read(r: Read) -> str:
    return f"{r.value!r}@{r.mod_revision}" if r.found else "absent"


def fmt_state(keys: Sequence[str], state: State) -> str:
    """``a=5@17 b=<absent>`` (``@?``: revision unknown)."""
    cells = []
    for key, (value, rev) in zip(keys, state, strict=True):
        shown = "<absent>" if value == ABSENT else repr(thaw(value))
        cells.append(f"{key}={shown}@{'?' if rev is None else rev}")
    return " ".join(cells)
