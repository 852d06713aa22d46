"""The semaphore and election checkers: valid histories (with unknown outcomes and lapsing leases)
pass, each kind of bad history is caught.  One test (or more) per rule of each module."""

from __future__ import annotations

from typing import Any

from rakit.chaos.checkers import check_all, check_elections, check_semaphores
from rakit.chaos.history import History, Op, Verdict


def op(
    workload: str,
    f: str,
    invoke: float,
    complete: float,
    type: str = "ok",
    *,
    process: int = 0,
    args: dict[str, Any] | None = None,
    result: dict[str, Any] | None = None,
) -> Op:
    return Op(workload, process, f, "n1", invoke, complete, type, args or {}, result)


def kinds(verdict: Verdict) -> set[str]:
    return {line.split(":", 1)[0] for line in verdict.violations}


# --- semaphores --------------------------------------------------------------------------------------------


def sacq(
    client: str,
    invoke: float,
    complete: float,
    token: int | None = None,
    *,
    type: str = "ok",
    permits: int = 1,
    limit: int = 2,
    available: int | None = None,
    ttl: float = 10.0,
    name: str = "s",
) -> Op:
    args = {"name": name, "client_id": client, "limit": limit, "permits": permits, "ttl": ttl, "timeout": 1}
    result = None
    if type == "ok":
        result = {
            "acquired": True,
            "name": name,
            "client_id": client,
            "permits": permits,
            "limit": limit,
            "available": 0 if available is None else available,
            "fencing_token": token,
        }
    return op("semaphores", "acquire", invoke, complete, type, args=args, result=result)


def srel(client: str, invoke: float, complete: float, type: str = "ok", name: str = "s") -> Op:
    result = {"released": True, "permits": 1} if type == "ok" else {"error": "not_holder"}
    return op("semaphores", "release", invoke, complete, type, args={"name": name, "client_id": client}, result=result)


def srenew(client: str, invoke: float, complete: float, type: str = "ok", ttl: float = 10.0) -> Op:
    result = {"renewed": True, "ttl": ttl} if type == "ok" else None
    return op(
        "semaphores",
        "renew",
        invoke,
        complete,
        type,
        args={"name": "s", "client_id": client, "ttl": ttl},
        result=result,
    )


def status(
    invoke: float, complete: float, holders: list[tuple[str, int]], limit: int | None = 2, available: int | None = None
) -> Op:
    held = sum(p for _, p in holders)
    result = {
        "name": "s",
        "limit": limit,
        "available": (limit - held if limit is not None else 0) if available is None else available,
        "holders": [{"client_id": c, "permits": p, "fencing_token": 1} for c, p in holders],
        "waiters": [],
    }
    return op("semaphores", "status", invoke, complete, args={"name": "s"}, result=result)


def test_semaphore_holds_within_the_limit_pass() -> None:
    ops = [
        sacq("a", 0.0, 0.1, 1),
        sacq("b", 0.0, 0.2, 2),
        srel("a", 1.0, 1.1),
        sacq("c", 1.05, 1.2, 3),  # a's release was sent at 1.0: c may hold from 1.2
        srel("b", 2.0, 2.1),
        srel("c", 2.0, 2.1),
    ]
    verdict = check_semaphores(ops)
    assert verdict.valid, verdict.violations
    assert verdict.stats["holds"] == 3 and verdict.stats["peak_permits"] == 2


def test_rule1_capacity_exceeded_is_flagged() -> None:
    ops = [sacq("a", 0.0, 0.1, 1), sacq("b", 0.0, 0.2, 2), sacq("c", 0.3, 0.4, 3), srel("a", 2, 2.1)]
    verdict = check_semaphores(ops)
    assert kinds(verdict) == {"capacity"}
    assert verdict.stats["capacity_violations"] == 1 and verdict.stats["peak_permits"] == 3


