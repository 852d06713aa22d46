"""The client's edge: a ``Message`` wherever a message id goes, ``m.ack()``/``m.nack()``/
``m.extend()``, and argument types checked before anything is sent, with an error naming the argument.

No cluster: each client's connection pool is swapped for one on an ``httpx.MockTransport`` that records
the requests and answers as a node would.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import pickle
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

import rakit
from rakit.client import AsyncClient, AsyncQueue, Client, Message, Queue

POPPED = {"topic": "jobs", "message_id": "m1", "message": {"n": 1}, "delivery_count": 1}


class Node:
    """A fake node: records every request; answers the queue and cache calls the tests make."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path.startswith("/queue/pop/"):
            return httpx.Response(200, json=POPPED)
        if path.startswith("/queue/dead/"):
            return httpx.Response(200, json={"messages": [{"message_id": "d1", "message": 1, "delivery_count": 5}]})
        answers = {
            "/queue/ack": {"acked": True},
            "/queue/nack": {"nacked": True},
            "/queue/extend": {"extended": True},
            "/queue/push": {"message_id": "p1"},
            "/cache/set": {"version": "1.node1"},
        }
        return (
            httpx.Response(200, json=answers[path])
            if path in answers
            else httpx.Response(404, json={"error": "not_found", "detail": path})
        )

    def bodies(self) -> list[tuple[str, Any]]:
        """(path, JSON body) of each request, in order."""
        return [(r.url.path, json.loads(r.content) if r.content else None) for r in self.requests]


@pytest.fixture
def node() -> Node:
    return Node()


@pytest.fixture
def client(node: Node) -> Iterator[Client]:
    c = Client("http://node1:8001", client_id="me", attempts=1)
    c._runner.http.close()
    c._runner.http = httpx.Client(transport=httpx.MockTransport(node))
    yield c
    c.close()


@pytest.fixture
async def aclient(node: Node) -> AsyncIterator[AsyncClient]:
    c = AsyncClient("http://node1:8001", client_id="me", attempts=1)
    await c._runner.http.aclose()
    c._runner.http = httpx.AsyncClient(transport=httpx.MockTransport(node))
    yield c
    await c.aclose()


def ack_body(consumer: str, message_id: str = "m1", **extra: Any) -> dict[str, Any]:
    return {"topic": "jobs", "consumer_id": consumer, "message_id": message_id, **extra}


# -- a Message where a message id goes -----------------------------------------------------------------------


def test_acking_the_popped_message_sends_its_id_as_the_consumer_that_popped_it(client: Client, node: Node) -> None:
    q = client.queue("jobs")
    m = q.pop("w")  # the example: this used to fail in httpx's JSON encoder
    assert m is not None and m.consumer_id == "w"
    assert q.ack(m) is True
    assert node.bodies()[-1] == ("/queue/ack", ack_body("w"))


def test_nack_and_extend_take_the_message_too(client: Client, node: Node) -> None:
    q = client.queue("jobs")
    m = q.pop("w")
    assert m is not None
    q.nack(m)
    q.extend(m, 60)
    assert node.bodies()[-2:] == [
        ("/queue/nack", ack_body("w")),
        ("/queue/extend", ack_body("w", visibility_timeout=60)),
    ]


def test_a_given_consumer_id_wins_over_the_messages_and_a_str_id_still_works(client: Client, node: Node) -> None:
    q = client.queue("jobs")
    m = q.pop("w")
    q.ack(m, "other")
    q.ack("m7")  # a bare id: the client's own id is the consumer, as before
    q.ack("m8", consumer_id="c2")
    assert [b for _, b in node.bodies()[-3:]] == [ack_body("other"), ack_body("me", "m7"), ack_body("c2", "m8")]


