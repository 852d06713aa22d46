"""IndexedRouter: the route Starlette's full scan would pick, found by the request's path."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Match, Route
from starlette.testclient import TestClient

from rakit.http.endpoints import routes
from rakit.http.routing import IndexedRouter, literal_paths

NODE_ROUTES = routes()


def first_full(routes, scope):
    return next((r for r in routes if r.matches(scope)[0] is Match.FULL), None)


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
def test_the_index_picks_what_the_full_scan_picks_for_every_node_route(method: str) -> None:
    index = literal_paths(NODE_ROUTES)
    assert "/kv/put" in index and "/lock/acquire" in index and "/raft/stream" in index
    for path, candidates in index.items():
        kind = "websocket" if path.endswith("/stream") else "http"
        scope = {"type": kind, "path": path, "method": method, "root_path": ""}
        assert first_full(candidates, scope) is first_full(NODE_ROUTES, scope), (path, method)


def _text(body: str):
    async def endpoint(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"{body} {dict(request.path_params)}")

    return endpoint


@pytest.fixture
def client() -> TestClient:
    routes = [
        Route("/items/{name}", _text("param"), methods=["GET"]),  # listed first: wins over the literal route
        Route("/items/special", _text("literal"), methods=["GET", "POST"]),
        Route("/things", _text("get things"), methods=["GET"]),
        Route("/things", _text("post things"), methods=["POST"]),
    ]
    app = Starlette()
    app.router = IndexedRouter(routes)
    return TestClient(app)


def test_an_earlier_parameter_route_still_wins(client: TestClient) -> None:
    assert client.get("/items/special").text == "param {'name': 'special'}"
    assert client.post("/items/special").text == "literal {}"


def test_routes_sharing_a_path_are_told_apart_by_method(client: TestClient) -> None:
    assert client.get("/things").text == "get things {}"
    assert client.post("/things").text == "post things {}"


def test_unmatched_requests_get_starlettes_answers(client: TestClient) -> None:
    assert client.delete("/things").status_code == 405
    assert client.get("/nowhere").status_code == 404
    redirected = client.get("/things/", follow_redirects=False)
    assert redirected.status_code == 307 and redirected.headers["location"].endswith("/things")


@pytest.mark.parametrize(
    "path",
    ["/kv/get/a:b.c", "/lock/status/r", "/cache/get/user:42", "/queue/stats/t", "/session/s1", "/ui/app.js", "/x/y"],
)
def test_a_path_with_parameters_is_tried_only_against_the_heads_it_starts_with(path: str) -> None:
    router = IndexedRouter(NODE_ROUTES)
    scope = {"type": "http", "path": path, "method": "GET", "root_path": ""}
    heads = [route for head, route in router._with_params if path.startswith(head)]
    assert first_full(heads, scope) is first_full(NODE_ROUTES, scope)
    assert len(heads) < len(NODE_ROUTES) / 4
