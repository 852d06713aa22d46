"""``rakit.queue.service`` rules 2 (relaying) and 5 (errors): domain values and ``rakit.errors``, wherever served.

Two nodes, ``a`` and ``b``, share one ``MemoryQueueStore`` (as they share
Redis); every test topic is owned by ``b`` on the ring, and the calls go to
``a``.  ``AppRelay`` is a ``Relay`` that carries a call to the other node's
real routes in process (httpx over ASGI), or breaks as a test says.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import httpx
import msgspec
import pytest
from starlette.applications import Starlette

from rakit.errors import (
    InvalidRequest,
    NotInFlight,
    RakitError,
    TooManyInFlight,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    error_body,
)
from rakit.hops import HOPS_HEADER
from rakit.http.endpoints import routes
from rakit.http.errors import HANDLERS
from rakit.metrics import NodeMetrics
from rakit.queue.memory_store import MemoryQueueStore
from rakit.queue.ring import ConsistentHashRing
from rakit.queue.service import Pushed, QueueService
from rakit.relay import Relayed

PEERS = {"a": "http://a.test", "b": "http://b.test"}
RING = ConsistentHashRing(sorted(PEERS))
TOPIC = next(t for t in (f"t{i}" for i in range(100)) if RING.successors(t)[0] == "b")
_json = msgspec.json.Encoder()


def app_of(service: QueueService) -> Starlette:
    app = Starlette(routes=routes(), exception_handlers=HANDLERS)  # type: ignore[arg-type]
    app.state.runtime = SimpleNamespace(node_id=service.node_id, queue=service)
    return app


@dataclass
class AppRelay:
    """One hop to a node's app in process; ``broken``: the hop breaks after sending (``rakit.relay`` rule 2)."""

    apps: dict[str, Starlette] = field(default_factory=dict)
    canned: Relayed | None = None
    broken: bool = False
    calls: list[tuple[str, str, bytes, int]] = field(default_factory=list)

    async def call(
        self,
        peer: str,
        method: str,
        url: str,
        body: bytes,
        headers: dict[str, str],
        *,
        hops: int,
        remaining: float | None,
        slack: float,
        retry_safe: bool,
        what: str,
        on_down: Callable[[str], None] | None = None,
    ) -> Relayed | None:
        self.calls.append((peer, url, body, hops))
        if self.broken:
            if on_down is not None:
                on_down(peer)
            if retry_safe:
                return None
            raise Unavailable(f"{what} {peer} went away while answering; outcome unknown")
        if self.canned is not None:
            return self.canned
        transport = httpx.ASGITransport(app=self.apps[peer])
        async with httpx.AsyncClient(transport=transport, base_url=PEERS[peer]) as client:
            resp = await client.request(method, url, content=body, headers={**headers, HOPS_HEADER: str(hops + 1)})
        return Relayed(resp.status_code, resp.content, {})


@dataclass
class Nodes:
    a: QueueService
    b: QueueService
    relay: AppRelay
    store: MemoryQueueStore

    def client(self, node: QueueService) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app_of(node)), base_url=PEERS[node.node_id])


@pytest.fixture
async def nodes() -> AsyncIterator[Nodes]:
    store = MemoryQueueStore(clock=time.time, max_deliveries=3)
    relay = AppRelay()
    made = {}
    for node in PEERS:
        made[node] = QueueService(
            node,
            PEERS,
            ConsistentHashRing(sorted(PEERS)),
            store,
            session=None,  # type: ignore[arg-type]  # only the probes use it, and none runs here
            metrics=NodeMetrics(node),
            relay=relay,
        )
    relay.apps = {node: app_of(service) for node, service in made.items()}
    yield Nodes(made["a"], made["b"], relay, store)


def relayed_ops(relay: AppRelay) -> list[str]:
    return [url.rsplit("/", 1)[-1] for _, url, _, _ in relay.calls]


# -- rule 2: relaying ------------------------------------------------------------------


async def test_rule_2_a_topic_owned_here_is_served_here(nodes: Nodes) -> None:
    assert await nodes.b.push(TOPIC, "m1", b'{"n": 1}') == Pushed(TOPIC, "m1", "b")
    popped = await nodes.b.pop(TOPIC, "c", 30)
    assert popped is not None and bytes(popped.message) == b'{"n": 1}'
    await nodes.b.ack(TOPIC, "c", "m1")
    assert nodes.relay.calls == []