def test_the_message_acks_nacks_and_extends_itself(client: Client, node: Node) -> None:
    m = client.queue("jobs").pop()  # the client's own id as consumer
    assert m is not None and m.consumer_id == "me"
    assert m.ack() is True and m.nack() is True and m.extend(5.5) is True
    assert node.bodies()[1:] == [
        ("/queue/ack", ack_body("me")),
        ("/queue/nack", ack_body("me")),
        ("/queue/extend", ack_body("me", visibility_timeout=5.5)),
    ]


def test_a_message_of_another_topic_is_refused_before_sending(client: Client, node: Node) -> None:
    m = client.queue("jobs").pop("w")
    sent = len(node.requests)
    with pytest.raises(ValueError, match=r"Queue\.ack\(\): the Message is of topic 'jobs', not this queue's 'mail'"):
        client.queue("mail").ack(m)
    assert len(node.requests) == sent


def test_a_dead_letter_is_not_bound_and_says_so(client: Client, node: Node) -> None:
    [dead] = client.queue("jobs").dead()
    assert (dead.topic, dead.message_id, dead.consumer_id) == ("jobs", "d1", None)
    with pytest.raises(ValueError, match=r"Message\.ack\(\): message 'd1' was not popped by a client"):
        dead.ack()
    with pytest.raises(ValueError, match=r"Message\.extend\(\)"):
        dead.extend(10)
    assert [p for p, _ in node.bodies()] == ["/queue/dead/jobs"]


def test_the_binding_is_not_data_compared_copied_or_pickled(client: Client, node: Node) -> None:
    m = client.queue("jobs").pop("w")
    plain = Message("jobs", "m1", {"n": 1}, 1, "w")
    assert m == plain and repr(m) == repr(plain)
    assert dataclasses.asdict(m) == {**POPPED, "consumer_id": "w"}  # no client in it
    copy = pickle.loads(pickle.dumps(m))  # the client (its connection pool) cannot be pickled; the data can
    assert copy == m
    with pytest.raises(ValueError, match="was not popped by a client"):
        copy.ack()
    assert plain.bind(client.queue("jobs")).ack() is True  # a copy can be bound again
    assert node.bodies()[-1] == ("/queue/ack", ack_body("w"))


def test_consume_acks_as_its_consumer(client: Client, node: Node) -> None:
    seen: list[Any] = []
    assert client.queue("jobs").consume(seen.append, "w", max_messages=1) == 1
    assert seen == [{"n": 1}] and node.bodies()[-1] == ("/queue/ack", ack_body("w"))


# -- argument types, checked before anything is sent ---------------------------------------------------------

