"""The endpoint declarations (rakit.http.endpoints) agree with what derives from them or must match them."""

from __future__ import annotations

import re

import pytest
from starlette.routing import Route

from rakit import errors as E
from rakit.http import openapi
from rakit.http.endpoints import ALL_ENDPOINTS, ENDPOINTS, PERMISSIONS, Endpoint, dashboard, routes
from rakit.security.tokens import AUTHENTICATED, OPEN, Need

IDS = [f"{ep.method} {ep.path}" for ep in ENDPOINTS]
ALL_IDS = [f"{ep.method} {ep.path}" for ep in ALL_ENDPOINTS]


def _served() -> set[tuple[str, str]]:
    out = set()
    for route in routes():
        if isinstance(route, Route):
            out |= {(m, route.path_format) for m in route.methods or () if m != "HEAD"}
    return out


def test_each_endpoint_is_declared_once() -> None:
    assert len(set(IDS)) == len(IDS)


def test_the_routes_serve_exactly_the_declared_endpoints() -> None:
    assert _served() == {(ep.method, ep.path) for ep in ALL_ENDPOINTS}


@pytest.mark.parametrize("ep", ALL_ENDPOINTS, ids=ALL_IDS)
def test_every_endpoint_has_a_handler(ep: Endpoint) -> None:
    assert ep.handler is not None


def test_the_dashboard_is_documented_as_declared() -> None:
    doc = openapi.document()["paths"]
    for ep in dashboard():
        op = doc[ep.path][ep.method.lower()]
        assert op["summary"] == ep.summary
        assert ("security" in op) == ep.needs_token


@pytest.mark.parametrize("ep", ENDPOINTS, ids=IDS)
def test_an_endpoint_has_an_operation(ep: Endpoint) -> None:
    op = openapi.document()["paths"][ep.path][ep.method.lower()]
    assert op["summary"] == ep.summary
    assert ("security" in op) == ep.needs_token
    statuses = {str(openapi.ERRORS[name][0].status) for name in ep.answers}
    assert statuses <= op["responses"].keys()


@pytest.mark.parametrize("ep", ALL_ENDPOINTS, ids=ALL_IDS)
def test_the_permission_table_asks_what_the_endpoint_declares(ep: Endpoint) -> None:
    example = re.sub(r"{([^}]+)}", lambda m: f"x-{m.group(1)}", ep.path)
    found = PERMISSIONS.need(example)
    if ep.access is OPEN or ep.access is AUTHENTICATED:
        assert found is ep.access
        return
    assert isinstance(ep.access, Need)
    in_path = ep.access.name is not None and f"{{{ep.access.name}}}" in ep.path
    assert found == ep.access._replace(name=f"x-{ep.access.name}" if in_path else None)


@pytest.mark.parametrize("ep", ALL_ENDPOINTS, ids=ALL_IDS)
def test_a_named_need_names_a_path_parameter_or_a_body_field(ep: Endpoint) -> None:
    if ep.access is None or not ep.access.name:
        return
    assert f"{{{ep.access.name}}}" in ep.path or ep.access.name in ep.body_fields


@pytest.mark.parametrize("ep", ENDPOINTS, ids=IDS)
def test_the_errors_an_endpoint_names_are_in_the_error_tree(ep: Endpoint) -> None:
    for name in ep.answers:
        cls, _, _ = openapi.ERRORS[name]
        assert cls in E.TREE
        assert cls.code in E.CODES or cls is E.Conflict


def test_every_leader_endpoint_may_answer_no_leader() -> None:
    # Linearizable reads (a read index from the leader) may answer it too without being forwarded.
    for ep in ENDPOINTS:
        if ep.leader:
            assert "LeaderUnavailable" in ep.answers


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
