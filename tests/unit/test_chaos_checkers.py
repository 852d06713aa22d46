"""The chaos checkers (chaos/checkers): valid histories pass, each kind of bad history is caught."""

from __future__ import annotations

import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rakit.chaos.checkers import check_all, check_cache, check_locks, check_queue
from rakit.chaos.history import Fault, History, Op, Verdict

X, S = "exclusive", "shared"


def op(
    workload: str,
    f: str,
    invoke: float,
    complete: float,
    type: str = "ok",
    *,
    process: int = 0,
    node: str = "n1",
    args: dict[str, Any] | None = None,
    result: dict[str, Any] | None = None,
) -> Op:
    return Op(workload, process, f, node, invoke, complete, type, args or {}, result)


def kinds(verdict: Verdict) -> set[str]:
    """The violation kinds named in a verdict (the text before the first colon)."""
    return {line.split(":", 1)[0] for line in verdict.violations}


# --- locks -------------------------------------------------------------------------------------------------


def acq(
    client: str,
    invoke: float,
    complete: float,
    token: int | None = None,
    *,
    type: str = "ok",
    mode: str = X,
    r: str = "r",
    ttl: float = 10.0,
    node: str = "n1",
    process: int = 0,
) -> Op:
    args = {"resource": r, "client_id": client, "mode": mode, "ttl": ttl, "timeout": 0}
    result = None
    if type == "ok":
        result = {
            "acquired": True,
            "resource": r,
            "client_id": client,
            "mode": mode,
            "fencing_token": token,
            "ttl": ttl,
        }
    elif type == "fail":
        result = {"acquired": False, "error": "conflict"}
    return op("locks", "acquire", invoke, complete, type, process=process, node=node, args=args, result=result)


def rel(client: str, invoke: float, complete: float, *, type: str = "ok", r: str = "r", process: int = 0) -> Op:
    result = {"released": True} if type == "ok" else None
    return op(
        "locks",
        "release",
        invoke,
        complete,
        type,
        process=process,
        args={"resource": r, "client_id": client},
        result=result,
    )


def partition(start: float, end: float, minority: tuple[str, ...] = ("n3",), nemesis: str = "partition") -> Fault:
    return Fault(nemesis, start, end, nodes=("n1", "n2", "n3"), minority=minority)


def test_locks_empty_history_is_valid() -> None:
    verdict = check_locks([])
    assert verdict.valid and verdict.workload == "locks"
    assert verdict.stats["holds"] == 0 and verdict.stats["resources"] == 0
    assert verdict.stats["acquire_ok"] == 0 and verdict.stats["release_info"] == 0
    assert verdict.stats["majority_grant_rate"] == 0.0 and verdict.stats["partition_seconds"] == 0.0


def test_locks_serial_history_is_valid() -> None:
    ops = [
        acq("a", 0, 1, 1),
        rel("a", 2, 2.1),
        acq("b", 3, 4, 2),
        rel("b", 5, 5.1),
        acq("c", 6, 7, 5, mode=S),
        acq("d", 6.5, 7.5, 5, mode=S),
        rel("c", 8, 8.1),
        rel("d", 8, 8.1),
        acq("e", 9, 10, 9),
    ]
    verdict = check_locks(ops)
    assert verdict.valid, verdict.violations
    assert verdict.stats["holds"] == 5
    assert verdict.stats["acquire_ok"] == 5 and verdict.stats["release_ok"] == 4
    assert verdict.stats["resources"] == 1


def test_locks_overlapping_exclusive_holds_are_caught() -> None:
    verdict = check_locks([acq("a", 0, 1, 1, process=1), acq("b", 2, 3, 2, node="n2", process=2)])
    assert kinds(verdict) == {"mutual exclusion"}
    [line] = verdict.violations
    assert "client=a" in line and "client=b" in line and "p2 acquire ok @n2" in line
    assert verdict.stats["mutual_exclusion_violations"] == 1


def test_locks_exclusive_over_shared_is_caught_shared_with_shared_is_not() -> None:
    shared = [acq("a", 0, 1, 1, mode=S), acq("b", 2, 3, 1, mode=S)]
    assert check_locks(shared).valid
    assert kinds(check_locks([*shared, acq("c", 4, 5, 2)])) == {"mutual exclusion"}
    assert kinds(check_locks([acq("a", 0, 1, 1), acq("b", 2, 3, 2, mode=S)])) == {"mutual exclusion"}


