"""The KV checkers as ``rakit chaos`` runs them: recorded ``Op``s translated for the linearizability
checker, the CAS-counter check, and both in ``check_all`` (hand-written histories)."""

from __future__ import annotations

from typing import Any

from rakit.chaos.checkers import check_all, check_kv_counters, check_kv_history
from rakit.chaos.checkers._kv_model import NOTHING, Read
from rakit.chaos.checkers.kv_history import to_kv_op, write_revision
from rakit.chaos.history import History, Op


def op(
    f: str,
    t0: float,
    t1: float,
    kind: str = "ok",
    result: dict[str, Any] | None = None,
    workload: str = "kv",
    process: int = 0,
    **args: Any,
) -> Op:
    return Op(workload, process, f, "node1", t0, t1, kind, args, result)


def put(t0: float, t1: float, value: Any, revision: int, kind: str = "ok", key: str = "a") -> Op:
    return op("put", t0, t1, kind, {"revision": revision} if kind == "ok" else None, key=key, value=value)


def get(t0: float, t1: float, value: Any, revision: int, workload: str = "kv", key: str = "a", **args: Any) -> Op:
    return op("get", t0, t1, "ok", {"found": True, "value": value, "mod_revision": revision}, workload, key=key, **args)


def incr(t0: float, t1: float, frm: int, kind: str = "ok", key: str = "c0", revision: int = 0) -> Op:
    result = {"succeeded": kind == "ok", "revision": revision, "results": [{"revision": revision}]}
    expect = {"value": frm} if frm else {"absent": True}
    return op(
        "cas", t0, t1, kind, result if kind != "info" else None, "kv-counters", key=key, expect=expect, value=frm + 1
    )


def final(t: float, value: Any, key: str = "c0") -> Op:
    """A final read of a counter (its mod_revision left out: the checker then does not compare it)."""
    result = {"found": True, "value": value} if value is not None else {"found": False}
    return op("get", t, t + 0.1, "ok", result, "kv-counters", process=900, key=key, final=True)


# --- translation -------------------------------------------------------------------------------------------


def test_reads_and_writes_translate_with_their_revisions() -> None:
    read = to_kv_op(get(1, 2, "x", 7))
    assert (read.f, read.outcome, read.read) == ("get", "ok", Read(True, "x", 7))
    assert to_kv_op(op("get", 1, 2, "ok", {"found": False}, key="a")).read == Read(False, None, None)
    written = to_kv_op(put(1, 2, "x", 7))
    assert (written.value, written.revision) == ("x", 7)
    assert to_kv_op(put(1, 2, "x", 7, kind="info")).outcome == "info"
    deleted = to_kv_op(op("delete", 1, 2, "ok", {"deleted": 1, "revision": 9}, key="a"))
    assert (deleted.deleted, deleted.revision) == (1, 9)
    assert write_revision({"succeeded": True, "revision": 12, "results": [{"revision": 11}]}) == 11


def test_a_cas_whose_condition_was_false_is_an_ok_unsucceeded_cas_other_refusals_are_dropped() -> None:
    by_value = to_kv_op(op("cas", 1, 2, "fail", {"succeeded": False}, key="a", expect={"value": "x"}, value="y"))
    assert (by_value.outcome, by_value.succeeded, by_value.expect_value) == ("ok", False, "x")
    by_revision = op("cas", 1, 2, "fail", {"error": "revision_mismatch"}, key="a", if_revision=4, value="y")
    translated = to_kv_op(by_revision)
    assert (translated.outcome, translated.succeeded, translated.expect_revision) == ("ok", False, 4)
    assert translated.expect_value is NOTHING
    refused = op("cas", 1, 2, "fail", {"error": "invalid_request"}, key="a", if_revision=4, value="y")
    assert to_kv_op(refused).outcome == "fail"
    assert to_kv_op(op("cas", 1, 2, "fail", None, key="a", expect={"value": 1}, value=2)).outcome == "fail"
    absent = to_kv_op(incr(1, 2, 0))
    assert (absent.outcome, absent.succeeded, absent.expect_revision) == ("ok", True, 0)
    assert to_kv_op(incr(1, 2, 3, kind="info")).succeeded is None


# --- linearizability of a recorded history -----------------------------------------------------------------


