"""Rule 8 of ``rakit.statemachines.locks.table``: the wait-for graph, and whether a wait would close a cycle.

Each waiting client -> every current holder of the resource it waits on (but
itself), and -> every waiter queued ahead of it there whose mode is
incompatible with its own.  ``reaches`` answers "is there a cycle through
start" in time linear in what it reaches; ``wait_for_graph`` builds the part
of the graph reachable from start for ``find_cycle`` to name the cycle.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping

from rakit.statemachines.locks.commands import EXCLUSIVE
from rakit.statemachines.locks.records import Resource, WaitQueue


def reaches(
    start: str, new_edges: list[str], waiting_on: Mapping[str, Mapping[str, None]], resources: Mapping[str, Resource]
) -> bool:
    """Whether rule 8's graph (``wait_for_graph``) has a path from ``start`` back to ``start``.

    Linear in the clients and waiters reached, where the graph itself may
    have a number of edges quadratic in a wait list's length: a waiter's
    blockers are the holders plus a prefix of the waiters ahead (all of
    them for an exclusive waiter, the exclusive ones for a shared one), so
    per resource only the part of the longest prefix not yet reached is
    new.  ``find_cycle`` then runs only when there is a cycle to name.
    """
    queues: dict[str, WaitQueue] = {}
    reached: dict[str, list[int]] = {}  # resource -> [waiters, exclusive waiters] prefix lengths taken
    holders_taken: set[str] = set()
    seen = {start}
    todo = list(new_edges)

    def expand(client: str) -> None:
        for name in waiting_on.get(client, {}):
            queue = queues.get(name)
            if queue is None:
                queue = queues[name] = WaitQueue(resources[name])
                reached[name] = [0, 0]
            if name not in holders_taken:
                if client == start:  # no edge to itself; another waiter here still reaches start
                    todo.extend(h for h in queue.holders if h != start)
                else:  # the client itself among them is seen already
                    todo.extend(queue.holders)
                    holders_taken.add(name)
            done = reached[name]
            p = queue.position[client]
            if queue.modes[p] == EXCLUSIVE:
                if p > done[0]:
                    todo.extend(queue.ids[done[0] : p])
                    done[0] = p
            else:
                k = bisect.bisect_left(queue.exclusive_positions, p)
                if k > done[1]:
                    todo.extend(queue.exclusive_ids[done[1] : k])
                    done[1] = k

    expand(start)
    while todo:
        client = todo.pop()
        if client == start:
            return True
        if client not in seen:
            seen.add(client)
            expand(client)
    return False


def wait_for_graph(
    start: str, new_edges: list[str], waiting_on: Mapping[str, Mapping[str, None]], resources: Mapping[str, Resource]
) -> dict[str, set[str]]:
    """Rule 8's graph, as far as it is reachable from ``start`` (cycles through it lie there).

    Each wait list's positions and client ids are indexed once per call
    (``WaitQueue``), so a long wait list costs one pass, not one per waiter.
    """
    graph: dict[str, set[str]] = {}
    queues: dict[str, WaitQueue] = {}
    todo = [start]
    while todo:
        client = todo.pop()
        if client in graph:
            continue
        edges = set(new_edges) if client == start else set()
        for name in waiting_on.get(client, {}):
            queue = queues.get(name)
            if queue is None:
                queue = queues[name] = WaitQueue(resources[name])
            edges.update(queue.blockers(client))
        graph[client] = edges
        todo.extend(edges - graph.keys())  # the graph is the same whatever the order
    return graph


# --- release, renew, expire (rule 9) ---
