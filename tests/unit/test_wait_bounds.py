"""A client cannot make a node hold a request longer than its stated wait plus ``MAX_OVERRUN``.

Every waiting endpoint goes through one of two places: ``on_leader`` (lock
acquire with ``timeout``, lock watch, and every other leader request with a
wait of 0) and ``QueueService.serve`` (queue pop with ``wait``, and the other
queue calls); the relayed ``/queue/internal/pop`` through ``answer_within``
itself.  Each is bounded whatever its work does -- here, work that never ends.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.requests import Request

import rakit.hops as hops
from rakit.errors import Unavailable
from rakit.hops import answer_within
from rakit.http.forward import hops_of, on_leader
from rakit.queue.service import QueueService

OVERRUN = 0.3


@pytest.fixture(autouse=True)
def short_overrun(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hops, "MAX_OVERRUN", OVERRUN)


def request(headers: dict[str, str] | None = None) -> Request:
    raw = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"type": "http", "method": "POST", "path": "/x", "headers": raw, "query_string": b""})


async def forever() -> Any:
    await asyncio.Event().wait()


async def bounded(work: Any, wait: float) -> float:
    started = time.monotonic()
    with pytest.raises(Unavailable, match="could not be served within"):
        await work
    elapsed = time.monotonic() - started
    assert wait + OVERRUN * 0.9 <= elapsed < wait + OVERRUN + 0.5, elapsed
    return elapsed


async def test_answer_within_cuts_work_that_never_ends() -> None:
    await bounded(answer_within(0.2, forever()), 0.2)


async def test_answer_within_returns_what_finishes_in_time_and_keeps_other_timeouts() -> None:
    async def quick() -> str:
        await asyncio.sleep(0.05)
        return "done"

    assert await answer_within(0.0, quick()) == "done"

    async def own_timeout() -> None:
        raise TimeoutError("not the bound's")

    with pytest.raises(TimeoutError, match="not the bound's"):
        await answer_within(1.0, own_timeout())


@pytest.mark.parametrize("wait", [0.0, 0.4])
async def test_a_leader_request_is_answered_within_its_wait_plus_the_bound(wait: float) -> None:
    runtime = SimpleNamespace(driver=SimpleNamespace(is_leader=True), node_id="n1")
    await bounded(on_leader(runtime, request(), b"", forever, wait=wait), wait)  # type: ignore[arg-type]


async def test_a_queue_call_is_answered_within_its_wait_plus_the_bound() -> None:
    service = object.__new__(QueueService)
    service.node_id = "n1"
    service.owner = lambda topic: "n1"  # type: ignore[method-assign]
    await bounded(service.serve("pop", {"topic": "t"}, 0, forever, wait=0.4), 0.4)


@pytest.mark.parametrize("value, hops", [("2", 2), ("abc", 0), ("-3", 0), ("", 0), ("1.5", 0)])
def test_a_malformed_hops_header_counts_as_none(value: str, hops: int) -> None:
    # int() of a garbage x-rakit-hops was a 500 on every leader request (the header fuzz sends some).
    assert hops_of(request({"x-rakit-hops": value})) == hops