async def test_rule_2_the_owners_answers_come_back_as_domain_values(nodes: Nodes) -> None:
    a, relay = nodes.a, nodes.relay
    assert await a.push(TOPIC, "m1", b'{"n": [1, 2]}') == Pushed(TOPIC, "m1", "b")  # served by the owner
    assert await a.push(TOPIC, "m1", b'"again"') == Pushed(TOPIC, "m1", "b")  # a duplicate answers the same
    await a.push(TOPIC, "m2", b"2")
    popped = await a.pop(TOPIC, "c", 30)
    assert popped is not None and (popped.topic, popped.message_id, popped.delivery_count) == (TOPIC, "m1", 1)
    assert bytes(popped.message) == b'{"n": [1, 2]}'  # the message as pushed, byte for byte
    await a.nack(TOPIC, "c", "m1")
    again = await a.pop(TOPIC, "c", 30)
    assert again is not None and (again.message_id, again.delivery_count) == ("m1", 2)
    await a.extend(TOPIC, "c", "m1", 60)
    await a.ack(TOPIC, "c", "m1")
    await a.ack(TOPIC, "c", (await a.pop(TOPIC, "c", 30) or pytest.fail("m2")).message_id)
    assert await a.pop(TOPIC, "c", 30, wait=0.05) is None  # 204 from the owner
    assert relayed_ops(relay) == ["push", "push", "push", "pop", "nack", "pop", "extend", "ack", "pop", "ack", "pop"]
    assert {peer for peer, *_ in relay.calls} == {"b"} and {hops for *_, hops in relay.calls} == {0}
    assert await nodes.store.stats(TOPIC) == {"ready": 0, "in_flight": 0, "dead": 0}


@pytest.mark.parametrize("op", ["ack", "nack", "extend"])
async def test_rule_2_the_owners_refusal_is_raised_as_its_own_class(nodes: Nodes, op: str) -> None:
    args: list[Any] = [TOPIC, "c", "never-popped"] + ([30.0] if op == "extend" else [])
    with pytest.raises(NotInFlight) as here:
        await getattr(nodes.b, op)(*args)
    with pytest.raises(NotInFlight) as relayed:
        await getattr(nodes.a, op)(*args)
    assert relayed.value.body() == here.value.body()
    assert relayed_ops(nodes.relay) == [op]


async def test_rule_2_a_full_consumer_is_refused_by_the_owner(nodes: Nodes) -> None:
    nodes.store.max_in_flight = 1
    await nodes.a.push(TOPIC, "m1", b"1")
    await nodes.a.push(TOPIC, "m2", b"2")
    assert await nodes.a.pop(TOPIC, "c", 30) is not None
    with pytest.raises(TooManyInFlight, match="'c'"):
        await nodes.a.pop(TOPIC, "c", 30)


@pytest.mark.parametrize("op", ["push", "pop"])
async def test_rule_2_a_relay_broken_after_sending_retries_a_push_or_a_pop(nodes: Nodes, op: str) -> None:
    await nodes.store.push(TOPIC, "m0", b"0")
    nodes.relay.broken = True
    if op == "push":
        assert await nodes.a.push(TOPIC, "m1", b"1") == Pushed(TOPIC, "m1", "a")  # the next live node: here
    else:
        popped = await nodes.a.pop(TOPIC, "c", 30)
        assert popped is not None and popped.message_id == "m0"
    assert relayed_ops(nodes.relay) == [op]
    assert not nodes.a.health.is_alive("b")  # the relay told the failure detector


@pytest.mark.parametrize("op", ["ack", "nack", "extend"])
async def test_rule_2_a_relay_broken_after_sending_leaves_ack_nack_extend_unknown(nodes: Nodes, op: str) -> None:
    await nodes.store.push(TOPIC, "m1", b"1")
    assert await nodes.store.pop(TOPIC, "c", 30) is not None
    nodes.relay.broken = True
    args: list[Any] = [TOPIC, "c", "m1"] + ([30.0] if op == "extend" else [])
    with pytest.raises(Unavailable, match="outcome unknown") as refused:
        await getattr(nodes.a, op)(*args)
    assert refused.value.status == 503
    assert (await nodes.store.stats(TOPIC))["in_flight"] == 1  # not served here behind the owner's back


# -- rule 5: errors, as the owner answered them ----------------------------------------


def answer(status: int, body: Any) -> Relayed:
    return Relayed(status, body if isinstance(body, bytes) else _json.encode(body), {})


