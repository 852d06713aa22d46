"""The CAS-counter check of the ``kv-counters`` workload: no increment lost, none invented.

Rules:

1. Only increments write a counter key: each is a CAS from the value read
   to that value + 1 (or from absent to 1), so the value only ever grows by
   one per increment that took effect, and the final value is their number.
2. An ``ok`` increment took effect; a ``fail`` one (refused, or its
   compare was false) did not; an ``info`` one may or may not have.
3. So the final value (the last ``ok`` read marked ``final``, made after
   healing; an absent key is 0) must lie in ``[ok, ok + info]`` — equal to
   ``ok`` when no increment is unknown.  A counter never read at the end is
   a violation too: the cluster did not serve it after healing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rakit.chaos.checkers._common import Findings
from rakit.chaos.history import Op, Verdict


def final_value(op: Op) -> Any:
    result = op.result if isinstance(op.result, dict) else {}
    return result.get("value") if result.get("found") else 0


def check_kv_counters(ops: Sequence[Op]) -> Verdict:
    """One verdict (workload ``kv-counters``) on the counter ops (see the rules above)."""
    keys = sorted({str(op.args.get("key")) for op in ops})
    findings = Findings()
    stats: dict[str, Any] = {"counters": len(keys), "increments_ok": 0, "increments_unknown": 0}
    for key in keys:
        mine = [op for op in ops if op.args.get("key") == key]
        ok = sum(1 for op in mine if op.f == "cas" and op.type == "ok")
        unknown = sum(1 for op in mine if op.f == "cas" and op.type == "info")
        finals = sorted(
            (op for op in mine if op.f == "get" and op.args.get("final") and op.type == "ok"),
            key=lambda op: op.complete,
        )
        stats["increments_ok"] += ok
        stats["increments_unknown"] += unknown
        stats[f"{key}_ok"] = ok
        stats[f"{key}_unknown"] = unknown
        if not finals:
            findings.add("unread", f"counter {key}: no linearizable read after healing ({ok} ok, {unknown} unknown)")
            continue
        value = final_value(finals[-1])
        stats[f"{key}_final"] = value
        if not isinstance(value, int) or isinstance(value, bool):
            findings.add("corrupt", f"counter {key}: final value {value!r} is not an integer")
        elif value < ok:
            findings.add("lost", f"counter {key}: final value {value} < {ok} ok increments ({ok - value} lost)")
        elif value > ok + unknown:
            findings.add(
                "phantom",
                f"counter {key}: final value {value} > {ok} ok + {unknown} unknown increments "
                f"({value - ok - unknown} from nowhere)",
            )
    return Verdict("kv-counters", findings.lines(), stats)