Call = Callable[[Client], Any]
WRONG_TYPES: list[tuple[Call, str]] = [
    (
        lambda c: c.queue("jobs").ack({"message_id": "m1"}),
        "Queue.ack(): message_id must be a str message id or a Message, not dict",
    ),
    (lambda c: c.queue("jobs").nack(17), "Queue.nack(): message_id must be a str message id or a Message, not int"),
    (lambda c: c.queue("jobs").extend(None, 30), "Queue.extend(): message_id must be a str message id or a Message"),
    (lambda c: c.queue("jobs").ack("m1", consumer_id=3), "Queue.ack(): consumer_id must be a str or None, not int"),
    (lambda c: c.queue("jobs").extend("m1", "30"), "Queue.extend(): visibility_timeout must be a number, not str"),
    (lambda c: c.queue("jobs").extend("m1", True), "Queue.extend(): visibility_timeout must be a number, not bool"),
    (lambda c: c.queue("jobs").pop(["w"]), "Queue.pop(): consumer_id must be a str or None, not list"),
    (lambda c: c.queue("jobs").pop(wait="10"), "Queue.pop(): wait must be a number, not str"),
    (
        lambda c: c.queue("jobs").push({"n": 1}, message_id=5),
        "Queue.push(): message_id must be a str message id or None, not int",
    ),
    (lambda c: c.queue("jobs").push({1, 2}), "Queue.push(): message must be JSON-serializable: Object of type set"),
    (lambda c: c.queue("jobs").dead("10"), "Queue.dead(): limit must be an int, not str"),
    (lambda c: c.queue("jobs").redrive(2.0), "Queue.redrive(): limit must be an int, not float"),
    (lambda c: c.queue("jobs").consume("handler"), "Queue.consume(): handler must be a callable, not str"),
    (lambda c: c.queue(b"jobs"), "Client.queue(): topic must be a str, not bytes"),
    (lambda c: c.lock(42), "Client.lock(): resource must be a str, not int"),
    (lambda c: c.lock("r", ttl="30"), "Client.lock(): ttl must be a number, not str"),
    (lambda c: c.lock("r", client_id=7), "Client.lock(): client_id must be a str or None, not int"),
    (lambda c: c.acquire("r", timeout=None), "Client.acquire(): timeout must be a number, not NoneType"),
    (lambda c: c.acquire("r", mode=1), "Client.acquire(): mode must be 'exclusive' or 'shared', not int"),
    (lambda c: c.release("r", fencing_token="3"), "Client.release(): fencing_token must be an int or None, not str"),
    (lambda c: c.renew("r", ttl=False), "Client.renew(): ttl must be a number or None, not bool"),
    (lambda c: c.watch("r", None), "Client.watch(): client_id must be a str, not NoneType"),
    (lambda c: c.lock_status(("r",)), "Client.lock_status(): resource must be a str, not tuple"),
    (lambda c: c.cache.get(1), "Cache.get(): key must be a str, not int"),
    (lambda c: c.cache.set("k", object()), "Cache.set(): value must be JSON-serializable: Object of type object"),
    (lambda c: c.cache.set("k", 1, ttl="60"), "Cache.set(): ttl must be a number or None, not str"),
    (lambda c: c.cache.delete(None), "Cache.delete(): key must be a str, not NoneType"),
    (lambda c: c.promote(3), "Client.promote(): node_id must be a str, not int"),
]


@pytest.mark.parametrize(
    ("call", "error"), WRONG_TYPES, ids=[e.split(":")[0] + ":" + e.split()[1] for _, e in WRONG_TYPES]
)
def test_a_wrong_type_raises_type_error_naming_the_argument_before_sending(
    client: Client, node: Node, call: Call, error: str
) -> None:
    with pytest.raises(TypeError, match="^" + re.escape(error)):
        call(client)
    assert node.requests == []


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda c: c.queue("jobs").extend("m1", float("nan")), "visibility_timeout must be a finite number, not nan"),
        (lambda c: c.lock("r", ttl=float("inf")), "ttl must be a finite number, not inf"),
        (lambda c: c.lock("r", mode="exclusiv"), "mode must be 'exclusive' or 'shared', not 'exclusiv'"),
        (lambda c: c.queue("jobs").push(float("nan")), "message must be JSON-serializable: Out of range float"),
    ],
)
def test_an_impossible_value_of_the_right_type_raises_value_error(
    client: Client, node: Node, call: Call, error: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        call(client)
    assert node.requests == []


def test_the_constructor_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match=r"^Client\(\): nodes must be a sequence of str, but item 1 is int"):
        Client(["http://a:1", 8002])
    with pytest.raises(TypeError, match=r"^Client\(\): nodes must be a str, a sequence of str or None, not int"):
        Client(8001)
    with pytest.raises(TypeError, match=r"^Client\(\): attempts must be an int, not float"):
        Client("http://a:1", attempts=2.5)
    with pytest.raises(TypeError, match=r"^AsyncClient\(\): token must be a str or None, not bytes"):
        AsyncClient("http://a:1", token=b"secret")


def test_right_types_pass_ints_as_seconds_and_payloads_stay_any_json(client: Client, node: Node) -> None:
    q = client.queue("jobs")
    assert q.push([1, "two", {"three": None}], message_id="p1") == "p1"
    q.extend("m1", 30)  # an int where seconds go
    assert client.cache.set("k", {"nested": [1.5, True]}, ttl=60) == "1.node1"
    assert [b for _, b in node.bodies()] == [
        {"topic": "jobs", "message": [1, "two", {"three": None}], "message_id": "p1"},
        ack_body("me", visibility_timeout=30),
        {"key": "k", "value": {"nested": [1.5, True]}, "ttl": 60},
    ]


