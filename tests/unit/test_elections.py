"""Leader election (statemachines/elections.py): one test per rule of its docstring."""

from __future__ import annotations

from typing import Any

from rakit.statemachines.elections import (
    Campaign,
    CandidateWaiting,
    Elected,
    ElectionExpire,
    ElectionExpired,
    ElectionRenew,
    ElectionRenewed,
    ElectionTable,
    NotLeader,
    Proclaim,
    Proclaimed,
    Resign,
    Resigned,
    Withdraw,
    Withdrawn,
)
from rakit.statemachines.holds import Refused, Stale


class Log:
    def __init__(self) -> None:
        self.table = ElectionTable()
        self.index = 0

    def __call__(self, command: Any) -> Any:
        self.index += 1
        return self.table.apply(self.index, command)

    def campaign(self, who: str, value: bytes = b'"v"', *, ttl: float = 10, wait: float = 0) -> Any:
        return self(Campaign("e", who, value or f'"{who}"'.encode(), ttl, wait))


def test_rule_1_one_leader_the_head_candidate() -> None:
    log = Log()
    assert isinstance(log.campaign("a"), Elected)
    assert log.campaign("b", wait=5) == CandidateWaiting("e", "b", 0)
    assert log.campaign("c", wait=5) == CandidateWaiting("e", "c", 1)
    assert log.table.leader("e")["leader"] == "a"
    resigned = log(Resign("e", "a"))
    assert [g.holder for g in resigned.grants] == ["b"]


def test_rule_2_terms_increase_and_a_vacancy_is_an_event() -> None:
    log = Log()
    assert log.campaign("a").term == 1
    log(Resign("e", "a"))  # 2: vacant
    assert log.table.observe("e") == {"name": "e", "leader": None, "value": None, "term": 2}
    assert log.campaign("b").term == 3


def test_rule_3_campaign_idempotent_while_leader_conflict_without_wait() -> None:
    log = Log()
    log.campaign("a", b"1")
    assert log.campaign("a", b"2", ttl=30) == Elected("e", "a", b"1", 1, 30.0, 2, again=True)
    assert log.campaign("b") == Refused("conflict")
    log.campaign("b", wait=5)
    assert log.campaign("b", b"9", wait=7) == CandidateWaiting("e", "b", 0)
    log(Resign("e", "a"))
    assert log.table.observe("e")["value"] == b"9"


def test_rule_4_renew_only_by_the_leader() -> None:
    log = Log()
    log.campaign("a")
    log.campaign("b", wait=5)
    assert log(ElectionRenew("e", "b", 5)) == NotLeader("e", "b")
    assert log(ElectionRenew("e", "a", 5)) == ElectionRenewed("e", "a", 5.0, 4)


def test_rule_5_proclaim_needs_the_leader_with_its_term() -> None:
    log = Log()
    log.campaign("a", b"1")
    assert log(Proclaim("e", "a", 7, b"2")) == NotLeader("e", "a")
    assert log(Proclaim("e", "b", 1, b"2")) == NotLeader("e", "b")
    assert log(Proclaim("e", "a", 1, b"2")) == Proclaimed("e", 1, b"2")
    assert log.table.observe("e") == {"name": "e", "leader": "a", "value": b"2", "term": 1}


def test_rule_6_resign_elects_the_next_in_the_same_command() -> None:
    log = Log()
    log.campaign("a")
    log.campaign("b", wait=5)
    log.campaign("c", wait=5)
    assert log(Resign("e", "c")) == Resigned("e", "c", False, [], [])  # a candidate withdraws
    resigned = log(Resign("e", "a"))  # 5
    assert resigned.was_leader and [(g.holder, g.token) for g in resigned.grants] == [("b", 5)]
    assert log(Resign("e", "zz")) == NotLeader("e", "zz")
    assert log.table.leader("e")["candidates"] == []


def test_rule_7_withdraw_on_timeout() -> None:
    log = Log()
    log.campaign("a")
    log.campaign("b", wait=5)
    assert log(Withdraw("e", "b")) == Withdrawn("e", "b", True, None, [])
    log.campaign("c", wait=5)  # 4
    log(Resign("e", "a"))  # 5: c elected
    late = log(Withdraw("e", "c"))
    assert late.was_candidate is False and late.leading is not None and late.leading.term == 5


def test_rule_8_expire_by_lease_stamp_elects_the_next() -> None:
    log = Log()
    log.campaign("a")
    log.campaign("b", wait=5)
    log(ElectionRenew("e", "a", 10))  # 3
    assert log(ElectionExpire("e", "a", 1)) == Stale("e", "a")
    expired = log(ElectionExpire("e", "a", 3))  # 5
    assert isinstance(expired, ElectionExpired) and expired.term == 1
    assert log.table.observe("e")["leader"] == "b" and log.table.observe("e")["term"] == 5


def test_rule_9_malformed_commands_are_invalid() -> None:
    log = Log()
    assert log.campaign("a", ttl=0).code == "invalid"
    assert log.campaign("a", wait=-1).code == "invalid"
    log.campaign("a")
    assert log(ElectionRenew("e", "a", float("inf"))).code == "invalid"


def test_rule_10_reads() -> None:
    log = Log()
    assert log.table.leader("e") == {"name": "e", "leader": None, "value": None, "term": None, "candidates": []}
    log.campaign("a", b"1")
    log.campaign("b", wait=5)
    assert log.table.leader("e") == {"name": "e", "leader": "a", "value": b"1", "term": 1, "candidates": ["b"]}


def test_rule_11_snapshot_round_trip() -> None:
    log = Log()
    log.campaign("a", b"1")
    log.campaign("b", wait=5)
    data = log.table.snapshot()
    twin = ElectionTable()
    twin.restore(data)
    assert twin.snapshot() == data
    assert twin.apply(9, Resign("e", "a")) == log.table.apply(9, Resign("e", "a"))


def test_rule_12_holder_secrets() -> None:
    log = Log()
    mine = "a-secret-0123456789"
    elected = log(Campaign("e", "a", b'"v"', 10, 0, secret=mine))
    assert isinstance(elected, Elected)
    log(Campaign("e", "b", b'"w"', 10, 5, secret="b-secret-0123456789"))
    wrong = "wrong-secret-012345"
    assert log(ElectionRenew("e", "a", 5, secret=wrong)) == NotLeader("e", "a")
    assert log(Proclaim("e", "a", elected.term, b'"x"')) == NotLeader("e", "a")
    assert log(Resign("e", "a", secret=wrong)) == NotLeader("e", "a")
    assert log(Resign("e", "b")) == NotLeader("e", "b")
    withdrawn = log(Withdraw("e", "b", secret=wrong))
    assert isinstance(withdrawn, Withdrawn) and not withdrawn.was_candidate
    refused = log(Campaign("e", "a", b'"v"', 10, 0))
    assert isinstance(refused, Refused) and refused.code == "conflict"
    assert log.table.leader("e")["leader"] == "a" and log.table.leader("e")["candidates"] == ["b"]
    assert "secret" not in str(log.table.leader("e"))
    resigned = log(Resign("e", "a", secret=mine))
    assert isinstance(resigned, Resigned) and [g.holder for g in resigned.grants] == ["b"]
    lease = log.table.book.get("e").holders[0].lease  # type: ignore[union-attr]
    expired = log(ElectionExpire("e", "b", lease))  # the leader's timer needs no secret
    assert isinstance(expired, ElectionExpired) and log.table.leader("e")["leader"] is None