def test_locks_hold_ends_at_invoke_plus_ttl() -> None:
    # a's lease was granted no earlier than 0, so it lives at least until 5: b may take it from then on
    assert check_locks([acq("a", 0, 1, 1, ttl=5), acq("b", 4, 5, 2)]).valid
    assert kinds(check_locks([acq("a", 0, 1, 1, ttl=5), acq("b", 3, 4.5, 2)])) == {"mutual exclusion"}


def test_locks_release_of_any_type_ends_the_hold() -> None:
    for release_type in ("ok", "info", "fail"):
        ops = [acq("a", 0, 1, 1), rel("a", 2, 2.5, type=release_type), acq("b", 2.2, 3, 2)]
        assert check_locks(ops).valid, release_type


def test_locks_release_before_the_acquire_does_not_end_it() -> None:
    ops = [rel("a", 0, 0.5), acq("a", 1, 2, 1), acq("b", 3, 4, 2)]
    assert kinds(check_locks(ops)) == {"mutual exclusion"}


def test_locks_unknown_and_failed_acquires_hold_nothing() -> None:
    ops = [
        acq("a", 0, 1, type="info"),
        acq("b", 0.5, 1, type="fail"),
        acq("c", 2, 3, 1),
        acq("d", 2.5, 2.7, type="fail"),
    ]
    verdict = check_locks(ops)
    assert verdict.valid, verdict.violations
    assert verdict.stats["holds"] == 1
    assert verdict.stats["acquire_info"] == 1 and verdict.stats["acquire_fail"] == 2


def test_locks_same_client_may_overlap_itself_and_reacquire_with_the_same_token() -> None:
    ops = [acq("a", 0, 1, 7), acq("a", 2, 3, 7), rel("a", 4, 4.1), acq("b", 5, 6, 8)]
    verdict = check_locks(ops)
    assert verdict.valid, verdict.violations
    assert verdict.stats["holds"] == 3


def test_locks_same_client_id_acquire_release_acquire_again() -> None:
    ops = [
        acq("a", 0, 1, 1),
        rel("a", 2, 2.1),
        acq("b", 3, 4, 2),
        rel("b", 5, 5.1),
        acq("a", 6, 7, 3),
        rel("a", 8, 8.1),
    ]
    assert check_locks(ops).valid
    # ... but the second grant to a cannot reuse its first token once b had a greater one
    bad = [*ops[:4], acq("a", 6, 7, 1)]
    assert kinds(check_locks(bad)) == {"fencing"}
    assert "backwards" in check_locks(bad).violations[0]


def test_locks_reacquire_with_a_shorter_ttl_shortens_the_hold() -> None:
    # the second grant restarted a's lease at 1 s: it may have ended by 3, so b at 5 is no violation
    ops = [acq("a", 0, 1, 1, ttl=30), acq("a", 2, 3, 1, ttl=1), acq("b", 5, 6, 2)]
    assert check_locks(ops).valid
    # an unknown re-acquire with a short ttl may land late, and shortens the hold as well
    ops = [acq("a", 0, 0.5, type="info", ttl=1), acq("a", 1, 2, 1, ttl=30), acq("b", 5, 6, 2)]
    assert check_locks(ops).valid
    # a re-acquire that completed before the grant was asked for changes nothing
    ops = [acq("a", 0, 0.5, 1, ttl=1), acq("a", 1, 2, 1, ttl=30), acq("b", 5, 6, 2)]
    assert kinds(check_locks(ops)) == {"mutual exclusion"}


def test_locks_unknown_release_long_before_may_still_land() -> None:
    ops = [acq("a", 0, 1, 1), rel("a", 2, 3, type="info"), acq("a", 4, 5, 1), acq("b", 6, 7, 2)]
    assert check_locks(ops).valid


def test_locks_token_going_backwards_is_caught() -> None:
    ops = [acq("a", 0, 1, 5), rel("a", 1.5, 1.6), acq("b", 2, 3, 3, process=4)]
    verdict = check_locks(ops)
    assert kinds(verdict) == {"fencing"}
    assert "backwards" in verdict.violations[0] and "token=3" in verdict.violations[0]
    assert verdict.stats["fencing_violations"] == 1


def test_locks_repeated_token_is_caught() -> None:
    ops = [acq("a", 0, 1, 5), rel("a", 1.5, 1.6), acq("b", 2, 3, 5)]
    verdict = check_locks(ops)
    assert kinds(verdict) == {"fencing"} and "repeated" in verdict.violations[0]
    # an exclusive grant after a shared one, and a shared one after an exclusive one, need a new token
    assert kinds(check_locks([acq("a", 0, 1, 5, mode=S), rel("a", 1.5, 1.6), acq("b", 2, 3, 5)])) == {"fencing"}
    assert kinds(check_locks([acq("a", 0, 1, 5), rel("a", 1.5, 1.6), acq("b", 2, 3, 5, mode=S)])) == {"fencing"}
    # an upgrade by the same client too
    assert kinds(check_locks([acq("a", 0, 1, 5, mode=S), acq("a", 2, 3, 5)])) == {"fencing"}


