"""The semaphore and election chaos clients: the requests they send (against a fake transport) and
what they record, and how ``rakit chaos`` selects them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from rakit.chaos import workloads as wl
from rakit.chaos import workloads_coordination as wc
from rakit.chaos.run import RunConfig

Reply = Callable[[str, str, Any], wl.Answer]


class FakeContext(wl.Context):
    """A context whose requests go to ``reply`` instead of the network; it stops after ``budget`` requests."""

    def __init__(self, reply: Reply, budget: int = 40) -> None:
        super().__init__(
            session=None,  # type: ignore[arg-type]
            urls={"node1": "http://a", "node2": "http://b"},
            recorder=wl.Recorder(),
            stop=asyncio.Event(),
            seed=1,
        )
        self.reply = reply
        self.budget = budget
        self.sent: list[tuple[str, str, str, Any, float]] = []

    async def request(self, method: str, node: str, path: str, body: Any = None, timeout: float = 5.0) -> wl.Answer:
        self.sent.append((method, node, path, body, timeout))
        if len(self.sent) >= self.budget:
            self.stop.set()
        await asyncio.sleep(0)
        return self.reply(method, path, body)


def run_until_stopped(ctx: FakeContext, coro: Any) -> None:
    async def main() -> None:
        await asyncio.wait_for(coro, timeout=30)

    asyncio.run(main())


def semaphore_server(method: str, path: str, body: Any) -> wl.Answer:
    if path == "/semaphore/acquire":
        return wl.Answer(200, {"acquired": True, **body, "available": 0, "fencing_token": 1})
    if path == "/semaphore/renew":
        return wl.Answer(200, {"renewed": True, "ttl": body["ttl"]})
    if path == "/semaphore/release":
        return wl.Answer(409, {"error": "not_holder"})
    return wl.Answer(200, {"name": path.rsplit("/", 1)[1], "limit": 2, "available": 2, "holders": [], "waiters": []})


def test_semaphore_clients_acquire_renew_release_with_bounded_timeouts() -> None:
    settings = wc.SemaphoreSettings(ttl=0.06, hold=(0.0, 0.01), long_hold=(0.07, 0.08), renew_fraction=0.5)
    ctx = FakeContext(semaphore_server, budget=60)
    run_until_stopped(ctx, wc.semaphore_process(ctx, 1, settings))
    paths = {path for _, _, path, _, _ in ctx.sent}
    assert paths == {"/semaphore/acquire", "/semaphore/renew", "/semaphore/release"}
    assert {node for _, node, *_ in ctx.sent} == {ctx.home(1)}
    first = ctx.sent[0]
    assert first[0] == "POST" and set(first[3]) == {"name", "client_id", "limit", "permits", "ttl", "timeout"}
    assert first[3]["limit"] == settings.limits[first[3]["name"]] and first[4] == settings.wait + wc.REQUEST_SECONDS
    assert all(timeout <= settings.wait + wc.REQUEST_SECONDS for *_, timeout in ctx.sent)
    ops = ctx.recorder.ops
    assert {op.workload for op in ops} == {"semaphores"} and len(ops) == len(ctx.sent)
    assert {(op.f, op.type) for op in ops} >= {("acquire", "ok"), ("renew", "ok"), ("release", "fail")}
    clients = [op.args["client_id"] for op in ops if op.f == "acquire"]
    assert len(clients) == len(set(clients))  # a fresh client id per hold


def test_semaphore_status_poller_reads_every_semaphore() -> None:
    ctx = FakeContext(semaphore_server, budget=4)
    run_until_stopped(ctx, wc.semaphore_status_process(ctx, 6, wc.SemaphoreSettings(status_every=0.001)))
    assert [(m, p, b) for m, _, p, b, _ in ctx.sent[:2]] == [
        ("GET", "/semaphore/status/s0", None),
        ("GET", "/semaphore/status/s1", None),
    ]
    assert ctx.recorder.ops[0].args == {"name": "s0"} and ctx.recorder.ops[0].f == "status"


def election_server(leader_replies: list[wl.Answer]) -> Reply:
    def reply(method: str, path: str, body: Any) -> wl.Answer:
        if path == "/election/campaign":
            return leader_replies.pop(0) if leader_replies else wl.Answer(409, {"error": "timeout"})
        if path == "/election/renew":
            return wl.Answer(200, {"renewed": True, "ttl": body["ttl"]})
        if path == "/election/resign":
            return wl.Answer(200, {"resigned": True})
        return wl.Answer(500)

    return reply


def test_candidates_campaign_renew_and_resign_also_after_an_unknown_campaign() -> None:
    elected = wl.Answer(200, {"elected": True, "name": "e0", "leader": "c0-1", "value": None, "term": 3})
    ctx = FakeContext(election_server([elected, wl.Answer(None, error="TimeoutError")]), budget=30)
    settings = wc.ElectionSettings(ttl=0.06, lead=(0.05, 0.07), lapse_fraction=0.0)
    run_until_stopped(ctx, wc.candidate_process(ctx, 0, settings))
    sent = [(path, body) for _, _, path, body, _ in ctx.sent]
    assert sent[0] == (
        "/election/campaign",
        {"name": "e0", "candidate_id": "c0-1", "value": {"p": 0, "n": 1}, "ttl": 0.06, "timeout": 1.0},
    )
    assert ("/election/renew", {"name": "e0", "candidate_id": "c0-1", "ttl": 0.06}) in sent
    resigns = [body["candidate_id"] for path, body in sent if path == "/election/resign"]
    assert resigns[:2] == ["c0-1", "c0-2"]  # the leader resigned; the unknown campaign is withdrawn
    assert [op.type for op in ctx.recorder.ops if op.f == "campaign"][:3] == ["ok", "info", "fail"]


def test_observers_long_poll_above_the_last_term_seen() -> None:
    answers = iter([(2, True), (2, False), (5, True)])

    def reply(method: str, path: str, body: Any) -> wl.Answer:
        term, changed = next(answers, (5, False))
        return wl.Answer(200, {"name": "e0", "leader": "x", "value": None, "term": term, "changed": changed})

    ctx = FakeContext(reply, budget=4)
    run_until_stopped(ctx, wc.observer_process(ctx, 5, wc.ElectionSettings(observe_timeout=0.5)))
    assert [(m, p, t) for m, _, p, _, t in ctx.sent] == [
        ("GET", "/election/observe/e0?after_term=0&timeout=0.5", 2.5),
        ("GET", "/election/observe/e0?after_term=2&timeout=0.5", 2.5),
        ("GET", "/election/observe/e0?after_term=2&timeout=0.5", 2.5),
        ("GET", "/election/observe/e0?after_term=5&timeout=0.5", 2.5),
    ]
    assert ctx.recorder.ops[1].args == {"name": "e0", "after_term": 2, "timeout": 0.5}


def test_rakit_chaos_selects_the_coordination_workloads_by_default() -> None:
    assert RunConfig().workloads == ("locks", "queue", "cache", "semaphores", "elections", "kv")

    async def main() -> list[str]:
        ctx = FakeContext(semaphore_server)
        ctx.stop.set()
        tasks = wc.start(ctx, ["semaphores", "elections"], replace(wc.CoordinationSettings()))
        names = [t.get_name() for t in tasks]
        await asyncio.gather(*tasks)
        return names

    names = asyncio.run(main())
    assert names == [
        *(f"semaphore-{p}" for p in range(6)),
        "semaphore-status-6",
        *(f"candidate-{p}" for p in range(4)),
        "observer-4",
        "observer-5",
    ]
