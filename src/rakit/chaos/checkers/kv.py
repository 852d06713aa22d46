"""The KV linearizability checker: Wing–Gong / Lowe search per group of keys (WORK IN PROGRESS).

Input: a list of ``KvOp`` (see ``_kv_model``): ``ok`` ops took effect between
``invoke`` and ``complete``; ``fail`` ops never did (dropped); ``info`` ops may
take effect at any time after ``invoke``, or never (open forever).  Keys are
grouped by the txns that touch several of them (union-find); each group is
checked alone (linearizability is local) by a depth-first search over
linearization points with Lowe's cache of (linearized ops, state), where a
configuration with fewer info ops linearized dominates one with more.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rakit.chaos.checkers._kv_model import INITIAL, KvOp, State, compile_step, describe, fmt_state
from rakit.chaos.history import Verdict

__all__ = ["KvOp", "check_kv", "search"]


def search(ops: Sequence[KvOp], keys: Sequence[str], max_steps: int = 5_000_000) -> tuple[bool | None, str]:
    """(True | False | None=undecided, explanation) for the ops of one group of keys."""
    index = {k: i for i, k in enumerate(keys)}
    live = [op for op in ops if op.outcome == "ok" or (op.outcome == "info" and op.writes())]
    steps = [compile_step(op, index) for op in live]
    entries: list[tuple[float, int, int]] = []  # (time, 0=call/1=return, op)
    for n, op in enumerate(live):
        entries.append((op.invoke, 0, n))
        if op.outcome == "ok":
            entries.append((float(op.complete or 0.0), 1, n))
    entries.sort()
    m = len(entries)
    head = m  # sentinel at index m; node m+1 = end
    nxt = [i + 1 for i in range(m)] + [0 if m else m + 1, m + 1]
    prv = [m] + [i - 1 for i in range(1, m)] + [-1, m - 1 if m else m]
    call_of = [0] * len(live)
    ret_of = [-1] * len(live)
    for pos, (_, kind, n) in enumerate(entries):
        if kind == 0:
            call_of[n] = pos
        else:
            ret_of[n] = pos
    end = m + 1
    n_ok = sum(1 for op in live if op.outcome == "ok")

    def unlink(p: int) -> None:
        nxt[prv[p]] = nxt[p]
        prv[nxt[p]] = prv[p]

    def relink(p: int) -> None:
        nxt[prv[p]] = p
        prv[nxt[p]] = p

    state: State = tuple(INITIAL for _ in keys)
    ok_bits = info_bits = 0
    done = 0
    cache: dict[tuple[int, State], list[int]] = {}
    stack: list[tuple[int, int, State]] = []
    entry, alt = nxt[head], 0
    best: tuple[int, list[int], State, int] = (-1, [], state, -1)
    for _ in range(max_steps):
        if done == n_ok:
            return True, ""
        if entry != end and entries[entry][1] == 0:
            n = entries[entry][2]
            alts = steps[n](state)
            moved = False
            for k in range(alt, len(alts)):
                s2 = alts[k]
                bit = 1 << n
                ob, ib = (ok_bits | bit, info_bits) if live[n].outcome == "ok" else (ok_bits, info_bits | bit)
                seen = cache.setdefault((ob, s2), [])
                if any(old & ~ib == 0 for old in seen):
                    continue
                seen.append(ib)
                stack.append((n, k, state))
                unlink(call_of[n])
                if ret_of[n] >= 0:
                    unlink(ret_of[n])
                state, ok_bits, info_bits = s2, ob, ib
                done += live[n].outcome == "ok"
                entry, alt, moved = nxt[head], 0, True
                break
            if not moved:
                entry, alt = nxt[entry], 0
            continue
        if done > best[0]:
            best = (done, [s[0] for s in stack], state, entries[entry][2] if entry != end else -1)
        if not stack:
            _, order, at, blocked = best
            tail = "; ".join(describe(live[i]) for i in order[-5:])
            why = describe(live[blocked]) if blocked >= 0 else "?"
            return (
                False,
                f"after {best[0]} of {n_ok} ok ops (state {fmt_state(keys, at)}; last: {tail}) no place for {why}",
            )
        n, k, prev = stack.pop()
        if ret_of[n] >= 0:
            relink(ret_of[n])
        relink(call_of[n])
        bit = 1 << n
        done -= live[n].outcome == "ok"
        ok_bits &= ~bit
        info_bits &= ~bit
        state, entry, alt = prev, call_of[n], k + 1
    return None, f"undecided after {max_steps} steps"


def check_kv(ops: Sequence[KvOp], max_steps: int = 5_000_000) -> Verdict:
    """One verdict for a KV history: each group of keys must have a linearization."""
    parent: dict[str, str] = {}

    def root(k: str) -> str:
        while parent.setdefault(k, k) != k:
            k = parent[k]
        return k

    for op in ops:
        ks = op.keys()
        for k in ks[1:]:
            parent[root(k)] = root(ks[0])
        root(ks[0])
    groups: dict[str, list[KvOp]] = {}
    for op in ops:
        groups.setdefault(root(op.keys()[0]), []).append(op)
    violations: list[str] = []
    stats: dict[str, Any] = {"ops": len(ops), "groups": len(groups)}
    for r, group in groups.items():
        keys = sorted(k for k in parent if root(k) == r)
        verdict, why = search(group, keys, max_steps)
        if verdict is not True:
            kind = "not linearizable" if verdict is False else "undecided"
            violations.append(f"{kind}: keys {','.join(keys)}: {why}")
    return Verdict("kv", violations, stats)