def test_locks_shared_holders_may_share_a_token() -> None:
    ops = [acq("a", 0, 1, 5, mode=S), acq("b", 2, 3, 5, mode=S), acq("c", 2, 3, 5, mode=S)]
    assert check_locks(ops).valid


def test_locks_concurrent_acquires_may_get_tokens_in_any_order() -> None:
    ops = [acq("a", 0, 1, 5), rel("a", 1.2, 1.3), acq("b", 0.5, 2, 3)]
    assert check_locks(ops).valid


def test_locks_tokens_of_other_resources_are_independent() -> None:
    ops = [acq("a", 0, 1, 5, r="r1"), acq("b", 2, 3, 1, r="r2")]
    verdict = check_locks(ops)
    assert verdict.valid and verdict.stats["resources"] == 2


def test_locks_fencing_against_the_highest_earlier_token() -> None:
    ops = [acq("a", 0, 1, 9, r="r"), rel("a", 1, 1.1), acq("b", 2, 3, 4), rel("b", 3, 3.1), acq("c", 4, 5, 7)]
    verdict = check_locks(ops)
    assert len(verdict.violations) == 2  # b (4 < 9) and c (7 < 9)
    assert all("backwards" in line and "token=9" in line for line in verdict.violations)


def test_locks_grant_from_a_minority_is_caught() -> None:
    faults = [partition(10, 20)]
    verdict = check_locks([acq("a", 11, 12, 1, node="n3", process=3)], faults)
    assert kinds(verdict) == {"minority grant"}
    [line] = verdict.violations
    assert "node n3" in line and "partition [10.000, 20.000]" in line and "p3" in line
    assert verdict.stats["minority_grants"] == 1 and verdict.stats["majority_grants_during_partitions"] == 0


def test_locks_grants_not_entirely_inside_a_partition_are_not_judged() -> None:
    faults = [partition(10, 20), Fault("kill", 30, 40, nodes=("n3",))]
    ops = [
        acq("a", 9, 12, 1, node="n3"),
        rel("a", 12, 12.1),
        acq("b", 19, 21, 2, node="n3"),
        rel("b", 21, 21.1),
        acq("c", 31, 32, 3, node="n3"),
    ]
    verdict = check_locks(ops, faults)
    assert verdict.valid, verdict.violations
    assert verdict.stats["majority_grants_during_partitions"] == 0


def test_locks_partition_stats() -> None:
    faults = [partition(10, 20), partition(15, 25, ("n1",)), Fault("kill", 30, 40, nodes=("n2",)), partition(50, 55)]
    ops = [
        acq("a", 11, 12, 1, node="n1"),
        rel("a", 12, 12.1),
        acq("b", 16, 17, 2, node="n2"),
        rel("b", 17, 17.1),
        acq("c", 51, 52, 3, node="n2"),
    ]
    verdict = check_locks(ops, faults)
    assert verdict.valid, verdict.violations
    assert verdict.stats["partition_seconds"] == 20.0
    assert verdict.stats["majority_grants_during_partitions"] == 3
    assert verdict.stats["majority_grant_rate"] == 0.15
    # n1 is in the minority of the second partition, but the grant at [11, 12] is not inside it
    assert verdict.stats["minority_grants"] == 0


def test_locks_many_violations_are_capped_with_a_count() -> None:
    ops = [acq(f"c{i}", i, i + 0.5, 1000 - i) for i in range(60)]  # each overlaps the previous, tokens fall
    verdict = check_locks(ops)
    assert verdict.stats["mutual_exclusion_violations"] == 59 and verdict.stats["fencing_violations"] == 59
    assert len(verdict.violations) == 2 * 21
    assert "mutual exclusion: ... and 39 more" in verdict.violations
    assert "fencing: ... and 39 more" in verdict.violations


