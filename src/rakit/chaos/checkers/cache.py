"""The cache checker: no stale or phantom read, one version per write, convergence.

Input: the ``cache`` ops — ``set`` (args ``key``, ``value``; values are
unique per write; an ok answer carries ``version``) and ``get`` (args
``key``, and ``final`` for the reads made after every fault healed; an ok
answer is a hit ``{"key", "value", "version", "node"}`` or a miss
``{"found": false}``, and a miss is always allowed).  An op is ``ok``
(happened between invoke and complete), ``fail`` (never happened) or
``info`` (may take effect at any time after invoke, even after complete).
Each rule only flags what no such history could explain.

1. **No stale or phantom read.**  An ok hit ``R`` of key ``k`` returning
   value ``v`` must come from a set of ``k`` that wrote ``v``: if there is
   none, or only failed ones, or ``R`` completed before any of them was
   invoked, the value is a phantom.  Otherwise, when every set that wrote
   ``v`` is ok, let ``Wv.complete`` be the latest of their completes, and let
   ``M`` be the latest invoke of an ok set ``W2`` of ``k`` that completed
   before ``R`` was invoked.  If ``Wv.complete < M``, the write of ``v``
   finished before ``W2`` began, so ``W2`` is newer in real time, and ``W2``
   was acknowledged before ``R`` began: the API promises no node answers the
   older value then.  A set of ``v`` that is info may have landed at any
   time, so such reads are never stale.  Per key the ok sets are sorted by
   complete with prefix maxima of invoke, and each read bisects its invoke:
   O(n log n).
2. **One version per write.**  A hit returning ``v`` must carry the version
   that ``v``'s ok set answered (when there is one).
3. **Convergence.**  The ``final`` hits of a key are made after healing, on
   every node, so they must agree.  Only a write landing during the final
   reads can make them differ, and after any number of such landings every
   read returns either the value settled before them or a landed one.  A
   value can land then only if a set of it is info or completed after the
   first final read of the key began.  So two final hits returning different
   versions, neither of which could have landed then, are reported.

Stats: ``<f>_<type>`` counts plus ``get_hit`` and ``get_miss`` (``get_ok``
is their sum), ``keys``, ``final_reads``, ``stale_reads``,
``phantom_reads``, ``version_mismatches`` and ``diverged_keys``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rakit.chaos.checkers._common import (
    INF,
    Findings,
    count_types,
    fmt_op,
    freeze,
    result_of,
)
from rakit.chaos.history import Fault, Op, Verdict

STALE = "stale read"
PHANTOM = "phantom read"
VERSION = "version mismatch"
DIVERGED = "diverged"


def is_hit(op: Op) -> bool:
    """An ok get that returned a value."""
    return op.f == "get" and op.type == "ok" and "value" in result_of(op) and result_of(op).get("found") is not False


def _key(op: Op) -> str | None:
    key = op.args.get("key", result_of(op).get("key"))
    return None if key is None else str(key)


def _version(op: Op) -> Hashable:
    version = result_of(op).get("version")
    return None if version is None else freeze(version)


def describe(op: Op) -> str:
    if op.f == "set":
        return fmt_op(op, key=_key(op), value=op.args.get("value"), version=result_of(op).get("version"))
    result = result_of(op)
    final = op.args.get("final")
    return fmt_op(op, key=_key(op), value=result.get("value"), version=result.get("version"), final=final)


@dataclass(slots=True)
class Key:
    """Everything the history says about one key."""

    key: str
    writes: dict[Hashable, list[Op]] = field(default_factory=lambda: defaultdict(list))  # value -> its sets
    hits: list[Op] = field(default_factory=list)
    _completes: list[float] = field(default_factory=list)
    _latest_invoke: list[tuple[float, Op | None]] = field(default_factory=list)

    def index(self) -> None:
        """Sort the ok sets by complete, with prefix maxima of invoke (for ``newest_before``)."""
        ok_sets = sorted((w for ws in self.writes.values() for w in ws if w.type == "ok"), key=lambda w: w.complete)
        self._completes = [w.complete for w in ok_sets]
        self._latest_invoke = [(-INF, None)]
        for w in ok_sets:
            self._latest_invoke.append(max(self._latest_invoke[-1], (w.invoke, w), key=lambda pair: pair[0]))

    def newest_before(self, t: float) -> tuple[float, Op | None]:
        """The latest invoke (and its set) among ok sets that completed before ``t``."""
        return self._latest_invoke[bisect_left(self._completes, t)]

    def landing_late(self, value: Hashable, first_final: float) -> bool:
        """Whether a set of ``value`` may have taken effect after ``first_final``."""
        writes = self.writes.get(value, ())
        return any(w.type == "info" or (w.type == "ok" and w.complete > first_final) for w in writes)


def check_read(k: Key, read: Op, findings: Findings) -> None:
    """Rules 1 and 2 on one ok hit."""
    value = freeze(result_of(read)["value"])
    writes = k.writes.get(value, [])
    live = [w for w in writes if w.type != "fail"]
    if not writes:
        findings.add(PHANTOM, f"{describe(read)} returned a value that no set of the key wrote")
        return
    if not live:
        findings.add(PHANTOM, f"{describe(read)} returned the value of a failed set {describe(writes[0])}")
        return
    first = min(live, key=lambda w: w.invoke)
    if read.complete < first.invoke:
        findings.add(PHANTOM, f"{describe(read)} returned a value before its set began {describe(first)}")
        return
    ok_writes = [w for w in live if w.type == "ok"]
    versions = {_version(w) for w in ok_writes} - {None}
    if versions and _version(read) is not None and _version(read) not in versions:
        findings.add(VERSION, f"{describe(read)} but the set of that value answered {describe(ok_writes[0])}")
    if len(ok_writes) < len(live):
        return  # an info set of this value may have landed at any time
    written = max(ok_writes, key=lambda w: w.complete)
    newest, newer = k.newest_before(read.invoke)
    if written.complete < newest and newer is not None:
        findings.add(
            STALE,
            f"{describe(read)} returned the value of {describe(written)}, overwritten by {describe(newer)} "
            "which began after it and completed before the read began",
        )


def check_convergence(k: Key, findings: Findings) -> None:
    """Rule 3 on one key's final hits."""
    finals = [r for r in k.hits if r.args.get("final")]
    if not finals:
        return
    first_final = min(r.invoke for r in finals)
    settled: dict[Hashable, Op] = {}
    for read in finals:
        value = freeze(result_of(read)["value"])
        if not k.landing_late(value, first_final):
            version = _version(read)
            settled.setdefault(value if version is None else version, read)
    if len(settled) > 1:
        reads = "; ".join(describe(r) for r in settled.values())
        findings.add(DIVERGED, f"key {k.key}: final reads disagree after healing: {reads}")