def test_rule1_permits_count_not_holders() -> None:
    ops = [sacq("a", 0.0, 0.1, 1, permits=2, limit=3), sacq("b", 0.2, 0.3, 2, permits=2, limit=3)]
    assert kinds(check_semaphores(ops)) == {"capacity"}


def test_rule1_a_lapsed_lease_frees_its_permits() -> None:
    # a holds with ttl 2 and never releases: its permit may be gone from 0.0 + 2 = 2.0
    ops = [sacq("a", 0.0, 0.1, 1, ttl=2), sacq("b", 0.0, 0.1, 2, ttl=2), sacq("c", 2.0, 2.1, 3, ttl=2)]
    assert check_semaphores(ops).valid
    ops[2] = sacq("c", 1.9, 2.0, 3, ttl=2)  # but not before 2.0 (answered at 2.0, the lease still on until 2.0)
    assert check_semaphores(ops).valid
    ops[2] = sacq("c", 1.5, 1.6, 3, ttl=2)
    assert kinds(check_semaphores(ops)) == {"capacity"}


def test_rule1_renews_extend_the_hold_and_a_refused_renew_ends_it() -> None:
    base = [sacq("a", 0.0, 0.1, 1, ttl=2), sacq("b", 0.0, 0.1, 2, ttl=2), srenew("a", 1.5, 1.6, ttl=2)]
    # a renewed at 1.5: it holds until 3.5, b until 2.0; c at 2.5 makes 2 of 2
    assert check_semaphores([*base, sacq("c", 2.4, 2.5, 3, ttl=2)]).valid
    # but b renewed too: three holders at 2.5
    extended = [*base, srenew("b", 1.5, 1.6, ttl=2), sacq("c", 2.4, 2.5, 3, ttl=2)]
    assert kinds(check_semaphores(extended)) == {"capacity"}
    # b's renew refused (not_holder): b may have lost its permit from the renew on
    refused = [*base, srenew("b", 1.5, 1.6, type="fail", ttl=2), sacq("c", 2.4, 2.5, 3, ttl=2)]
    assert check_semaphores(refused).valid


def test_rule1_unknown_outcomes_never_make_a_violation() -> None:
    ops = [
        sacq("a", 0.0, 0.1, 1),
        sacq("b", 0.0, 2.0, type="info"),  # may hold: not known to, so not counted
        sacq("c", 0.0, 0.3, 2),
        srel("c", 0.5, 2.5, type="info"),  # the release was sent at 0.5: c stops using it there
        sacq("d", 0.6, 0.7, 3),
        srel("a", 1.0, 1.1, type="fail"),  # a's release refused: a stopped at its invoke all the same
        sacq("e", 1.05, 1.2, 4),
        srenew("d", 1.0, 3.0, type="info", ttl=0.5),  # may have cut d's lease to 0.5 from 1.0
        sacq("f", 1.6, 1.7, 5),
    ]
    verdict = check_semaphores(ops)
    assert verdict.valid, verdict.violations


def test_rule1_a_clients_own_holds_count_once() -> None:
    ops = [sacq("a", 0.0, 0.1, 1), sacq("a", 0.5, 0.6, 1), srenew("a", 0.7, 0.8), sacq("b", 0.0, 0.1, 2)]
    assert check_semaphores(ops).valid


def test_rule2_tokens_going_down_or_repeated_are_flagged() -> None:
    down = [sacq("a", 0.0, 0.1, 5), srel("a", 0.2, 0.3), sacq("b", 0.4, 0.5, 4)]
    assert kinds(check_semaphores(down)) == {"fencing"}
    assert "went backwards" in check_semaphores(down).violations[0]
    repeated = [sacq("a", 0.0, 0.1, 5), sacq("b", 0.4, 0.5, 5)]
    assert "repeated" in check_semaphores(repeated).violations[0]