@st.composite
def serial_lock_histories(draw: st.DrawFn) -> list[Op]:
    """One resource used in turn by fresh clients (exclusive, or a group of shared ones), with noise."""
    ops: list[Op] = []
    t, token, n = 0.0, 0, 0
    for _ in range(draw(st.integers(0, 12))):
        token += draw(st.integers(1, 3))
        group = 1 if draw(st.booleans()) else draw(st.integers(1, 3))
        mode = X if group == 1 and draw(st.booleans()) else S
        ttl = draw(st.sampled_from([1.0, 5.0, 30.0]))
        last_invoke = t
        for _ in range(group):
            n += 1
            invoke = t + draw(st.floats(0, 0.5))
            last_invoke = max(last_invoke, invoke)
            ops.append(acq(f"c{n}", invoke, invoke + draw(st.floats(0.01, 0.5)), token, mode=mode, ttl=ttl, process=n))
            if draw(st.booleans()):  # releases (or lets the lease run out)
                release = invoke + draw(st.floats(0.6, 2.0))
                ops.append(
                    rel(
                        f"c{n}",
                        release,
                        release + draw(st.floats(0, 0.5)),
                        type=draw(st.sampled_from(["ok", "info", "fail"])),
                        process=n,
                    )
                )
            if draw(st.booleans()):  # a refused or unknown attempt by someone else
                n += 1
                ops.append(acq(f"c{n}", invoke, invoke + 0.1, type=draw(st.sampled_from(["fail", "info"]))))
        t = max([last_invoke + ttl, *(o.complete for o in ops)]) + 0.01  # every lease has run out
    ops.sort(key=lambda o: o.complete)
    return ops


@settings(max_examples=150, deadline=None)
@given(serial_lock_histories())
def test_locks_property_serial_histories_are_valid(ops: list[Op]) -> None:
    verdict = check_locks(ops)
    assert verdict.valid, verdict.violations


@settings(max_examples=100, deadline=None)
@given(serial_lock_histories(), st.data())
def test_locks_property_a_lowered_later_token_is_caught(ops: list[Op], data: st.DataObject) -> None:
    granted = sorted((o for o in ops if o.f == "acquire" and o.type == "ok"), key=lambda o: o.invoke)
    first = granted[0] if granted else None
    later = [o for o in granted if first is not None and o.invoke > first.complete]
    if first is None or not later:
        return
    victim = data.draw(st.sampled_from(later))
    assert victim.result is not None
    lowered = Op(**{**_fields(victim), "result": {**victim.result, "fencing_token": first.result["fencing_token"] - 1}})
    verdict = check_locks([lowered if o is victim else o for o in ops])
    assert "fencing" in kinds(verdict)


def _fields(o: Op) -> dict[str, Any]:
    return {name: getattr(o, name) for name in Op.__slots__}


# --- queue -------------------------------------------------------------------------------------------------


def push(
    mid: str,
    invoke: float,
    complete: float,
    type: str = "ok",
    *,
    topic: str = "t",
    message: Any = None,
    process: int = 0,
) -> Op:
    message = f"m-{mid}" if message is None else message
    result = {"topic": topic, "message_id": mid, "node": "n1"} if type == "ok" else None
    return op(
        "queue",
        "push",
        invoke,
        complete,
        type,
        process=process,
        args={"topic": topic, "message_id": mid, "message": message},
        result=result,
    )


def pop(
    mid: str | None,
    invoke: float,
    complete: float,
    type: str = "ok",
    *,
    count: int = 1,
    topic: str = "t",
    message: Any = None,
    final: bool = False,
    process: int = 0,
) -> Op:
    args: dict[str, Any] = {"topic": topic, "consumer_id": f"k{process}", "visibility_timeout": 5}
    if final:
        args["final"] = True
    result: dict[str, Any] | None = None
    if type == "ok":
        result = (
            {"empty": True}
            if mid is None
            else {
                "topic": topic,
                "message_id": mid,
                "message": f"m-{mid}" if message is None else message,
                "delivery_count": count,
            }
        )
    return op("queue", "pop", invoke, complete, type, process=process, args=args, result=result)


def ack(mid: str, invoke: float, complete: float, type: str = "ok", *, topic: str = "t") -> Op:
    return op(
        "queue",
        "ack",
        invoke,
        complete,
        type,
        args={"topic": topic, "consumer_id": "k0", "message_id": mid},
        result={"acked": True} if type == "ok" else None,
    )


def test_queue_empty_history_is_valid() -> None:
    verdict = check_queue([])
    assert verdict.valid and verdict.workload == "queue"
    assert verdict.stats["push_ok"] == 0 and verdict.stats["lost"] == 0 and verdict.stats["topics"] == 0


