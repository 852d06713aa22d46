"""Small pure helpers shared by the checkers: op descriptions, counts, capped findings."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

from rakit.chaos.history import OP_TYPES, Fault, Op

INF = float("inf")
DEFAULT_LIMIT = 20  # violation lines listed per kind; the rest are summed up in one line


def fmt_op(op: Op, **fields: object) -> str:
    """One op as ``p3 acquire ok @n2 [1.250, 1.300] resource=r client=c7`` (None fields left out)."""
    extra = " ".join(f"{name}={value}" for name, value in fields.items() if value is not None)
    head = f"p{op.process} {op.f} {op.type} @{op.node} [{op.invoke:.3f}, {op.complete:.3f}]"
    return f"{head} {extra}" if extra else head


def fmt_span(start: float, end: float) -> str:
    return f"[{start:.3f}, {end:.3f}]"


def result_of(op: Op) -> dict[str, Any]:
    """The op's answer as a dict (empty when there is none)."""
    return op.result if isinstance(op.result, dict) else {}


def count_types(ops: Iterable[Op], fs: Sequence[str]) -> dict[str, int]:
    """``{"<f>_<type>": n}`` for every f in ``fs`` (always present, 0 if none) and any other f seen."""
    counts: Counter[str] = Counter(f"{op.f}_{op.type}" for op in ops)
    out = {f"{f}_{t}": 0 for f in fs for t in OP_TYPES}
    out.update(counts)
    return out


def freeze(value: Any) -> Hashable:
    """A hashable stand-in for a JSON value (strings and numbers stay as they are)."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return json.dumps(value, sort_keys=True, default=repr)


def partition_faults(faults: Sequence[Fault]) -> list[Fault]:
    """The faults that cut some nodes off from a majority (non-empty ``minority``)."""
    return [fault for fault in faults if fault.minority]


def merged_length(intervals: Iterable[tuple[float, float]]) -> float:
    """Total length covered by the intervals, overlaps counted once."""
    total, cur_start, cur_end = 0.0, None, None
    for start, end in sorted(intervals):
        if end <= start:
            continue
        if cur_end is None or start > cur_end:
            if cur_end is not None and cur_start is not None:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_end is not None and cur_start is not None:
        total += cur_end - cur_start
    return total


def suffix_min(values: Sequence[float]) -> list[tuple[float, int]]:
    """``out[i]`` = (min of ``values[i:]``, its index); ``out[len(values)]`` = (inf, -1)."""
    out: list[tuple[float, int]] = [(INF, -1)] * (len(values) + 1)
    for i in range(len(values) - 1, -1, -1):
        out[i] = (values[i], i) if values[i] < out[i + 1][0] else out[i + 1]
    return out


class Findings:
    """Violations grouped by kind, each kind listing at most ``limit`` lines plus one "and N more" line."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self.counts: Counter[str] = Counter()
        self._notes: dict[str, list[str]] = {}
        self._lines: dict[str, list[str]] = {}

    def add(self, kind: str, line: str) -> None:
        """One violation of ``kind``."""
        self.counts[kind] += 1
        lines = self._lines.setdefault(kind, [])
        if len(lines) < self.limit:
            lines.append(f"{kind}: {line}")

    def note(self, kind: str, line: str) -> None:
        """A summary line listed before the violations of ``kind`` (not counted, never capped)."""
        self._notes.setdefault(kind, []).append(f"{kind}: {line}")
        self._lines.setdefault(kind, [])

    def lines(self) -> list[str]:
        out: list[str] = []
        for kind, lines in self._lines.items():
            out.extend(self._notes.get(kind, ()))
            out.extend(lines)
            if self.counts[kind] > len(lines):
                out.append(f"{kind}: ... and {self.counts[kind] - len(lines)} more")
        return out
