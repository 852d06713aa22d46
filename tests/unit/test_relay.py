"""One test per rule of ``rakit.relay`` (one hop to a peer), against a real aiohttp server on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from rakit.errors import Unavailable
from rakit.hops import HOPS_HEADER, REMAINING_HEADER
from rakit.relay import HttpRelay

seen: list[dict[str, str]] = []


async def echo(request: web.Request) -> web.Response:
    seen.append(dict(request.headers))
    return web.Response(body=await request.read(), status=201, headers={"retry-after": "1", "x-other": "no"})


async def hang_up(request: web.Request) -> web.StreamResponse:
    await request.read()
    assert request.transport is not None
    request.transport.close()  # the request arrived; the answer never will
    return web.Response()


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(1)
    return web.Response()


@pytest.fixture
async def base() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/echo", echo)
    app.router.add_post("/hang-up", hang_up)
    app.router.add_post("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def relay() -> AsyncIterator[HttpRelay]:
    async with aiohttp.ClientSession() as session:
        yield HttpRelay(session)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def call(relay: HttpRelay, url: str, *, retry_safe: bool, down: list[str] | None = None, **kw):  # type: ignore[no-untyped-def]
    return await relay.call(
        "n2",
        "POST",
        url,
        b"{}",
        {"content-type": "application/json"},
        hops=kw.get("hops", 0),
        remaining=kw.get("remaining"),
        slack=kw.get("slack", 2.0),
        retry_safe=retry_safe,
        what="the leader",
        on_down=None if down is None else down.append,
    )


async def test_rule_1_a_connection_never_made_may_go_elsewhere(relay: HttpRelay) -> None:
    down: list[str] = []
    assert await call(relay, f"http://127.0.0.1:{free_port()}/x", retry_safe=False, down=down) is None
    assert down == ["n2"]


async def test_rule_2_a_broken_answer_is_retried_only_when_harmless(relay: HttpRelay, base: str) -> None:
    down: list[str] = []
    assert await call(relay, base + "/hang-up", retry_safe=True, down=down) is None
    with pytest.raises(Unavailable, match="went away while answering; outcome unknown"):
        await call(relay, base + "/hang-up", retry_safe=False, down=down)
    assert down == ["n2", "n2"]


async def test_rule_3_no_answer_in_time_is_an_unknown_outcome(relay: HttpRelay, base: str) -> None:
    with pytest.raises(Unavailable, match="did not answer: .*outcome unknown"):
        await call(relay, base + "/slow", retry_safe=True, remaining=0.1, slack=0.2)


async def test_rule_4_the_hop_count_and_the_remaining_wait_travel(relay: HttpRelay, base: str) -> None:
    seen.clear()
    answer = await call(relay, base + "/echo", retry_safe=False, hops=1, remaining=1.5)
    assert answer is not None and answer.status == 201 and answer.body == b"{}"
    assert answer.headers == {"content-type": "application/octet-stream", "retry-after": "1"}
    assert seen[0][HOPS_HEADER] == "2" and seen[0][REMAINING_HEADER] == "1.500"