def test_queue_valid_history_and_stats() -> None:
    ops = [
        push("a", 0, 1),
        push("b", 2, 3),
        push("c", 2.5, 3.5, "info"),
        push("d", 3, 3.2, "fail"),
        pop("a", 4, 5),
        ack("a", 5, 5.1),
        pop("b", 6, 7),
        pop(None, 7, 7.1),
        pop("b", 20, 21, count=2),
        pop(None, 30, 31, final=True),
        pop(None, 31, 32, "info"),
    ]
    verdict = check_queue(ops)
    assert verdict.valid, verdict.violations
    stats = verdict.stats
    assert (stats["push_ok"], stats["push_info"], stats["push_fail"]) == (2, 1, 1)
    assert (stats["pop_ok"], stats["pop_empty"], stats["pop_info"], stats["ack_ok"]) == (3, 2, 1, 1)
    assert (stats["delivered"], stats["redeliveries"], stats["duplicate_first_deliveries"]) == (2, 1, 0)
    assert (stats["final_pops"], stats["undelivered"], stats["lost"], stats["topics"]) == (1, 0, 0, 1)


def test_queue_lost_message_is_caught() -> None:
    ops = [push("a", 0, 1), push("b", 2, 3, process=7), pop("a", 4, 5), pop(None, 6, 7, final=True)]
    verdict = check_queue(ops)
    assert kinds(verdict) == {"lost"}
    assert "at least 1 are lost" in verdict.violations[0]
    assert "id b" in verdict.violations[1] and "p7 push ok" in verdict.violations[1]
    assert verdict.stats["lost"] == 1 and verdict.stats["undelivered"] == 1


def test_queue_unknown_or_failed_pushes_may_be_missing() -> None:
    assert check_queue([push("a", 0, 1, "info"), push("b", 0, 1, "fail")]).valid


def test_queue_missing_messages_explained_by_unknown_pops() -> None:
    ops = [push("a", 0, 1), *(pop(None, 2 + i, 3 + i, "info") for i in range(5))]
    verdict = check_queue(ops)  # five unseen deliveries may have dead-lettered a
    assert verdict.valid and verdict.stats["undelivered"] == 1 and verdict.stats["lost"] == 0
    assert kinds(check_queue(ops[:-1])) == {"lost"}
    assert check_queue(ops[:-1], max_deliveries=4).valid


def test_queue_acked_message_counts_as_delivered() -> None:
    assert check_queue([push("a", 0, 1), pop("a", 2, 3, "info"), ack("a", 4, 5, "info")]).valid


def test_queue_lost_ids_are_capped_with_a_count() -> None:
    verdict = check_queue([push(f"m{i}", i, i + 0.5) for i in range(30)])
    assert len(verdict.violations) == 1 + 20 + 1
    assert verdict.violations[-1] == "lost: ... and 10 more"
    assert verdict.stats["lost"] == 30


def test_queue_phantom_message_is_caught() -> None:
    verdict = check_queue([push("a", 0, 1), pop("a", 2, 3), pop("zz", 4, 5, process=2)])
    assert kinds(verdict) == {"phantom"}
    assert "id=zz" in verdict.violations[0] and "p2 pop ok" in verdict.violations[0]
    assert verdict.stats["phantoms"] == 1


def test_queue_message_of_an_unknown_or_failed_push_is_no_phantom() -> None:
    assert check_queue([push("a", 0, 1, "info"), pop("a", 2, 3), push("b", 0, 1, "fail"), pop("b", 4, 5)]).valid


def test_queue_delivery_before_its_push_began_is_a_phantom() -> None:
    verdict = check_queue([pop("a", 0, 1), push("a", 2, 3, "info")])
    assert kinds(verdict) == {"phantom"} and "before any push" in verdict.violations[0]


def test_queue_corrupt_message_is_caught() -> None:
    verdict = check_queue([push("a", 0, 1, message={"n": 1}), pop("a", 2, 3, message={"n": 2})])
    assert kinds(verdict) == {"corrupt"} and verdict.stats["corrupt"] == 1
    assert check_queue([push("a", 0, 1, message={"n": 1, "x": [1]}), pop("a", 2, 3, message={"x": [1], "n": 1})]).valid


def test_queue_first_deliveries_out_of_push_order_are_caught() -> None:
    ops = [push("a", 0, 1), push("b", 2, 3), pop("b", 4, 5, process=5), pop("a", 6, 7)]
    verdict = check_queue(ops)
    assert kinds(verdict) == {"order"} and verdict.stats["order_violations"] == 1
    assert "delivered b before the first delivery of a" in verdict.violations[0]
    assert "p5 pop ok" in verdict.violations[0]


