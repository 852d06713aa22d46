"""The recorded ops of the KV workloads (``workloads_kv``) as the linearizability checker's ``KvOp``s.

Rules of the translation (each sound for the outcomes ``workloads_kv`` records):

1. ``ok`` stays ``ok`` and ``info`` stays ``info`` (open forever: a write may
   take effect at any time after its invoke, or never).
2. A ``fail`` is dropped by the checker (it never took effect), except a CAS
   whose condition the server evaluated and found false (a txn answered
   ``succeeded: false``, a put answered ``409 revision_mismatch``): that is
   an ``ok`` CAS with ``succeeded=False``, since the linearizable KV then
   held another value (or revision) at some instant of the request.
3. A get's answer is a ``Read`` of its value and ``mod_revision``
   (``found: false``: the key was absent); a write's answer gives the
   revision it made (a txn's put result, else the answer's ``revision``).
4. A value CAS expecting ``{"absent": true}`` is a CAS by revision 0 (the
   key must be absent), which is what its ``exists == false`` compare says.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rakit.chaos.checkers._kv_model import NOTHING, KvOp, Read
from rakit.chaos.checkers.kv import check_kv
from rakit.chaos.history import Op, Verdict

KV_OP_WORKLOADS = ("kv", "kv-counters")


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def write_revision(result: Any) -> int | None:
    """The revision a put or txn write made (a txn's first put result, else the answer's ``revision``)."""
    if not isinstance(result, dict):
        return None
    results = result.get("results")
    if isinstance(results, list) and results and isinstance(results[0], dict):
        found = _int_or_none(results[0].get("revision"))
        if found is not None:
            return found
    return _int_or_none(result.get("revision"))


def _condition_false(op: Op) -> bool:
    """Rule 2: a refused CAS whose answer says its condition was evaluated false."""
    result = op.result if isinstance(op.result, dict) else {}
    if "expect" in op.args:
        return result.get("succeeded") is False
    return result.get("error") == "revision_mismatch"


def to_kv_op(op: Op) -> KvOp:
    """One recorded op of the KV workloads as a ``KvOp`` (see the rules above)."""
    result = op.result if isinstance(op.result, dict) else {}
    key = str(op.args.get("key", ""))
    outcome = op.type
    refused = op.f == "cas" and op.type == "fail" and _condition_false(op)
    if refused:
        outcome = "ok"
    base: dict[str, Any] = {
        "process": op.process,
        "f": op.f,
        "invoke": op.invoke,
        "complete": op.complete,
        "outcome": outcome,
        "key": key,
        "node": op.node,
    }
    if op.args.get("final"):
        base["note"] = {"final": True}
    ok = outcome == "ok"
    if op.f == "get":
        read = None
        if ok:
            found = bool(result.get("found"))
            read = Read(found, result.get("value") if found else None, _int_or_none(result.get("mod_revision")))
        return KvOp(**base, read=read)
    if op.f == "put":
        return KvOp(**base, value=op.args.get("value"), revision=write_revision(result) if ok else None)
    if op.f == "delete":
        deleted = _int_or_none(result.get("deleted")) if ok else None
        return KvOp(**base, deleted=deleted, revision=write_revision(result) if ok else None)
    if op.f == "cas":
        expect = op.args.get("expect")
        expect_value: Any = NOTHING
        expect_revision: int | None = _int_or_none(op.args.get("if_revision"))
        if isinstance(expect, dict):
            if expect.get("absent"):
                expect_revision = 0
            else:
                expect_value = expect.get("value")
        return KvOp(
            **base,
            value=op.args.get("value"),
            expect_value=expect_value,
            expect_revision=expect_revision,
            succeeded=(not refused) if ok else None,
            revision=write_revision(result) if ok and not refused else None,
        )
    raise ValueError(f"unknown KV op {op.f!r}")


def check_kv_history(ops: Sequence[Op], max_steps: int = 5_000_000) -> Verdict:
    """The linearizability verdict (workload ``kv``) on the ops of both KV workloads."""
    verdict = check_kv([to_kv_op(op) for op in ops], max_steps=max_steps)
    verdict.stats["recorded_ops"] = len(ops)
    return verdict
