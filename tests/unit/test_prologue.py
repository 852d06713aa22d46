"""The handler prologue (rakit.http.prologue): one test per rule, on endpoints declared for the test."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Annotated, Any

import msgspec
import pytest
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.testclient import TestClient

from rakit.errors import InvalidRequest
from rakit.http.endpoints import Endpoint, Param, key_param, name_param
from rakit.http.errors import HANDLERS
from rakit.http.json import Key, Name, json_response
from rakit.http.prologue import CLIENT_GONE, Call, endpoint_route
from rakit.security.tokens import Grant, Identity, Need

Seconds = Annotated[float, msgspec.Meta(ge=0, le=10)]


class Body(msgspec.Struct):
    resource: Key
    client_id: Name
    timeout: Seconds = 0.0


class Optional(msgspec.Struct):
    to: Name | None = None


class Untouchable:
    """A runtime that fails the test when anything reaches it."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the prologue let a request reach the runtime ({name})")


seen: list[Call[Any]] = []


async def record(call: Call[Any]) -> Response:
    seen.append(call)
    return json_response({"names": call.names, "wait": call.wait, "raw": call.raw.decode()})


async def forever(call: Call[Any]) -> Response:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


def refuse_x(call: Call[Body]) -> None:
    if call.body.client_id == "x":
        raise InvalidRequest("x may not", field="client_id")


ENDPOINTS = [
    Endpoint("POST", "/t/body", "t", "a body", body=Body, handler=record, access=Need("locks", "write", "resource")),
    Endpoint("POST", "/t/optional", "t", "an optional body", body=Optional, handler=record),
    Endpoint(
        "GET",
        "/t/path/{resource}",
        "t",
        "names in the path and query",
        params=(
            key_param("resource", "r"),
            name_param("client_id", "c", "query"),
            Param("timeout", "query", Seconds, "s", required=False, default=2.0),
        ),
        handler=record,
        wait="timeout",
    ),
    Endpoint("POST", "/t/wait", "t", "waits", body=Body, handler=record, wait="timeout"),
    Endpoint("POST", "/t/fixed", "t", "a fixed wait", body=Optional, handler=record, wait=4.0),
    Endpoint("POST", "/t/admit", "t", "admit first", body=Body, handler=record, admit=refuse_x, leader=True),
    Endpoint("POST", "/t/leader", "t", "on the leader", body=Body, handler=record, leader=True),
    Endpoint("POST", "/t/forever", "t", "waits forever", body=Body, handler=forever, wait="timeout"),
]


def app(runtime: Any, identity: Identity | None = None) -> Starlette:
    application = Starlette(routes=[endpoint_route(ep) for ep in ENDPOINTS], exception_handlers=HANDLERS)  # type: ignore[arg-type]
    application.state.runtime = runtime
    if identity is not None:
        inner = application.router

        async def with_identity(scope: Any, receive: Any, send: Any) -> None:
            scope.setdefault("state", {})["identity"] = identity
            await inner(scope, receive, send)

        application.router = with_identity  # type: ignore[assignment]
    return application


@pytest.fixture
def client() -> TestClient:
    seen.clear()
    return TestClient(app(Untouchable()))


def error_of(response: Any) -> tuple[int, str, str | None]:
    body = response.json()
    return response.status_code, body["error"], body.get("field")


# -- rule 1: read ---------------------------------------------------------------------------------------


def test_rule_1_a_declared_body_is_decoded_before_the_handler(client: TestClient) -> None:
    answer = client.post("/t/body", json={"resource": "a:b", "client_id": "w"})
    assert answer.status_code == 200 and isinstance(seen[0].body, Body) and seen[0].body.resource == "a:b"
    assert json.loads(answer.json()["raw"]) == {"resource": "a:b", "client_id": "w"}  # relayed as received