@pytest.mark.parametrize(
    "owner_answer, raised",
    [
        (answer(404, error_body("not_in_flight", "message 'm' is not in flight")), NotInFlight),
        (answer(422, error_body("invalid_request", "bad topic", field="topic")), InvalidRequest),
        (answer(429, error_body("too_many_in_flight", "consumer 'c' holds 1000")), TooManyInFlight),
        (answer(429, error_body("too_many_requests", "shedding load")), TooManyRequests),
        (answer(401, error_body("unauthorized", "bad signature")), Unauthorized),
        (answer(503, error_body("unavailable", "Redis refused the node: NOAUTH")), Unavailable),
    ],
)
@pytest.mark.parametrize("op", ["push", "pop", "ack"])
async def test_rule_5_the_owners_error_json_is_the_same_rakit_error(
    nodes: Nodes, op: str, owner_answer: Relayed, raised: type[RakitError]
) -> None:
    nodes.relay.canned = owner_answer
    call = {
        "push": lambda: nodes.a.push(TOPIC, "m1", b"1"),
        "pop": lambda: nodes.a.pop(TOPIC, "c", 30),
        "ack": lambda: nodes.a.ack(TOPIC, "c", "m1"),
    }[op]
    with pytest.raises(raised) as error:
        await call()
    assert type(error.value) is raised
    assert error.value.status == owner_answer.status
    assert _json.encode(error.value.body()) == owner_answer.body  # what the edge answers: the owner's body


@pytest.mark.parametrize(
    "owner_answer",
    [answer(502, b"<html>bad gateway</html>"), answer(500, {"error": "from-the-future", "detail": "?"})],
)
async def test_rule_5_an_answer_that_is_no_api_error_is_unavailable(nodes: Nodes, owner_answer: Relayed) -> None:
    nodes.relay.canned = owner_answer
    with pytest.raises(Unavailable, match=f"HTTP {owner_answer.status} .*outcome unknown"):
        await nodes.a.ack(TOPIC, "c", "m1")


async def test_rule_5_a_success_with_an_unreadable_body_is_unavailable(nodes: Nodes) -> None:
    nodes.relay.canned = answer(200, {"unexpected": True})
    with pytest.raises(Unavailable, match="not its answer"):
        await nodes.a.push(TOPIC, "m1", b"1")


# -- the HTTP edge: the same bytes, wherever the call was served ------------------------


async def test_the_edge_answers_a_relayed_call_as_the_owner_does(nodes: Nodes) -> None:
    async with nodes.client(nodes.a) as a, nodes.client(nodes.b) as b:
        pushed = await a.post("/queue/push", json={"topic": TOPIC, "message": {"n": 1}, "message_id": "m1"})
        assert (pushed.status_code, pushed.content) == (200, _json.encode(Pushed(TOPIC, "m1", "b")))
        assert pushed.headers["content-type"] == "application/json"
        popped = await a.get(f"/queue/pop/{TOPIC}/c")
        expected = {"topic": TOPIC, "message_id": "m1", "message": {"n": 1}, "delivery_count": 1}
        assert popped.status_code == 200 and popped.json() == expected
        assert list(popped.json()) == list(expected)  # the same keys, in the same order
        assert (await a.get(f"/queue/pop/{TOPIC}/c")).status_code == 204
        for path, done in (("/queue/extend", "extended"), ("/queue/nack", "nacked")):
            message = {"topic": TOPIC, "consumer_id": "c", "message_id": "m1"}
            if done == "extended":
                message["visibility_timeout"] = 30  # type: ignore[assignment]
            resp = await a.post(path, json=message)
            assert (resp.status_code, resp.json()) == (200, {done: True})
        await a.get(f"/queue/pop/{TOPIC}/c")
        acked = await a.post("/queue/ack", json={"topic": TOPIC, "consumer_id": "c", "message_id": "m1"})
        assert (acked.status_code, acked.content) == (200, b'{"acked":true}')
        relayed = await a.post("/queue/ack", json={"topic": TOPIC, "consumer_id": "c", "message_id": "m1"})
        served = await b.post("/queue/ack", json={"topic": TOPIC, "consumer_id": "c", "message_id": "m1"})
        assert (relayed.status_code, relayed.content) == (served.status_code, served.content)
        assert relayed.json()["error"] == "not_in_flight"
    assert relayed_ops(nodes.relay) == ["push", "pop", "pop", "extend", "nack", "pop", "ack", "ack"]
