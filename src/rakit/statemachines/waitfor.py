"""The wait-for graph: who waits for whom, and the cycle a new wait would close.

A graph maps each waiting client to the clients it waits for.  A deadlock is
a cycle; the lock table asks, before a request starts to wait, whether the
request's client now lies on one.

``find_cycle`` is a depth-first search from ``start`` that visits neighbours
in sorted order, so every replica finds the same cycle.  A client whose
neighbours were all explored without reaching ``start`` cannot reach it by
another route either, so each client is visited at most once: the search is
linear in the size of the graph, and the path it returns is simple.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def find_cycle(graph: Mapping[str, Iterable[str]], start: str) -> list[str] | None:
    """The clients on a cycle through ``start`` (``start`` first, each once), or None."""
    path = [start]
    visited = {start}
    pending = [iter(sorted(graph.get(start, ())))]
    while pending:
        for nxt in pending[-1]:
            if nxt == start:
                return list(path)
            if nxt not in visited:
                visited.add(nxt)
                path.append(nxt)
                pending.append(iter(sorted(graph.get(nxt, ()))))
                break
        else:  # every neighbour of path[-1] explored: step back
            pending.pop()
            path.pop()
    return None