def test_queue_order_is_not_judged_when_it_cannot_be_known() -> None:
    # concurrent pushes: either order
    assert check_queue([push("a", 0, 3), push("b", 1, 4), pop("b", 5, 6), pop("a", 7, 8)]).valid
    # a's first observed delivery is a redelivery: its first delivery was unseen, at an unknown time
    assert check_queue([push("a", 0, 1), push("b", 2, 3), pop("b", 4, 5), pop("a", 6, 7, count=2)]).valid
    # the pops overlap: a's first delivery may have happened first
    assert check_queue([push("a", 0, 1), push("b", 2, 3), pop("b", 4, 6), pop("a", 5, 7)]).valid
    # b was delivered only to an unknown pop
    assert check_queue(
        [push("a", 0, 1), push("b", 2, 3), pop("b", 4, 5, "info"), pop("a", 6, 7), pop(None, 8, 9, "info")]
        + [pop(None, 10 + i, 11 + i, "info") for i in range(4)]
    ).valid


def test_queue_order_is_per_topic() -> None:
    ops = [
        push("a", 0, 1, topic="t1"),
        push("b", 2, 3, topic="t2"),
        pop("b", 4, 5, topic="t2"),
        pop("a", 6, 7, topic="t1"),
    ]
    verdict = check_queue(ops)
    assert verdict.valid and verdict.stats["topics"] == 2


def test_queue_order_against_an_unknown_later_push() -> None:
    ops = [push("a", 0, 1), push("b", 2, 3, "info"), pop("b", 4, 5), pop("a", 6, 7)]
    assert kinds(check_queue(ops)) == {"order"}


def test_queue_duplicate_first_deliveries_and_redeliveries_are_counted() -> None:
    ops = [push("a", 0, 1), pop("a", 2, 3), pop("a", 4, 5), pop("a", 6, 7, count=2), pop("a", 8, 9, count=3)]
    verdict = check_queue(ops)
    assert verdict.valid
    assert verdict.stats["duplicate_first_deliveries"] == 1 and verdict.stats["redeliveries"] == 2


def test_queue_final_pops_count_like_any_pop() -> None:
    ops = [
        push("a", 0, 1),
        push("b", 2, 3),
        pop("a", 10, 11, final=True),
        pop("b", 11, 12, final=True),
        pop(None, 12, 13, final=True),
    ]
    verdict = check_queue(ops)
    assert verdict.valid and verdict.stats["final_pops"] == 3 and verdict.stats["delivered"] == 2


@st.composite
def fifo_histories(draw: st.DrawFn) -> list[Op]:
    """A serial run against a perfect FIFO queue, some answers lost (info) after taking effect."""
    ops: list[Op] = []
    queue: list[tuple[str, str]] = []
    counts: dict[str, int] = {}
    t, n = 0.0, 0
    for _ in range(draw(st.integers(0, 30))):
        t += draw(st.floats(0.01, 1.0))
        end = t + draw(st.floats(0.01, 1.0))
        topic = draw(st.sampled_from(["t1", "t2"]))
        if draw(st.booleans()):
            n += 1
            mid = f"m{n}"
            queue.append((topic, mid))
            ops.append(push(mid, t, end, draw(st.sampled_from(["ok", "ok", "info"])), topic=topic))
        else:
            ready = [m for m in queue if m[0] == topic]
            if ready:
                queue.remove(ready[0])
                mid = ready[0][1]
                counts[mid] = counts.get(mid, 0) + 1
                ops.append(pop(mid, t, end, count=counts[mid], topic=topic))
            else:
                ops.append(pop(None, t, end, topic=topic))
        t = end
    for topic, mid in queue:  # the final drain
        t += 1
        counts[mid] = counts.get(mid, 0) + 1
        ops.append(pop(mid, t, t + 0.1, count=counts[mid], topic=topic, final=True))
    return ops


@settings(max_examples=150, deadline=None)
@given(fifo_histories())
def test_queue_property_fifo_histories_are_valid(ops: list[Op]) -> None:
    verdict = check_queue(ops)
    assert verdict.valid, verdict.violations


@settings(max_examples=100, deadline=None)
@given(fifo_histories(), st.data())
def test_queue_property_a_dropped_delivery_is_caught(ops: list[Op], data: st.DataObject) -> None:
    delivered = [o for o in ops if o.f == "pop" and o.result and "message_id" in o.result]
    pushed_ok = {o.args["message_id"] for o in ops if o.f == "push" and o.type == "ok"}
    candidates = [o for o in delivered if o.result and o.result["message_id"] in pushed_ok]
    if not candidates:
        return
    victim = data.draw(st.sampled_from(candidates))
    verdict = check_queue([o for o in ops if o is not victim])
    assert "lost" in kinds(verdict)


# --- cache -------------------------------------------------------------------------------------------------


def set_(
    value: str,
    invoke: float,
    complete: float,
    type: str = "ok",
    *,
    key: str = "k",
    version: Any = None,
    process: int = 0,
) -> Op:
    result = {"key": key, "version": version if version is not None else f"v-{value}"} if type == "ok" else None
    return op("cache", "set", invoke, complete, type, process=process, args={"key": key, "value": value}, result=result)