def test_rule2_idempotent_reacquire_and_concurrent_grants_pass() -> None:
    ops = [sacq("a", 0.0, 0.1, 5), sacq("a", 0.2, 0.3, 5), sacq("b", 0.0, 0.5, 4)]  # b overlaps a's first
    assert check_semaphores(ops).valid
    # a's idempotent re-acquire answers its old token 5 after b was granted 6
    later = [sacq("a", 0.0, 0.1, 5), sacq("b", 0.2, 0.3, 6), sacq("a", 0.4, 0.5, 5), sacq("c", 0.6, 0.7, 4)]
    assert kinds(check_semaphores(later)) == {"fencing", "capacity"}
    assert check_semaphores(later[:3]).valid


def test_rule3_status_snapshots_over_the_limit_or_miscounted_are_flagged() -> None:
    assert check_semaphores([status(0, 0.1, [("a", 1), ("b", 1)])]).valid
    assert kinds(check_semaphores([status(0, 0.1, [("a", 2), ("b", 1)])])) == {"snapshot"}
    assert kinds(check_semaphores([status(0, 0.1, [("a", 1)], available=0)])) == {"snapshot"}
    assert check_semaphores([status(0, 0.1, [], limit=None)]).valid
    assert kinds(check_semaphores([status(0, 0.1, [("a", 1)], limit=None)])) == {"snapshot"}
    assert check_semaphores([status(0, 0.1, [], limit=None), status(0.2, 0.3, [], limit=2)]).valid


def test_rule3_a_grant_answer_leaving_too_much_available_is_flagged() -> None:
    assert check_semaphores([sacq("a", 0, 0.1, 1, limit=3, available=2)]).valid
    assert kinds(check_semaphores([sacq("a", 0, 0.1, 1, limit=3, available=3)])) == {"snapshot"}
    assert kinds(check_semaphores([sacq("a", 0, 0.1, 1, limit=3, available=-1)])) == {"snapshot"}


# --- elections ---------------------------------------------------------------------------------------------


def camp(
    cand: str, invoke: float, complete: float, term: int | None = None, *, type: str = "ok", ttl: float = 10.0
) -> Op:
    args = {"name": "e", "candidate_id": cand, "value": cand, "ttl": ttl, "timeout": 1}
    result = {"elected": True, "name": "e", "leader": cand, "value": cand, "term": term} if type == "ok" else None
    return op("elections", "campaign", invoke, complete, type, args=args, result=result)


def resign(cand: str, invoke: float, complete: float, type: str = "ok") -> Op:
    return op(
        "elections",
        "resign",
        invoke,
        complete,
        type,
        args={"name": "e", "candidate_id": cand},
        result={"resigned": True} if type == "ok" else None,
    )


def erenew(cand: str, invoke: float, complete: float, type: str = "ok", ttl: float = 10.0) -> Op:
    return op(
        "elections",
        "renew",
        invoke,
        complete,
        type,
        args={"name": "e", "candidate_id": cand, "ttl": ttl},
        result={"renewed": True, "ttl": ttl} if type == "ok" else None,
    )


def observe(process: int, invoke: float, after: int, term: int | None, changed: bool) -> Op:
    result = {"name": "e", "leader": None, "value": None, "term": term, "changed": changed}
    return op(
        "elections",
        "observe",
        invoke,
        invoke + 0.1,
        process=process,
        args={"name": "e", "after_term": after, "timeout": 1},
        result=result,
    )


def test_successive_leaders_pass() -> None:
    ops = [
        camp("a", 0.0, 0.1, 1),
        erenew("a", 0.5, 0.6),
        resign("a", 1.0, 1.1),
        camp("b", 0.2, 1.05, 2),  # waited in line, elected when a resigned
        camp("c", 1.2, 1.3, type="info"),  # unknown: not counted as a leader
        resign("b", 2.0, 2.1),
        camp("d", 2.05, 2.2, 4),
    ]
    verdict = check_elections(ops)
    assert verdict.valid, verdict.violations
    assert verdict.stats["leaderships"] == 3


