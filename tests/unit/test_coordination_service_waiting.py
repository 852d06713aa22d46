"""``CoordinationService._waiting``: a grant seen while a waiting command is proposed belongs to that command only
if the machine queued it; a refused command answers its refusal, whatever else was granted meanwhile."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rakit.errors import Conflict
from rakit.node.coordination_service import CoordinationService
from rakit.statemachines import elections as EL
from rakit.statemachines import semaphores as SM
from rakit.statemachines.coordination import CoordinationMachine
from rakit.statemachines.holds import Grant, Refused


class Codec:
    @staticmethod
    def encode(command: Any) -> Any:
        return command


class DriverThatGrantsMeanwhile:
    """Answers each proposal with ``answer`` after applying an entry that grants ``granted`` to the same holder."""

    is_leader = True

    def __init__(self, answer: Any, granted: Grant) -> None:
        self.answer = answer
        self.granted = granted
        self.listeners: list[Any] = []

    def add_apply_listener(self, listener: Any) -> None:
        self.listeners.append(listener)

    def add_role_listener(self, listener: Any) -> None:
        pass

    async def propose(self, command: Any) -> Any:
        released = SM.SemReleased(self.granted.name, "someone-else", 1, [self.granted], [])
        for listener in self.listeners:
            listener(None, released)
        return self.answer

    async def read_barrier(self) -> None:
        pass


def service(answer: Any, granted: Grant) -> CoordinationService:
    return CoordinationService(DriverThatGrantsMeanwhile(answer, granted), CoordinationMachine(), Codec(), None)  # type: ignore[arg-type]


def test_a_refused_acquire_does_not_take_a_grant_made_to_the_same_holder_meanwhile():
    grant = Grant("semaphore", "gpu", "w1", 1, token=7, ttl=10.0, lease=1)
    refused = Refused("limit_mismatch", "the limit is 4", limit=4)
    coordination = service(refused, grant)
    with pytest.raises(Conflict) as raised:
        asyncio.run(coordination.acquire(SM.SemAcquire("gpu", "w1", limit=2, permits=1, ttl=10.0, wait=5.0)))
    assert raised.value.code == "limit_mismatch"


def test_a_refused_campaign_does_not_take_an_election_won_by_the_same_candidate_meanwhile():
    grant = Grant("election", "sched", "c1", 1, token=3, ttl=10.0, lease=1)
    coordination = service(Refused("conflict", "c1 campaigns with another value"), grant)
    with pytest.raises(Conflict) as raised:
        asyncio.run(coordination.campaign(EL.Campaign("sched", "c1", b"{}", ttl=10.0, wait=5.0)))
    assert raised.value.code == "conflict"


def test_a_queued_acquire_granted_before_its_answer_is_read_answers_with_that_grant():
    grant = Grant("semaphore", "gpu", "w1", 1, token=7, ttl=10.0, lease=1)
    coordination = service(SM.SemWaiting("gpu", "w1", permits=1, position=1), grant)
    granted = asyncio.run(coordination.acquire(SM.SemAcquire("gpu", "w1", limit=2, permits=1, ttl=10.0, wait=5.0)))
    assert (granted.client_id, granted.token) == ("w1", 7)
