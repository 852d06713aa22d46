"""Names are matched whole.

docs/api.md allows 1-128 of ``[A-Za-z0-9_.:-]`` for ``resource``/``key``/``message_id``
and of ``[A-Za-z0-9_.-]`` for ``topic``/``consumer_id``/``client_id`` and node
ids.  msgspec checks a ``pattern`` with ``re.search``, where ``$`` also matches
just before a final newline: ``^[...]+$`` let ``"NAME\\n"`` through.  Every name
field, in a body or in the URL, must refuse it (422 ``invalid_request``).

Checked at the decode level (each route's body Struct, ``path_key`` and
``path_name``) and through the real route handlers in a small Starlette app
whose runtime is a stub: a refused name never reaches it.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgspec
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

import rakit.http
from rakit.config import ID_RE, ConfigError, parse_peers
from rakit.errors import InvalidRequest
from rakit.http import bodies, kv_bodies
from rakit.http.endpoints import routes
from rakit.http.errors import HANDLERS
from rakit.http.json import Key, Name, decode, path_key, path_name

VALID = "Ab0_.-x"
VALID_KEY = "Ab0_.:-x"
BAD = ["NAME\n", "NAME\r\n", "\nNAME", "NA ME", "N" * 129, "", "NAME\t", "NAME\x00", "NAMÉ"]


# -- body fields -----------------------------------------------------------------------------

# (Struct, a valid body, the name fields to spoil one at a time)
BODIES: list[tuple[type[msgspec.Struct], dict[str, Any], list[str]]] = [
    (bodies.AcquireBody, {"resource": VALID_KEY, "client_id": VALID}, ["resource", "client_id"]),
    (bodies.ReleaseBody, {"resource": VALID_KEY, "client_id": VALID, "fencing_token": 1}, ["resource", "client_id"]),
    (bodies.RenewBody, {"resource": VALID_KEY, "client_id": VALID, "fencing_token": 1}, ["resource", "client_id"]),
    (kv_bodies.KvPutBody, {"key": VALID_KEY, "value": 1}, ["key"]),
    (
        kv_bodies.KvPutBody,
        {"key": VALID_KEY, "value": 1, "session_id": VALID_KEY, "client_id": VALID},
        ["session_id", "client_id"],
    ),
    (kv_bodies.KvDeleteBody, {"key": VALID_KEY}, ["key"]),
    (kv_bodies.KvDeleteBody, {"prefix": VALID_KEY}, ["prefix"]),
    (kv_bodies.IncrBody, {"key": VALID_KEY}, ["key"]),
    (bodies.SetBody, {"key": VALID_KEY, "value": 1}, ["key"]),
    (bodies.CacheKeyBody, {"key": VALID_KEY}, ["key"]),
    (bodies.InvalidateBody, {"src": VALID, "key": VALID_KEY, "version": "1"}, ["src", "key"]),
    (bodies.PushBody, {"topic": VALID, "message": 1, "message_id": VALID_KEY}, ["topic", "message_id"]),
    (bodies.InternalPushBody, {"topic": VALID, "message": 1, "message_id": VALID_KEY}, ["topic", "message_id"]),
    (bodies.PopBody, {"topic": VALID, "consumer_id": VALID}, ["topic", "consumer_id"]),
    (
        bodies.MessageBody,
        {"topic": VALID, "consumer_id": VALID, "message_id": VALID_KEY},
        ["topic", "consumer_id", "message_id"],
    ),
    (
        bodies.ExtendBody,
        {"topic": VALID, "consumer_id": VALID, "message_id": VALID_KEY, "visibility_timeout": 5},
        ["topic", "consumer_id", "message_id"],
    ),
    (bodies.RedriveBody, {"topic": VALID}, ["topic"]),
    (bodies.TransferBody, {"to": VALID}, ["to"]),
    (bodies.AddMemberBody, {"id": VALID, "url": "http://127.0.0.1:8001"}, ["id"]),
]
BODY_FIELDS = [(s, body, f) for s, body, fields in BODIES for f in fields]


@pytest.mark.parametrize(("schema", "body"), [(s, b) for s, b, _ in BODIES], ids=[s.__qualname__ for s, _, _ in BODIES])
def test_a_valid_body_decodes(schema: type[msgspec.Struct], body: dict[str, Any]) -> None:
    decode(json.dumps(body).encode(), schema)


@pytest.mark.parametrize("bad", BAD, ids=repr)
@pytest.mark.parametrize(
    ("schema", "body", "field"), BODY_FIELDS, ids=[f"{s.__qualname__}.{f}" for s, _, f in BODY_FIELDS]
)
def test_a_name_in_a_body_is_matched_whole(
    schema: type[msgspec.Struct], body: dict[str, Any], field: str, bad: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        decode(json.dumps({**body, field: bad}).encode(), schema)
    assert info.value.status == 422 and info.value.code == "invalid_request"
    assert info.value.extra.get("field") == f"$.{field}"


# -- URL paths -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_path_key_and_path_name_match_whole(bad: str) -> None:
    assert path_key(VALID_KEY, "key") == VALID_KEY
    assert path_name(VALID, "topic") == VALID
    for check in (path_key, path_name):
        with pytest.raises(InvalidRequest) as info:
            check(bad, "what")
        assert info.value.code == "invalid_request" and info.value.extra == {"field": "what"}


class _Untouchable:
    """The runtime of the test app (and its services): using one fails loudly (500), not 422."""

    def __getattr__(self, name: str) -> _Untouchable:
        return _Untouchable()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the handler reached the runtime with a bad name")

    def __bool__(self) -> bool:
        raise AssertionError("the handler reached the runtime with a bad name")


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = Starlette(routes=routes(), exception_handlers=HANDLERS)  # type: ignore[arg-type]
    app.state.runtime = _Untouchable()
    with TestClient(app, base_url="http://localhost", raise_server_exceptions=False) as c:
        yield c


# (method, URL with {} for the name, the field named in the error)
PATHS = [
    ("GET", "/lock/status/{}", "resource"),
    ("GET", "/lock/watch/{}?client_id=" + VALID, "resource"),
    ("GET", "/lock/watch/" + VALID_KEY + "?client_id={}", "client_id"),
    ("GET", "/kv/get/{}", "key"),
    ("GET", "/cache/get/{}", "key"),
    ("GET", "/queue/pop/{}/" + VALID, "topic"),
    ("GET", "/queue/pop/" + VALID + "/{}", "consumer_id"),
    ("GET", "/queue/stats/{}", "topic"),
    ("GET", "/queue/dead/{}", "topic"),
    ("POST", "/cluster/members/{}/promote", "id"),
    ("DELETE", "/cluster/members/{}", "id"),
]
PATH_BAD = [b for b in BAD if b]  # an empty path segment is another route (404), not a name


@pytest.mark.parametrize("bad", PATH_BAD, ids=repr)
@pytest.mark.parametrize(("method", "url", "field"), PATHS, ids=[u for _, u, _ in PATHS])
def test_a_name_in_the_url_is_matched_whole(client: TestClient, method: str, url: str, field: str, bad: str) -> None:
    answer = client.request(method, url.format(quote(bad, safe="")))
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_request" and answer.json()["field"] == field


# The issue's own example, and one per body route, through the handlers.
ROUTE_BODIES = [
    ("/lock/acquire", {"resource": "NAME\n", "client_id": "c"}, "$.resource"),
    ("/lock/acquire", {"resource": "r", "client_id": "c\n"}, "$.client_id"),
    ("/lock/release", {"resource": "r\n", "client_id": "c", "fencing_token": 1}, "$.resource"),
    ("/lock/renew", {"resource": "r", "client_id": "c\n", "fencing_token": 1}, "$.client_id"),
    ("/kv/put", {"key": "k\n", "value": 1}, "$.key"),
    ("/kv/delete", {"key": "k\n"}, "$.key"),
    ("/cache/set", {"key": "k\n", "value": 1}, "$.key"),
    ("/cache/delete", {"key": "k\n"}, "$.key"),
    ("/queue/push", {"topic": "t\n", "message": 1}, "$.topic"),
    ("/queue/push", {"topic": "t", "message": 1, "message_id": "m\n"}, "$.message_id"),
    ("/queue/ack", {"topic": "t", "consumer_id": "c\n", "message_id": "m"}, "$.consumer_id"),
    ("/queue/ack", {"topic": "t", "consumer_id": "c", "message_id": "m\n"}, "$.message_id"),
    ("/cluster/members", {"id": "n\n", "url": "http://127.0.0.1:8001"}, "$.id"),
]


@pytest.mark.parametrize(("url", "body", "field"), ROUTE_BODIES, ids=[f"{u}:{f}" for u, _, f in ROUTE_BODIES])
def test_a_body_route_refuses_a_trailing_newline(
    client: TestClient, url: str, body: dict[str, Any], field: str
) -> None:
    answer = client.post(url, content=json.dumps(body), headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_request" and answer.json()["field"] == field


# -- node ids in --peers -----------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["node\n1", "node 1", "n" * 65], ids=repr)
def test_a_node_id_in_peers_is_matched_whole(bad: str) -> None:
    assert parse_peers("node1=http://127.0.0.1:8001") == {"node1": "http://127.0.0.1:8001"}
    with pytest.raises(ConfigError):
        parse_peers(f"{bad}=http://127.0.0.1:8001")
    # parse_peers strips the spaces around an entry; the check itself is whole too.
    assert ID_RE.fullmatch("node1") and not ID_RE.fullmatch("node1\n")


# -- no pattern anywhere ends at a bare `$` ----------------------------------------------------

# A `$` not escaped, not in a character class... is refused unless `(?!\n)` follows it.
_BARE_DOLLAR = re.compile(r"(?<!\\)\$(?!\(\?!\\n\))")

KNOWN_BARE: set[str] = set()  # (where a bare `$` would be right: none today)


def _http_modules() -> Iterator[types.ModuleType]:
    yield rakit.http
    for info in pkgutil.walk_packages(rakit.http.__path__, "rakit.http."):
        yield importlib.import_module(info.name)


def _patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "pattern" and isinstance(v, str):
                yield v
            else:
                yield from _patterns(v)
    elif isinstance(node, list):
        for v in node:
            yield from _patterns(v)


def _schema_patterns() -> Iterator[tuple[str, str]]:
    """(where, pattern) for every string pattern of every Struct and Annotated alias in rakit.http."""
    for module in _http_modules():
        for attr, value in vars(module).items():
            if isinstance(value, type) and issubclass(value, msgspec.Struct) and value.__module__ == module.__name__:
                for field in msgspec.structs.fields(value):
                    try:
                        (schema,), components = msgspec.json.schema_components([field.type])
                    except (TypeError, ValueError):
                        continue
                    for p in _patterns([schema, components]):
                        yield f"{module.__name__}.{attr}.{field.name}", p
            elif getattr(value, "__metadata__", None) is not None:  # an Annotated alias such as Key
                try:
                    schema = msgspec.json.schema(value)
                except (TypeError, ValueError):
                    continue
                for p in _patterns(schema):
                    yield f"{module.__name__}.{attr}", p


def test_the_walk_sees_the_name_types() -> None:
    found = dict(_schema_patterns())
    assert found["rakit.http.json.Key"] == msgspec.json.schema(Key)["pattern"]
    assert found["rakit.http.json.Name"] == msgspec.json.schema(Name)["pattern"]
    assert "rakit.http.bodies.AcquireBody.resource" in found
    assert "rakit.http.schemas.Digest.digest" in found


def test_no_pattern_ends_at_a_bare_dollar() -> None:
    bare = sorted({(where, p) for where, p in _schema_patterns() if _BARE_DOLLAR.search(p) and where not in KNOWN_BARE})
    assert not bare, f"`$` also matches before a final newline; end with `$(?!\\n)`: {bare}"


def test_a_member_url_is_matched_whole() -> None:
    with pytest.raises(InvalidRequest):
        decode(b'{"id": "n", "url": "http://127.0.0.1:8001\\n"}', bodies.AddMemberBody)


def test_the_openapi_document_has_no_bare_dollar() -> None:
    from rakit.http import openapi

    bare = sorted({p for p in _patterns(openapi.build_document()) if _BARE_DOLLAR.search(p)})
    assert not bare, bare


def test_the_name_patterns_mean_the_same_as_ecma_262_would() -> None:
    """The OpenAPI document hands the same text to JavaScript: `$(?!\\n)` is valid there and means the end."""
    for pattern in (msgspec.json.schema(Key)["pattern"], msgspec.json.schema(Name)["pattern"]):
        assert pattern.endswith("$(?!\\n)") and "\\Z" not in pattern
        compiled = re.compile(pattern)
        assert compiled.search("abc") and not compiled.search("abc\n") and not compiled.search("abc\r\n")


@pytest.mark.parametrize(
    ("module", "name", "good"),
    [
        ("tokens", "NAME_RE", "svc"),
        ("tokens", "TOKEN_RE", "t" * 16),
        ("tokens", "SHA256_RE", "a" * 64),
        ("tokens", "PATTERN_RE", "x*"),
        ("internal", "_NODE_RE", "node1"),
        ("internal", "_NONCE_RE", "n" * 16),
    ],
)
def test_token_file_and_signature_fields_are_matched_whole(module: str, name: str, good: str) -> None:
    source = importlib.import_module(f"rakit.security.{module}")
    pattern = getattr(source, name)
    assert pattern.fullmatch(good) and not pattern.fullmatch(good + "\n")
    # the modules check with fullmatch: re.match with ^...$ would let the final newline through
    assert f"{name}.match(" not in Path(source.__file__).read_text()