def get(
    value: str | None,
    invoke: float,
    complete: float,
    type: str = "ok",
    *,
    key: str = "k",
    version: Any = None,
    node: str = "n1",
    final: bool = False,
    process: int = 0,
) -> Op:
    args: dict[str, Any] = {"key": key}
    if final:
        args["final"] = True
    result: dict[str, Any] | None = None
    if type == "ok":
        result = (
            {"found": False}
            if value is None
            else {"key": key, "value": value, "version": version if version is not None else f"v-{value}", "node": node}
        )
    return op("cache", "get", invoke, complete, type, process=process, node=node, args=args, result=result)


def test_cache_empty_history_is_valid() -> None:
    verdict = check_cache([])
    assert verdict.valid and verdict.workload == "cache" and verdict.stats["keys"] == 0


def test_cache_valid_history_and_stats() -> None:
    ops = [
        set_("1", 0, 1),
        get("1", 2, 3),
        set_("2", 4, 5),
        get(None, 5.5, 6),
        get("2", 6, 7),
        set_("3", 8, 9, "info"),
        set_("4", 8, 9, "fail"),
        get(None, 10, 11, "info"),
        get("2", 12, 13, final=True),
        get("2", 12, 13, node="n2", final=True),
        set_("x", 0, 1, key="other"),
    ]
    verdict = check_cache(ops)
    assert verdict.valid, verdict.violations
    stats = verdict.stats
    assert (stats["set_ok"], stats["set_info"], stats["set_fail"]) == (3, 1, 1)
    assert (stats["get_hit"], stats["get_miss"], stats["get_info"], stats["final_reads"]) == (4, 1, 1, 2)
    assert stats["keys"] == 2 and stats["stale_reads"] == 0


def test_cache_stale_read_is_caught() -> None:
    ops = [set_("1", 0, 1), set_("2", 2, 3, process=2), get("1", 4, 5, process=3, node="n3")]
    verdict = check_cache(ops)
    assert kinds(verdict) == {"stale read"} and verdict.stats["stale_reads"] == 1
    line = verdict.violations[0]
    assert "p3 get ok @n3" in line and "value=1" in line and "p2 set ok" in line


def test_cache_reads_that_may_be_current_are_not_stale() -> None:
    # concurrent writes: either may win
    assert check_cache([set_("1", 0, 3), set_("2", 2, 4), get("1", 5, 6)]).valid
    # the newer write had not been acknowledged when the read began
    assert check_cache([set_("1", 0, 1), set_("2", 2, 5), get("1", 3, 6)]).valid
    # an unknown write of the value read may have landed at any time
    assert check_cache([set_("1", 0, 1, "info"), set_("2", 2, 3), get("1", 4, 5)]).valid
    # misses are always allowed
    assert check_cache([set_("1", 0, 1), get(None, 2, 3), set_("2", 4, 5), get(None, 6, 7)]).valid


def test_cache_stale_read_per_key() -> None:
    ops = [set_("1", 0, 1, key="a"), set_("2", 2, 3, key="b"), get("1", 4, 5, key="a")]
    assert check_cache(ops).valid


def test_cache_phantom_values_are_caught() -> None:
    assert kinds(check_cache([set_("1", 0, 1), get("9", 2, 3)])) == {"phantom read"}
    assert kinds(check_cache([set_("1", 0, 1, key="a"), get("1", 2, 3, key="b")])) == {"phantom read"}
    failed = check_cache([set_("1", 0, 1, "fail"), get("1", 2, 3)])
    assert kinds(failed) == {"phantom read"} and "failed set" in failed.violations[0]
    early = check_cache([get("1", 0, 1), set_("1", 2, 3, "info")])
    assert kinds(early) == {"phantom read"} and "before its set began" in early.violations[0]
    assert early.stats["phantom_reads"] == 1


def test_cache_version_mismatch_is_caught() -> None:
    verdict = check_cache([set_("1", 0, 1, version=[3, "n1"]), get("1", 2, 3, version=[4, "n2"])])
    assert kinds(verdict) == {"version mismatch"} and verdict.stats["version_mismatches"] == 1
    assert check_cache([set_("1", 0, 1, version=[3, "n1"]), get("1", 2, 3, version=[3, "n1"])]).valid
    assert check_cache([set_("1", 0, 1, "info"), get("1", 2, 3, version="anything")]).valid