def test_a_linearizable_recorded_history_passes() -> None:
    ops = [
        put(0, 1, "x", 3),
        get(1.5, 2, "x", 3),
        op(
            "cas",
            2.5,
            3,
            "ok",
            {"succeeded": True, "results": [{"revision": 5}]},
            key="a",
            expect={"value": "x"},
            value="y",
        ),
        op("cas", 3.5, 4, "fail", {"succeeded": False}, key="a", expect={"value": "x"}, value="z"),
        op("cas", 4.5, 5, "fail", {"error": "revision_mismatch"}, key="a", if_revision=3, value="z"),
        put(5.5, 6, "w", 0, kind="info"),  # unknown: seen later
        get(7, 8, "w", 8),
        op("delete", 8.5, 9, "ok", {"deleted": 1, "revision": 9}, key="a"),
        op("get", 9.5, 10, "ok", {"found": False}, key="a"),
    ]
    verdict = check_kv_history(ops)
    assert verdict.valid, verdict.violations
    assert verdict.stats["recorded_ops"] == len(ops)


def test_a_read_of_an_overwritten_value_is_not_linearizable() -> None:
    verdict = check_kv_history([put(0, 1, "x", 3), put(1.5, 2, "y", 4), get(3, 4, "x", 3)])
    assert not verdict.valid and verdict.violations[0].startswith("not linearizable: keys a")


def test_a_cas_refused_while_its_value_held_is_not_linearizable() -> None:
    refused = op("cas", 2, 3, "fail", {"succeeded": False}, key="a", expect={"value": "x"}, value="y")
    assert not check_kv_history([put(0, 1, "x", 3), refused, get(4, 5, "x", 3)]).valid


# --- the counters ------------------------------------------------------------------------------------------


def test_counters_within_ok_and_ok_plus_unknown_pass() -> None:
    ops = [incr(0, 1, 0, revision=2), incr(1, 2, 1, revision=3), incr(2, 3, 1, kind="fail"), final(10, 2)]
    verdict = check_kv_counters(ops)
    assert verdict.valid, verdict.violations
    assert (verdict.stats["c0_ok"], verdict.stats["c0_unknown"], verdict.stats["c0_final"]) == (2, 0, 2)
    for value in (2, 3):  # an unknown increment may or may not have happened
        assert check_kv_counters([*ops[:2], incr(3, 4, 2, kind="info"), final(10, value)]).valid


def test_lost_phantom_unread_and_corrupt_counters_fail() -> None:
    two = [incr(0, 1, 0), incr(1, 2, 1)]
    lost = check_kv_counters([*two, final(10, 1)])
    assert lost.violations == ["lost: counter c0: final value 1 < 2 ok increments (1 lost)"]
    assert check_kv_counters([*two, final(10, None)]).violations[0].startswith("lost:")  # absent = 0
    phantom = check_kv_counters([*two, incr(2, 3, 2, kind="info"), final(10, 4)])
    assert phantom.violations == ["phantom: counter c0: final value 4 > 2 ok + 1 unknown increments (1 from nowhere)"]
    assert check_kv_counters(two).violations[0].startswith("unread: counter c0")
    assert check_kv_counters([*two, final(10, "2")]).violations[0].startswith("corrupt:")
    mixed = check_kv_counters([*two, final(10, 2), incr(0, 1, 0, key="c1"), final(10, 0, key="c1")])
    assert mixed.violations == ["lost: counter c1: final value 0 < 1 ok increments (1 lost)"]


def test_only_the_last_final_read_counts() -> None:
    assert check_kv_counters([incr(0, 1, 0), final(5, 0), final(10, 1)]).valid


# --- in check_all ------------------------------------------------------------------------------------------


def test_check_all_adds_both_kv_verdicts_when_chosen_or_recorded() -> None:
    assert [v.workload for v in check_all(History())] == ["locks", "queue", "cache"]
    chosen = check_all(History(meta={"workloads": ["kv"]}))
    assert [v.workload for v in chosen] == ["locks", "queue", "cache", "kv", "kv-counters"]
    assert all(v.valid for v in chosen)
    good = History(ops=[put(0, 1, "x", 3), get(2, 3, "x", 3), incr(0, 1, 0, revision=4), final(5, 1)])
    assert [(v.workload, v.valid) for v in check_all(good)][3:] == [("kv", True), ("kv-counters", True)]
    bad = History(ops=[put(0, 1, "x", 3), put(1.5, 2, "y", 4), get(3, 4, "x", 3), incr(0, 1, 0, revision=5)])
    verdicts = {v.workload: v for v in check_all(bad)}
    assert [line.split(":")[:2] for line in verdicts["kv"].violations] == [["not linearizable", " keys a"]]
    assert verdicts["kv-counters"].violations[0].startswith("unread: counter c0")
    # the counter ops are checked for linearizability too: a final read below an ok increment is not
    lost = {v.workload: v for v in check_all(History(ops=[incr(0, 1, 0, revision=2), final(5, 0)]))}
    assert lost["kv"].violations[0].startswith("not linearizable: keys c0")
    assert lost["kv-counters"].violations[0].startswith("lost: counter c0")
