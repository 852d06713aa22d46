"""The endpoint declarations (rakit.http.endpoints) agree with what derives from them or must match them."""

from __future__ import annotations

import re

import pytest
from starlette.routing import Route

from rakit import errors as E
from rakit.http import openapi
from rakit.http.endpoints import ENDPOINTS, Endpoint
from rakit.http.routes import cache, cluster, docs, kv, locks, members, queue, raft_rpc
from rakit.security.tokens import AUTHENTICATED, OPEN, Need, need

MODULES = (raft_rpc, cache, kv, locks, queue, cluster, members, docs)
IDS = [f"{ep.method} {ep.path}" for ep in ENDPOINTS]


def _served() -> set[tuple[str, str]]:
    out = set()
    for module in MODULES:
        for route in module.routes:
            if isinstance(route, Route):
                out |= {(m, route.path_format) for m in route.methods or () if m != "HEAD"}
    return out


def test_each_endpoint_is_declared_once() -> None:
    assert len(set(IDS)) == len(IDS)


def test_the_routes_serve_exactly_the_declared_endpoints() -> None:
    assert _served() == {(ep.method, ep.path) for ep in ENDPOINTS}


@pytest.mark.parametrize("ep", ENDPOINTS, ids=IDS)
def test_an_endpoint_has_an_operation(ep: Endpoint) -> None:
    op = openapi.document()["paths"][ep.path][ep.method.lower()]
    assert op["summary"] == ep.summary
    assert ("security" in op) == ep.needs_token
    statuses = {str(openapi.ERRORS[name][0].status) for name in ep.answers}
    assert statuses <= op["responses"].keys()


@pytest.mark.parametrize("ep", ENDPOINTS, ids=IDS)
def test_the_permission_table_asks_what_the_endpoint_declares(ep: Endpoint) -> None:
    example = re.sub(r"{([^}]+)}", lambda m: f"x-{m.group(1)}", ep.path)
    found = need(example)
    if ep.access is OPEN or ep.access is AUTHENTICATED:
        assert found is ep.access
        return
    assert isinstance(ep.access, Need)
    name = None if ep.access.name is None else f"x-{ep.access.name}"
    assert found == ep.access._replace(name=name)


@pytest.mark.parametrize("ep", ENDPOINTS, ids=IDS)
def test_the_errors_an_endpoint_names_are_in_the_error_tree(ep: Endpoint) -> None:
    for name in ep.answers:
        cls, _, _ = openapi.ERRORS[name]
        assert cls in E.TREE
        assert cls.code in E.CODES or cls is E.Conflict


def test_every_leader_endpoint_may_answer_no_leader() -> None:
    for ep in ENDPOINTS:
        assert ("LeaderUnavailable" in ep.answers) == ep.leader


def test_the_client_knows_every_error_code() -> None:
    from rakit.client import errors as client_errors

    specific = set(client_errors._BY_CODE)
    assert not specific & client_errors.GENERIC_CODES
    assert specific | client_errors.GENERIC_CODES == set(E.CODES)
    for code in E.CODES:
        err = client_errors.error_from_answer(E.CODES[code], {"error": code, "detail": "d"})
        assert err.error == code and err.status == E.CODES[code]
        if code in client_errors.GENERIC_CODES:
            generic = client_errors.ServerError if E.CODES[code] >= 500 else client_errors.RakitError
            assert type(err) is generic
