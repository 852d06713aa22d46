"""A follower's read-index requests are shared, but never by a read that began after one was sent."""

from __future__ import annotations

import asyncio

from rakit.errors import Unavailable
from rakit.node.read_index import ReadIndexBatch


class ScriptedBatch(ReadIndexBatch):
    """Each request waits for the test to answer it; the answer is the request's number."""

    def __init__(self) -> None:
        super().__init__(runtime=None)  # type: ignore[arg-type]
        self.asked: list[asyncio.Future[int]] = []

    async def _ask(self) -> int:
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.asked.append(answer)
        return await answer


async def until(predicate, timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0)


async def test_reads_that_arrive_together_share_one_request() -> None:
    batch = ScriptedBatch()
    reads = [asyncio.create_task(batch.index()) for _ in range(10)]
    await until(lambda: len(batch.asked) == 1)
    batch.asked[0].set_result(7)
    assert await asyncio.gather(*reads) == [7] * 10
    assert batch.requests == 1


async def test_a_read_that_arrives_while_a_request_is_in_flight_waits_for_the_next() -> None:
    batch = ScriptedBatch()
    early = asyncio.create_task(batch.index())
    await until(lambda: len(batch.asked) == 1)
    late = [asyncio.create_task(batch.index()) for _ in range(3)]
    await asyncio.sleep(0)
    batch.asked[0].set_result(5)
    assert await early == 5
    await until(lambda: len(batch.asked) == 2)
    assert not any(t.done() for t in late), "a later read took an index asked for before it began"
    batch.asked[1].set_result(9)
    assert await asyncio.gather(*late) == [9, 9, 9]
    assert batch.requests == 2


async def test_a_failed_request_fails_its_round_only() -> None:
    class Failing(ScriptedBatch):
        async def _ask(self) -> int:
            if not self.asked:
                self.asked.append(asyncio.get_running_loop().create_future())
                raise RuntimeError("boom")
            return await super()._ask()

    batch = Failing()
    first = await batch.index()
    assert isinstance(first, Unavailable)
    second = asyncio.create_task(batch.index())
    await until(lambda: len(batch.asked) == 2)
    batch.asked[1].set_result(3)
    assert await second == 3