def test_rule1_two_overlapping_leaders_are_flagged() -> None:
    verdict = check_elections([camp("a", 0.0, 0.1, 1), camp("b", 0.5, 0.6, 2)])
    assert kinds(verdict) == {"two leaders"}
    assert verdict.stats["two_leader_violations"] == 1


def test_rule1_a_lapsed_leadership_lets_the_next_leader_in() -> None:
    ops = [camp("a", 0.0, 0.1, 1, ttl=2), camp("b", 2.0, 2.1, 2, ttl=2)]
    assert check_elections(ops).valid
    renewed = [camp("a", 0.0, 0.1, 1, ttl=2), erenew("a", 1.0, 1.1, ttl=2), camp("b", 2.0, 2.1, 2, ttl=2)]
    assert kinds(check_elections(renewed)) == {"two leaders"}
    lost = [camp("a", 0.0, 0.1, 1, ttl=2), erenew("a", 1.0, 1.1, type="fail", ttl=2), camp("b", 1.5, 1.6, 2)]
    assert check_elections(lost).valid  # refused renew (not_leader): a was no longer leader by 1.0
    unknown = [camp("a", 0.0, 0.1, 1, ttl=2), erenew("a", 1.0, 3.0, type="info", ttl=2), camp("b", 2.0, 2.1, 2)]
    assert check_elections(unknown).valid  # the renew may have come after b's grant: not known to extend


def test_rule2_terms_going_back_or_repeated_are_flagged() -> None:
    back = [camp("a", 0.0, 0.1, 5), resign("a", 0.2, 0.3), camp("b", 0.4, 0.5, 3)]
    verdict = check_elections(back)
    assert kinds(verdict) == {"terms"} and "term went backwards" in verdict.violations[0]
    same = [camp("a", 0.0, 0.1, 5), resign("a", 0.2, 0.3), camp("b", 0.4, 0.5, 5)]
    assert "term repeated" in check_elections(same).violations[0]
    again = [camp("a", 0.0, 0.1, 5), camp("a", 0.2, 0.3, 5)]  # campaigning again while leader
    assert check_elections(again).valid


def test_rule3_observers_never_see_a_term_go_back() -> None:
    good = [observe(7, 0.0, 0, 1, True), observe(7, 0.2, 1, 1, False), observe(7, 0.4, 1, 3, True)]
    assert check_elections(good).valid
    assert check_elections([*good, observe(8, 0.6, 0, 2, True)]).valid  # another observer, own order
    back = [*good, observe(7, 0.6, 3, 2, False)]
    verdict = check_elections(back)
    assert kinds(verdict) == {"observer"} and "went back from 3 to 2" in verdict.violations[0]
    assert kinds(check_elections([*good, observe(7, 0.6, 3, None, False)])) == {"observer"}


def test_rule3_a_change_at_or_below_after_term_is_flagged() -> None:
    assert kinds(check_elections([observe(7, 0.0, 4, 4, True)])) == {"observer"}
    assert kinds(check_elections([observe(7, 0.0, 4, None, True)])) == {"observer"}
    assert check_elections([observe(7, 0.0, 4, 4, False)]).valid


# --- wiring --------------------------------------------------------------------------------------------------


def test_check_all_adds_the_coordination_verdicts_when_chosen_or_recorded() -> None:
    assert [v.workload for v in check_all(History())] == ["locks", "queue", "cache"]
    chosen = History(meta={"workloads": ["locks", "elections"]})
    assert [v.workload for v in check_all(chosen)] == ["locks", "queue", "cache", "elections"]
    recorded = History(ops=[sacq("a", 0.0, 0.1, 1), sacq("b", 0.0, 0.1, 2), sacq("c", 0.2, 0.3, 3)])
    verdicts = check_all(recorded)
    assert [v.workload for v in verdicts] == ["locks", "queue", "cache", "semaphores"]
    assert not verdicts[-1].valid