def test_a_missing_argument_is_pythons_usual_error(client: Client) -> None:
    with pytest.raises(TypeError, match=r"ack\(\) missing 1 required positional argument: 'message_id'"):
        client.queue("jobs").ack()  # type: ignore[call-arg]


def test_checked_methods_keep_their_signatures_and_kind() -> None:
    assert list(inspect.signature(Queue.ack).parameters) == ["self", "message_id", "consumer_id"]
    assert inspect.iscoroutinefunction(AsyncQueue.ack) and not inspect.iscoroutinefunction(Queue.ack)
    assert Queue.ack.__doc__ and "Message" in Queue.ack.__doc__
    assert rakit.Message is Message


# -- the async client --------------------------------------------------------------------------------------


async def test_async_ack_of_the_popped_message(aclient: AsyncClient, node: Node) -> None:
    q = aclient.queue("jobs")
    m = await q.pop("w")
    assert m is not None and m.consumer_id == "w"
    assert await q.ack(m) is True
    await q.extend(m, 45)
    assert node.bodies()[1:] == [("/queue/ack", ack_body("w")), ("/queue/extend", ack_body("w", visibility_timeout=45))]


async def test_async_message_methods_are_awaited(aclient: AsyncClient, node: Node) -> None:
    m = await aclient.queue("jobs").pop("w")
    assert m is not None
    pending = m.ack()
    assert inspect.isawaitable(pending) and len(node.requests) == 1  # nothing sent until awaited
    assert await pending is True
    assert await m.nack() is True and await m.extend(12) is True
    assert [p for p, _ in node.bodies()[1:]] == ["/queue/ack", "/queue/nack", "/queue/extend"]


async def test_async_consume_acks_as_its_consumer(aclient: AsyncClient, node: Node) -> None:
    seen: list[Any] = []

    async def handler(message: Any) -> None:
        seen.append(message)

    assert await aclient.queue("jobs").consume(handler, "w", max_messages=1) == 1
    assert seen == [{"n": 1}] and node.bodies()[-1] == ("/queue/ack", ack_body("w"))


AsyncCall = Callable[[AsyncClient], Any]


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (
            lambda c: c.queue("jobs").ack({"message_id": "m1"}),
            "AsyncQueue.ack(): message_id must be a str message id or a Message, not dict",
        ),
        (lambda c: c.queue("jobs").nack("m1", 3), "AsyncQueue.nack(): consumer_id must be a str or None, not int"),
        (lambda c: c.queue("jobs").extend("m1", None), "AsyncQueue.extend(): visibility_timeout must be a number"),
        (lambda c: c.queue("jobs").push({"n": {1}}), "AsyncQueue.push(): message must be JSON-serializable"),
        (lambda c: c.acquire(("r",)), "AsyncClient.acquire(): resource must be a str, not tuple"),
        (lambda c: c.watch("r", "c", timeout="5"), "AsyncClient.watch(): timeout must be a number, not str"),
        (lambda c: c.cache.set(5, 1), "AsyncCache.set(): key must be a str, not int"),
        (lambda c: c.queue("jobs").consume(print, stop=True), "AsyncQueue.consume(): stop must be an Event or None"),
    ],
)
async def test_async_wrong_types_raise_when_awaited_before_sending(
    aclient: AsyncClient, node: Node, call: AsyncCall, error: str
) -> None:
    with pytest.raises(TypeError, match="^" + re.escape(error)):
        await call(aclient)
    assert node.requests == []


async def test_async_message_of_another_topic_is_refused(aclient: AsyncClient, node: Node) -> None:
    m = await aclient.queue("jobs").pop("w")
    with pytest.raises(ValueError, match="AsyncQueue.nack"):
        await aclient.queue("mail").nack(m)
    assert len(node.requests) == 1
