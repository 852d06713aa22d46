"""The wait-for graph's cycle finder (statemachines/waitfor.py)."""

from __future__ import annotations

import itertools

from rakit.statemachines.waitfor import find_cycle


def is_cycle(graph: dict[str, set[str]], cycle: list[str]) -> bool:
    return len(set(cycle)) == len(cycle) and all(b in graph.get(a, ()) for a, b in zip(cycle, cycle[1:] + cycle[:1]))


def naive_on_cycle(graph: dict[str, set[str]], start: str) -> bool:
    """Is ``start`` reachable from one of its neighbours?  (Plain reachability.)"""
    seen: set[str] = set()
    todo = list(graph.get(start, ()))
    while todo:
        node = todo.pop()
        if node == start:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return False


def test_no_edges_no_cycle() -> None:
    assert find_cycle({}, "a") is None
    assert find_cycle({"a": set()}, "a") is None


def test_two_clients_waiting_for_each_other() -> None:
    assert find_cycle({"a": {"b"}, "b": {"a"}}, "a") == ["a", "b"]
    assert find_cycle({"a": {"b"}, "b": {"a"}}, "b") == ["b", "a"]


def test_cycle_not_through_start_is_not_reported() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"b"}}
    assert find_cycle(graph, "a") is None
    assert find_cycle(graph, "b") == ["b", "c"]


def test_longer_cycle_each_client_once_start_first() -> None:
    graph = {"d": {"a"}, "a": {"b"}, "b": {"c", "x"}, "c": {"d"}, "x": {"b"}}
    assert find_cycle(graph, "d") == ["d", "a", "b", "c"]


def test_neighbours_are_visited_in_sorted_order() -> None:
    graph = {"s": {"z", "m", "b"}, "b": {"s"}, "m": {"s"}, "z": {"s"}}
    assert find_cycle(graph, "s") == ["s", "b"]
    # Insertion order of the neighbour collection does not matter.
    assert find_cycle({"s": ["z", "m", "b"], "b": ["s"], "m": ["s"], "z": ["s"]}, "s") == ["s", "b"]


def test_dead_end_branches_are_abandoned() -> None:
    graph = {"s": {"a", "b"}, "a": {"a1", "a2"}, "a1": set(), "a2": {"a1"}, "b": {"s"}}
    assert find_cycle(graph, "s") == ["s", "b"]


def test_self_loop_is_a_cycle_of_one() -> None:
    assert find_cycle({"a": {"a"}}, "a") == ["a"]


def test_long_chain_needs_no_recursion() -> None:
    n = 20_000
    graph = {f"c{i}": {f"c{i + 1}"} for i in range(n)}
    graph[f"c{n}"] = {"c0"}
    cycle = find_cycle(graph, "c0")
    assert cycle is not None and len(cycle) == n + 1


def test_agrees_with_naive_reachability_on_all_small_graphs() -> None:
    nodes = ["a", "b", "c"]
    pairs = [(x, y) for x in nodes for y in nodes if x != y]
    for bits in itertools.product([False, True], repeat=len(pairs)):
        graph: dict[str, set[str]] = {n: set() for n in nodes}
        for (x, y), on in zip(pairs, bits):
            if on:
                graph[x].add(y)
        for start in nodes:
            cycle = find_cycle(graph, start)
            assert (cycle is not None) == naive_on_cycle(graph, start), (graph, start)
            if cycle is not None:
                assert cycle[0] == start and is_cycle(graph, cycle), (graph, cycle)