def test_cache_divergence_after_healing_is_caught() -> None:
    ops = [
        set_("1", 0, 1),
        set_("2", 2, 3),
        get("1", 10, 11, node="n3", final=True),
        get("2", 10, 11, node="n1", final=True),
    ]
    verdict = check_cache(ops)
    assert "diverged" in kinds(verdict) and verdict.stats["diverged_keys"] == 1
    assert any(line.startswith("diverged: key k") and "@n3" in line for line in verdict.violations)


def test_cache_final_reads_may_differ_by_a_late_landing_write() -> None:
    ops = [
        set_("1", 0, 1),
        set_("2", 2, 3, "info"),
        get("1", 10, 11, node="n3", final=True),
        get("2", 10, 11, node="n1", final=True),
    ]
    assert check_cache(ops).valid
    # ... and a final miss is fine too
    assert check_cache([set_("1", 0, 1), get("1", 10, 11, final=True), get(None, 10, 11, final=True)]).valid


@st.composite
def register_histories(draw: st.DrawFn) -> list[Op]:
    """A serial run against a perfect register per key, with misses and unknown outcomes."""
    ops: list[Op] = []
    current: dict[str, str] = {}
    t, n = 0.0, 0
    for _ in range(draw(st.integers(0, 30))):
        t += draw(st.floats(0.01, 1.0))
        end = t + draw(st.floats(0.01, 1.0))
        key = draw(st.sampled_from(["a", "b"]))
        choice = draw(st.sampled_from(["set", "set-info", "set-fail", "get", "miss"]))
        if choice.startswith("set"):
            n += 1
            kind = {"set": "ok", "set-info": "info", "set-fail": "fail"}[choice]
            if kind != "fail":
                current[key] = str(n)
            ops.append(set_(str(n), t, end, kind, key=key))
        elif choice == "get" and key in current:
            ops.append(get(current[key], t, end, key=key))
        else:
            ops.append(get(None, t, end, key=key))
        t = end
    for key, value in current.items():
        for node in ("n1", "n2", "n3"):
            ops.append(get(value, t + 1, t + 2, key=key, node=node, final=True))
    return ops


@settings(max_examples=150, deadline=None)
@given(register_histories())
def test_cache_property_register_histories_are_valid(ops: list[Op]) -> None:
    verdict = check_cache(ops)
    assert verdict.valid, verdict.violations


# --- all ---------------------------------------------------------------------------------------------------


def test_check_all_runs_each_checker_on_its_workload_with_the_faults() -> None:
    history = History(
        meta={"seed": 1},
        ops=[acq("a", 11, 12, 1, node="n3"), push("m", 0, 1), pop("m", 2, 3), set_("1", 0, 1), get("1", 2, 3)],
        faults=[partition(10, 20)],
    )
    verdicts = check_all(history)
    assert [v.workload for v in verdicts] == ["locks", "queue", "cache"]
    assert kinds(verdicts[0]) == {"minority grant"}
    assert verdicts[1].valid and verdicts[2].valid
    assert verdicts[1].stats["delivered"] == 1 and verdicts[2].stats["get_hit"] == 1


def test_check_all_takes_max_deliveries_from_the_meta() -> None:
    ops = [push("a", 0, 1), *(pop(None, 2 + i, 3 + i, "info") for i in range(3))]
    assert not check_all(History(ops=ops))[1].valid
    assert check_all(History(meta={"max_deliveries": 3}, ops=ops))[1].valid


def test_check_all_on_an_empty_history() -> None:
    assert all(v.valid for v in check_all(History()))


def test_checkers_scale_to_large_histories() -> None:
    n = 40_000
    locks = [
        o
        for i in range(n)
        for o in (
            acq(f"c{i}", 3 * i, 3 * i + 1, i + 1, r=f"r{i % 7}", ttl=30),
            rel(f"c{i}", 3 * i + 1.5, 3 * i + 2, r=f"r{i % 7}"),
        )
    ]
    queue = [push(f"m{i}", i, i + 0.5) for i in range(n)] + [pop(f"m{i}", n + i, n + i + 0.5) for i in range(n)]
    cache = [
        o
        for i in range(n)
        for o in (
            set_(str(i), 2 * i, 2 * i + 0.5, key=f"k{i % 5}"),
            get(str(i), 2 * i + 1, 2 * i + 1.5, key=f"k{i % 5}"),
        )
    ]
    faults = [partition(1000 * j, 1000 * j + 500) for j in range(50)]
    began = time.perf_counter()
    verdicts = [check_locks(locks, faults), check_queue(queue), check_cache(cache)]
    assert all(v.valid for v in verdicts), [v.violations[:3] for v in verdicts]
    assert time.perf_counter() - began < 30
