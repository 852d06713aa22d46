"""The keepers of sessions, semaphores and elections: a grant that waited in line is not taken for lost."""

from __future__ import annotations

import asyncio
import threading
import time

from rakit.client.aio_keepers import TaskKeeper
from rakit.client.errors import NotHolder
from rakit.client.keepers import ThreadKeeper


def test_a_grant_after_a_long_wait_is_confirmed_at_once_not_lost():
    budgets: list[float] = []
    renewed, lost = threading.Event(), threading.Event()

    def renew(budget: float) -> None:
        budgets.append(budget)
        renewed.set()

    keeper = ThreadKeeper("x", 3.0, renew, (NotHolder,), lambda cause: lost.set())
    began = time.monotonic()
    keeper.start(began - 10.0)  # asked 10 s ago, answered now: the lease start is unknown
    try:
        assert renewed.wait(2.0) and time.monotonic() - began < 0.9  # at once, not after ttl / 3
        assert budgets[0] == keeper.interval and not lost.is_set()
        assert keeper.expires_at > time.monotonic()
    finally:
        keeper.stop(2.0)


def test_a_prompt_grant_renews_after_the_interval():
    budgets: list[float] = []
    keeper = ThreadKeeper("x", 3.0, budgets.append, (NotHolder,), lambda cause: None)
    began = time.monotonic()
    keeper.start(began)
    try:
        deadline = began + 5.0
        while not budgets and time.monotonic() < deadline:
            time.sleep(0.02)
        assert budgets and time.monotonic() - began >= keeper.interval
        assert 0 < budgets[0] <= 3.0 - keeper.interval + 0.1  # held to what is left of the lease
    finally:
        keeper.stop(2.0)


def test_the_task_keeper_confirms_a_waited_grant_at_once():
    async def main() -> list[float]:
        budgets: list[float] = []

        async def renew(budget: float) -> None:
            budgets.append(budget)

        keeper = TaskKeeper("x", 3.0, renew, (NotHolder,), lambda cause: None)
        keeper.start(time.monotonic() - 10.0)
        for _ in range(100):
            if budgets:
                break
            await asyncio.sleep(0.01)
        await keeper.stop()
        return budgets

    budgets = asyncio.run(main())
    assert budgets and budgets[0] == 1.0
