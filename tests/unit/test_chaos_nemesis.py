"""The seeded fault plan and the minority rule of the chaos nemesis (pure)."""

from __future__ import annotations

import pytest

from rakit.chaos import nemesis as nem

NODES3 = ["node1", "node2", "node3"]
NODES5 = [f"node{i}" for i in range(1, 6)]


def test_same_seed_same_plan_and_other_seed_differs() -> None:
    a = nem.plan(7, 120, nem.NEMESES, NODES3)
    assert a == nem.plan(7, 120, nem.NEMESES, NODES3)
    assert a != nem.plan(8, 120, nem.NEMESES, NODES3)


@pytest.mark.parametrize("nodes", [NODES3, NODES5])
def test_steps_are_sequential_bounded_and_inside_the_run(nodes: list[str]) -> None:
    steps = nem.plan(3, 300, nem.NEMESES, nodes, fault_seconds=(2, 5), gap_seconds=(1, 2))
    assert len(steps) > 20
    assert {s.kind for s in steps} == set(nem.NEMESES)
    for prev, step in zip(steps, steps[1:], strict=False):
        assert step.at >= prev.at + prev.duration + 1 - 1e-6  # healed, then a gap, then the next
    for step in steps:
        assert 2 <= step.duration <= 5
        assert step.at + step.duration <= 300


def test_network_steps_cut_the_halves_they_say() -> None:
    for step in nem.plan(11, 400, ["partition", "bridge"], NODES5):
        groups = [set(g) for g in step.detail["groups"]]
        for src, dst in step.cuts:
            assert not any(src in g and dst in g for g in groups)  # never inside one side
        if step.kind == "partition":
            assert sorted(len(g) for g in groups) == [2, 3]
            assert set(nem.minority(NODES5, step.cuts)) == min(groups, key=len)
        else:  # bridge: the middle node hears both sides, so nobody is cut off from a majority
            middle = step.detail["bridge"]
            assert all(middle in g for g in groups)
            assert nem.minority(NODES5, step.cuts) == ()


def test_leader_steps_are_resolved_at_run_time() -> None:
    steps = [s for s in nem.plan(5, 400, ["isolate-leader", "asymmetric"], NODES3) if s.target == nem.LEADER]
    assert steps and all(not s.cuts for s in steps)
    isolate = nem.resolve(next(s for s in steps if s.kind == "isolate-leader"), NODES3, "node2")
    assert set(isolate.cuts) == {("node2", "node1"), ("node1", "node2"), ("node2", "node3"), ("node3", "node2")}
    assert nem.minority(NODES3, isolate.cuts) == ("node2",)
    asym = nem.resolve(nem.Step("asymmetric", 0, 1, target=nem.LEADER), NODES3, "node1")
    assert set(asym.cuts) == {("node1", "node2"), ("node1", "node3")}  # node1 hears all, nobody hears node1
    assert nem.minority(NODES3, asym.cuts) == ("node1",)


def test_minority_counts_one_way_cuts_as_no_link() -> None:
    assert nem.minority(NODES3, []) == ()
    assert nem.minority(NODES3, [("node1", "node2")]) == ()  # each still has a two-way link to node3
    assert nem.minority(NODES3, [("node1", "node2"), ("node3", "node1")]) == ("node1",)


def test_parse_nemeses() -> None:
    assert nem.parse_nemeses("partition, bridge,kill") == ("partition", "bridge", "kill")
    assert nem.parse_nemeses("isolate,redis") == ("isolate-leader", "redis-kill")
    assert nem.parse_nemeses("membership") == ("member",)
    assert nem.parse_nemeses("all") == nem.NEMESES
    assert nem.parse_nemeses("none") == ()
    with pytest.raises(nem.NemesisError, match="unknown nemesis 'flood'"):
        nem.parse_nemeses("partition,flood")


def test_plan_refuses_bad_settings() -> None:
    with pytest.raises(nem.NemesisError):
        nem.plan(1, 60, ["kill"], ["a", "b"])
    with pytest.raises(nem.NemesisError):
        nem.plan(1, 60, ["kill"], NODES3, fault_seconds=(5, 2))
    assert nem.plan(1, 60, [], NODES3) == []
