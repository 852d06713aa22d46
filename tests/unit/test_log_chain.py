"""The registry's log chain and the replicas' comparison (``rakit.node.consistency``)."""

from __future__ import annotations

from rakit.node.consistency import compare
from rakit.statemachines.kv import KvPut, KvStore
from rakit.statemachines.registry import Registry


def registry() -> Registry:
    return Registry([KvStore()])


def put(i: int) -> bytes:
    return registry().encode(KvPut(f"k{i}", b"%d" % i))


def test_replicas_that_apply_the_same_entries_share_chain_and_checkpoints() -> None:
    a, b = registry(), registry()
    for i in range(1, 600):
        a.apply(i, put(i))
        b.apply(i, put(i))
    assert a.chain == b.chain and list(a.checkpoints) == list(b.checkpoints)
    assert [c for c, _ in a.checkpoints] == [256, 512] and a.chain_index == 599


def test_one_altered_entry_changes_every_checkpoint_after_it() -> None:
    a, b = registry(), registry()
    for i in range(1, 600):
        a.apply(i, put(i))
        b.apply(i, put(i) if i != 300 else put(-1))
    assert dict(a.checkpoints)[256] == dict(b.checkpoints)[256]
    assert dict(a.checkpoints)[512] != dict(b.checkpoints)[512]


def test_a_snapshot_carries_the_chain_and_the_state_alone_does_not() -> None:
    a = registry()
    for i in range(1, 300):
        a.apply(i, put(i))
    b = registry()
    b.restore(a.snapshot())
    assert (b.chain, b.chain_index, b.chain_base) == (a.chain, a.chain_index, 0)
    for r in (a, b):
        for i in range(300, 700):
            r.apply(i, put(i))
    assert dict(b.checkpoints)[512] == dict(a.checkpoints)[512]
    assert a.state() == b.state() and a.state() != a.snapshot()


def test_a_snapshot_from_before_chains_starts_a_chain_of_its_own() -> None:
    old = registry()
    old.apply(1, put(1))
    b = registry()
    b.restore(old.state())  # no chain in it
    assert b.chain_base == -1
    b.apply(5, put(5))
    assert b.chain_base == 4


def view(base: int, **chains: str) -> dict[str, object]:
    return {"applied": 999, "base": base, "checkpoints": [{"index": int(k[1:]), "chain": v} for k, v in chains.items()]}


def test_compare_finds_the_minority_at_the_highest_shared_checkpoint() -> None:
    result = compare(
        {
            "n1": view(0, c256="aa", c512="bb"),
            "n2": view(0, c256="aa", c512="bb", c768="cc"),
            "n3": view(0, c256="aa", c512="xx"),
        }
    )
    assert result["checked"] == 512 and result["consistent"] is False and result["diverged"] == ["n3"]


def test_compare_agrees_and_leaves_out_what_it_cannot_judge() -> None:
    result = compare(
        {"n1": view(0, c256="aa"), "n2": view(0, c256="aa"), "n3": "ClientError: refused", "n4": view(77, c256="zz")}
    )
    assert result["consistent"] is True and result["diverged"] == [] and result["unreachable"] == ["n3"]
    assert result["nodes"]["n4"]["comparable"] is False
    assert compare({"n1": view(0), "n2": view(0, c256="aa")})["checked"] is None