def check_cache(ops: Sequence[Op], faults: Sequence[Fault] = ()) -> Verdict:
    """Check a cache history: no stale or phantom read, one version per write, convergence.

    ``faults`` are not needed by these rules (accepted for a uniform signature).
    """
    findings = Findings()
    keys: dict[str, Key] = {}
    misses = 0
    for op in ops:
        name = _key(op)
        if name is None or op.f not in ("set", "get"):
            continue
        k = keys.setdefault(name, Key(name))
        if op.f == "set":
            k.writes[freeze(op.args.get("value"))].append(op)
        elif is_hit(op):
            k.hits.append(op)
        elif op.type == "ok":
            misses += 1
    for k in keys.values():
        k.index()
        for read in k.hits:
            check_read(k, read, findings)
        check_convergence(k, findings)

    stats: dict[str, Any] = count_types(ops, ("set", "get"))
    stats.update(
        get_hit=sum(len(k.hits) for k in keys.values()),
        get_miss=misses,
        keys=len(keys),
        final_reads=sum(1 for op in ops if op.f == "get" and op.type == "ok" and op.args.get("final")),
        stale_reads=findings.counts[STALE],
        phantom_reads=findings.counts[PHANTOM],
        version_mismatches=findings.counts[VERSION],
        diverged_keys=findings.counts[DIVERGED],
    )
    return Verdict("cache", findings.lines(), stats)