def test_rule_1_a_bad_body_is_a_422_naming_the_field_and_reaches_nothing(client: TestClient) -> None:
    assert error_of(client.post("/t/body", json={"resource": "a\n", "client_id": "w"}))[:2] == (422, "invalid_request")
    assert client.post("/t/body", content=b"").status_code == 422  # a required field: empty is refused
    assert not seen


def test_rule_1_a_body_without_required_fields_may_be_empty(client: TestClient) -> None:
    assert client.post("/t/optional", content=b"").status_code == 200
    assert seen[0].body == Optional()


def test_rule_1_names_in_the_path_and_query_are_checked_whole(client: TestClient) -> None:
    assert client.get("/t/path/a:b", params={"client_id": "w"}).json()["names"] == {"resource": "a:b", "client_id": "w"}
    assert error_of(client.get("/t/path/a%0A", params={"client_id": "w"}))[::2] == (422, "resource")
    assert error_of(client.get("/t/path/a", params={"client_id": "w\n"}))[::2] == (422, "client_id")
    assert error_of(client.get("/t/path/a"))[::2] == (422, "client_id")  # missing: empty, refused
    assert len(seen) == 1


# -- rule 2: authorize ------------------------------------------------------------------------------------


def test_rule_2_a_name_in_the_body_is_authorized_on_its_value() -> None:
    seen.clear()
    reader = Identity("r", (Grant("locks", "write", "orders.*"),))
    with TestClient(app(Untouchable(), reader)) as c:
        assert c.post("/t/body", json={"resource": "orders.1", "client_id": "w"}).status_code == 200
        assert error_of(c.post("/t/body", json={"resource": "users.1", "client_id": "w"}))[:2] == (403, "forbidden")
    assert len(seen) == 1


def test_rule_2_admit_runs_where_the_request_came_in_before_forwarding(client: TestClient) -> None:
    # The runtime (and so the leader lookup) is never reached: admit refused first.
    assert error_of(client.post("/t/admit", json={"resource": "r", "client_id": "x"}))[::2] == (422, "client_id")
    assert not seen


# -- rule 3: wait ----------------------------------------------------------------------------------------


def test_rule_3_the_wait_comes_from_the_declared_field_query_or_number(client: TestClient) -> None:
    assert client.post("/t/wait", json={"resource": "r", "client_id": "w", "timeout": 1.5}).json()["wait"] == 1.5
    assert client.get("/t/path/a", params={"client_id": "w"}).json()["wait"] == 2.0  # the declared default
    assert client.get("/t/path/a", params={"client_id": "w", "timeout": "3"}).json()["wait"] == 3.0
    assert error_of(client.get("/t/path/a", params={"client_id": "w", "timeout": "11"}))[::2] == (422, "timeout")
    assert client.post("/t/fixed", json={}).json()["wait"] == 4.0


# -- rule 4: forward -------------------------------------------------------------------------------------


def test_rule_4_a_leader_endpoint_runs_on_the_leader_and_others_never_ask() -> None:
    seen.clear()
    leader = SimpleNamespace(driver=SimpleNamespace(is_leader=True))
    with TestClient(app(leader)) as c:
        assert c.post("/t/leader", json={"resource": "r", "client_id": "w"}).status_code == 200
    with TestClient(app(Untouchable())) as c:  # not a leader endpoint: the driver is never asked
        assert c.post("/t/body", json={"resource": "r", "client_id": "w"}).status_code == 200
    assert len(seen) == 2


# -- rule 5: disconnect ---------------------------------------------------------------------------------


def test_rule_5_a_waiting_request_whose_client_left_is_answered_499() -> None:
    application = app(Untouchable())
    body = json.dumps({"resource": "r", "client_id": "w", "timeout": 5}).encode()
    messages = [{"type": "http.request", "body": body, "more_body": False}, {"type": "http.disconnect"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else await asyncio.Event().wait()  # type: ignore[func-returns-value]

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "path": "/t/forever",
        "raw_path": b"/t/forever",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "app": application,
    }
    asyncio.run(asyncio.wait_for(application(scope, receive, send), 5))
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == CLIENT_GONE
