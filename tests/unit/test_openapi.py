"""The OpenAPI document (``/openapi.json``) and the ``/docs`` page, in process.

The app is built as the node builds it (``create_app``) but its lifespan is
never run: the documentation endpoints need no runtime.  The completeness
check walks the app's routes, so an endpoint added without an entry in
``rakit.http.openapi.OPERATIONS`` fails here.
"""

from __future__ import annotations

import ast
import html.parser
import importlib
import inspect
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from openapi_spec_validator import OpenAPIV30SpecValidator, OpenAPIV31SpecValidator
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.testclient import TestClient

from rakit.config import NodeConfig
from rakit.http import bodies, kv_bodies, openapi, schemas
from rakit.http.app import create_app
from rakit.http.endpoints import ALL_ENDPOINTS
from rakit.http.json import Key, Name
from rakit.http.routes import locks
from rakit.storage.datadir import open_data_dir

REF = "#/components/schemas/"
KEY_PATTERN = msgspec.json.schema(Key)["pattern"]
NAME_PATTERN = msgspec.json.schema(Name)["pattern"]
KEY_PARAMS = {"resource", "key"}
NAME_PARAMS = {"topic", "consumer_id", "client_id"}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("openapi")
    config = NodeConfig(
        node_id="node1",
        host="127.0.0.1",
        port=8001,
        peers={"node1": "http://127.0.0.1:8001"},
        redis_url="redis://127.0.0.1:6379/0",
        data_dir=root / "node1",
    )
    data_dir = open_data_dir(config.data_dir)
    try:
        yield create_app(config, data_dir)
    finally:
        data_dir.close()


@pytest.fixture(scope="module")
def client(app: Any) -> TestClient:
    return TestClient(app, base_url="http://localhost")  # not entered: the lifespan (the node runtime) never starts


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return openapi.build_document()


def http_routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str, Route]]:
    """(path, method, route) of every HTTP route; WebSockets and static files are not operations."""
    for route in routes:
        if isinstance(route, WebSocketRoute):
            continue
        if isinstance(route, Mount):
            if isinstance(route.app, StaticFiles):
                continue
            yield from http_routes(route.routes, prefix + route.path)
            continue
        assert isinstance(route, Route), f"unexpected route type {route!r}"
        if not route.include_in_schema:
            continue  # deliberately left out of the document
        for method in sorted(route.methods or ()):
            if method != "HEAD":  # Starlette adds HEAD to every GET
                yield prefix + route.path_format, method, route


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield path, method.upper(), op


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        section, kind, name = node["$ref"].removeprefix("#/").split("/")
        node = doc[section][kind][name]
    return node


# -- the document ------------------------------------------------------------------------------


def test_document_is_valid_openapi_31(doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.1.")
    OpenAPIV31SpecValidator(doc).validate()


def test_translation_for_swagger_ui_is_valid_openapi_30(doc: dict[str, Any]) -> None:
    translated = openapi.build_document_30(doc)
    assert translated["openapi"] == "3.0.3"
    OpenAPIV30SpecValidator(translated).validate()
    assert translated["paths"].keys() == doc["paths"].keys()
    text = msgspec.json.encode(translated).decode()
    assert '"type":"null"' not in text and '"const"' not in text


def test_document_is_built_once_and_is_json(doc: dict[str, Any]) -> None:
    assert openapi.document() is openapi.document()
    assert msgspec.json.decode(openapi.document_json()) == doc


def undocumented(routes: list[BaseRoute], doc: dict[str, Any]) -> list[tuple[str, str]]:
    documented = {(path, method) for path, method, _ in operations(doc)}
    return sorted({(path, method) for path, method, _ in http_routes(routes)} - documented)


def test_every_http_route_of_the_app_is_documented(app: Any, doc: dict[str, Any]) -> None:
    served = {(path, method) for path, method, _ in http_routes(app.routes)}
    assert len(served) >= 40, "routes not found"
    missing = undocumented(app.routes, doc)
    assert not missing, f"routes without an entry in rakit.http.openapi.OPERATIONS: {missing}"
    phantom = sorted({(path, method) for path, method, _ in operations(doc)} - served)
    assert not phantom, f"documented but not served: {phantom}"


def test_a_route_added_without_docs_is_caught(app: Any, doc: dict[str, Any]) -> None:
    async def endpoint(request: Any) -> None: ...

    extra = [
        Route("/lock/steal/{resource:path}", endpoint, methods=["POST"]),
        Route("/status", endpoint, methods=["DELETE"]),
        Mount("/admin", routes=[Route("/purge", endpoint, methods=["GET"])]),
    ]
    assert undocumented([*app.routes, *extra], doc) == [
        ("/admin/purge", "GET"),
        ("/lock/steal/{resource}", "POST"),
        ("/status", "DELETE"),
    ]


def test_the_well_known_endpoints_are_there(doc: dict[str, Any]) -> None:
    wanted = {
        ("/lock/acquire", "POST"),
        ("/lock/release", "POST"),
        ("/lock/renew", "POST"),
        ("/lock/status/{resource}", "GET"),
        ("/lock/watch/{resource}", "GET"),
        ("/queue/push", "POST"),
        ("/queue/pop/{topic}/{consumer_id}", "GET"),
        ("/queue/ack", "POST"),
        ("/queue/stats/{topic}", "GET"),
        ("/queue/dead/{topic}", "GET"),
        ("/cache/set", "POST"),
        ("/cache/get/{key}", "GET"),
        ("/cache/delete", "POST"),
        ("/cache/stats", "GET"),
        ("/kv/put", "POST"),
        ("/kv/get/{key}", "GET"),
        ("/health", "GET"),
        ("/status", "GET"),
        ("/metrics", "GET"),
        ("/request_vote", "POST"),
        ("/append_entries", "POST"),
        ("/install_snapshot", "POST"),
        ("/queue/internal/push", "POST"),
        ("/cache/internal/batch", "POST"),
        ("/cache/invalidate", "POST"),
        ("/openapi.json", "GET"),
        ("/docs", "GET"),
    }
    assert wanted <= {(p, m) for p, m, _ in operations(doc)}


def test_internal_endpoints_are_tagged_internal(doc: dict[str, Any]) -> None:
    for path, _, op in operations(doc):
        if "/internal/" in path or path in (
            "/request_vote",
            "/append_entries",
            "/install_snapshot",
            "/cache/invalidate",
        ):
            assert op["tags"] == ["internal"], path


def test_websocket_routes_are_described_in_the_info(app: Any, doc: dict[str, Any]) -> None:
    sockets = [r.path for r in app.routes if isinstance(r, WebSocketRoute)]
    assert "/raft/stream" in sockets and "/cache/stream" in sockets
    for path in sockets:
        assert f"`{path}`" in doc["info"]["description"], path


def test_every_operation_is_described(doc: dict[str, Any]) -> None:
    ids = set()
    for path, method, op in operations(doc):
        where = f"{method} {path}"
        assert op["summary"].strip() and op["description"].strip(), where
        assert op["tags"] and op["operationId"] not in ids, where
        ids.add(op["operationId"])
        assert any(status.startswith("2") for status in op["responses"]), where
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"{([^}]+)}", path)), where
        if method == "POST" and not path.startswith("/docs"):
            assert "requestBody" in op, where


def test_path_and_query_names_carry_the_api_md_patterns(doc: dict[str, Any]) -> None:
    # matched whole: `$(?!\n)`, since `$` alone also matches before a final newline
    assert KEY_PATTERN == r"^[A-Za-z0-9_.:-]+$(?!\n)" and NAME_PATTERN == r"^[A-Za-z0-9_.-]+$(?!\n)"
    seen = set()
    for path, method, op in operations(doc):
        for p in op.get("parameters", []):
            schema = p["schema"]
            if p["name"] in KEY_PARAMS | NAME_PARAMS:
                seen.add(p["name"])
                pattern = KEY_PATTERN if p["name"] in KEY_PARAMS else NAME_PATTERN
                assert (schema["pattern"], schema["minLength"], schema["maxLength"]) == (pattern, 1, 128), (
                    f"{method} {path} {p['name']}"
                )
    assert seen == KEY_PARAMS | NAME_PARAMS


def test_query_parameters(doc: dict[str, Any]) -> None:
    def query(path: str) -> dict[str, dict[str, Any]]:
        return {p["name"]: p for p in doc["paths"][path]["get"]["parameters"] if p["in"] == "query"}

    pop = query("/queue/pop/{topic}/{consumer_id}")
    assert pop["visibility_timeout"]["schema"] == {"type": "number", "minimum": 0.1, "maximum": 43200, "default": 30.0}
    assert pop["wait"]["schema"] == {"type": "number", "minimum": 0, "maximum": 20, "default": 0.0}
    assert not pop["wait"]["required"] and not pop["visibility_timeout"]["required"]
    watch = query("/lock/watch/{resource}")
    assert watch["client_id"]["required"] and watch["client_id"]["schema"]["pattern"] == NAME_PATTERN
    assert watch["timeout"]["schema"] == {"type": "number", "minimum": 0, "maximum": 300, "default": 30.0}
    dead = query("/queue/dead/{topic}")
    assert dead["limit"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": bodies.MAX_DEAD_LIMIT,
        "default": 100,
    }


# -- schemas: the very Structs the handlers use -------------------------------------------------


def decoded_structs(endpoint: Any) -> list[type]:
    """The Structs a handler decodes its body into: ``decode(data, X)`` / ``parse(request, X)``."""
    module = importlib.import_module(endpoint.__module__)
    tree = ast.parse(textwrap.dedent(inspect.getsource(endpoint)))
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("decode", "parse")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Name)
        ):
            struct = getattr(module, node.args[1].id)
            assert issubclass(struct, msgspec.Struct), struct
            found.append(struct)
    return found


def test_every_request_struct_a_handler_decodes_is_its_documented_body(doc: dict[str, Any]) -> None:
    # A declared body is decoded by the prologue (rakit.http.prologue); a handler that reads its
    # request itself is scanned for the Structs it decodes.
    names, _ = openapi.schema_components()
    checked = 0
    for ep in ALL_ENDPOINTS:
        assert ep.handler is not None
        structs = [ep.body] if ep.body is not None else decoded_structs(inspect.unwrap(ep.handler))
        for struct in structs:
            body = doc["paths"][ep.path][ep.method.lower()]["requestBody"]
            assert body["content"]["application/json"]["schema"] == {"$ref": REF + names[struct]}, (ep.path, struct)
            checked += 1
    assert checked >= 15  # sanity: the declarations and the scan found the bodies


def referenced(doc: dict[str, Any]) -> set[str]:
    """Component schemas reachable from the paths (and the component responses they use)."""
    text = msgspec.json.encode(doc["paths"]).decode()
    todo = set(re.findall(r'"#/components/schemas/([^"]+)"', text))
    for name in re.findall(r'"#/components/responses/([^"]+)"', text):
        todo |= set(
            re.findall(
                r'"#/components/schemas/([^"]+)"', msgspec.json.encode(doc["components"]["responses"][name]).decode()
            )
        )
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        seen.add(name)
        inner = msgspec.json.encode(doc["components"]["schemas"][name]).decode()
        todo |= set(re.findall(r'"#/components/schemas/([^"]+)"', inner)) - seen
    return seen


def test_every_struct_of_the_route_modules_is_referenced(app: Any, doc: dict[str, Any]) -> None:
    names, components = openapi.schema_components()
    reachable = referenced(doc)
    modules = {
        importlib.import_module(inspect.unwrap(route.endpoint).__module__) for _, _, route in http_routes(app.routes)
    }
    modules |= {schemas, bodies}
    structs = [
        v
        for m in modules
        for v in vars(m).values()
        if isinstance(v, type) and issubclass(v, msgspec.Struct) and v.__module__ == m.__name__
    ]
    assert bodies.AcquireBody in structs and bodies.SetBody in structs and bodies.PopBody in structs
    unreferenced = sorted(
        f"{s.__module__}.{s.__qualname__}"
        for s in structs
        if s is not schemas.Error and names.get(s, s.__name__) not in reachable
    )
    assert not unreferenced, f"Structs the document does not use: {unreferenced}"
    assert set(components) == reachable | {"Error"}


def test_the_error_shape_is_in_components(doc: dict[str, Any]) -> None:
    error = doc["components"]["schemas"]["Error"]
    assert error["properties"]["error"]["type"] == "string"
    assert error["properties"]["detail"]["type"] == "string"
    assert set(error["required"]) == {"error", "detail"}
    assert error.get("additionalProperties", True) is not False  # more fields may follow


def test_every_error_answer_has_the_error_shape(doc: dict[str, Any]) -> None:
    statuses = set()
    for path, method, op in operations(doc):
        for status, response in op["responses"].items():
            if status.startswith("2"):
                continue
            statuses.add(status)
            assert "$ref" in response, f"{method} {path} {status}: use a components/responses entry"
            schema = resolve(doc, resolve(doc, response)["content"]["application/json"]["schema"])
            assert {"error", "detail"} <= set(schema["required"]), (path, status)
            assert schema["properties"]["detail"]["type"] == "string"
            codes = schema["properties"]["error"]["enum"]
            assert codes and all(isinstance(c, str) for c in codes)
    assert statuses == {"401", "403", "404", "409", "413", "422", "429", "503"}


def test_error_codes_match_the_api(doc: dict[str, Any]) -> None:
    def codes(path: str, method: str, status: str) -> set[str]:
        response = resolve(doc, doc["paths"][path][method]["responses"][status])
        return set(resolve(doc, response["content"]["application/json"]["schema"])["properties"]["error"]["enum"])

    assert codes("/lock/acquire", "post", "409") == {"conflict", "timeout", "deadlock"}
    assert codes("/lock/acquire", "post", "422") == {"invalid_request"}
    assert codes("/lock/acquire", "post", "413") == {"too_large"}
    assert codes("/lock/acquire", "post", "503") >= {"no_leader", "unavailable"}
    assert codes("/lock/acquire", "post", "404") == {"session_not_found"}
    assert codes("/lock/release", "post", "409") == {"not_holder", "token_mismatch"}
    assert codes("/lock/renew", "post", "409") == {"not_holder"}
    assert codes("/queue/ack", "post", "404") == {"not_in_flight"}
    assert codes("/queue/push", "post", "503") == {"unavailable"}
    assert codes("/cache/get/{key}", "get", "404") == {"not_found"}
    assert codes("/kv/get/{key}", "get", "404") == {"not_found"}
    assert codes("/kv/put", "post", "409") == {"revision_mismatch"}
    assert codes("/kv/put", "post", "404") == {"session_not_found"}
    for path in doc["paths"]:
        if path.startswith(("/lock/", "/kv/")) and path != "/kv/watch":  # a watch reads this node's history
            for op in doc["paths"][path].values():
                assert "503" in op["responses"], path
    assert "Retry-After" in doc["components"]["responses"]["LeaderUnavailable"]["headers"]


def test_token_answers_are_documented_where_a_token_is_needed(doc: dict[str, Any]) -> None:
    scheme = doc["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "WWW-Authenticate" in doc["components"]["responses"]["Unauthorized"]["headers"]
    open_paths = {"/health", "/openapi.json", "/docs", "/docs/openapi-3.0.json", "/ui", "/ui/", "/ui/{name}"}
    for path, method, op in operations(doc):
        guarded = op["tags"] != ["internal"] and path not in open_paths
        assert ("401" in op["responses"]) == guarded, (method, path)
        assert ("403" in op["responses"]) == guarded, (method, path)
        assert (op.get("security") == [{"bearerAuth": []}]) == guarded, (method, path)
    response = resolve(doc, doc["paths"]["/lock/acquire"]["post"]["responses"]["429"])
    schema = resolve(doc, response["content"]["application/json"]["schema"])
    assert schema["properties"]["error"]["enum"] == ["too_many_waiters"]


SAMPLES: list[tuple[type, dict[str, Any]]] = [
    (bodies.AcquireBody, {"resource": "orders", "client_id": "w-1"}),
    (bodies.AcquireBody, {"resource": "a:b", "client_id": "w", "mode": "shared", "timeout": 0.5, "ttl": 1}),
    (bodies.AcquireBody, {"resource": "orders"}),
    (bodies.AcquireBody, {"resource": "a b", "client_id": "w"}),
    (bodies.AcquireBody, {"resource": "r", "client_id": "a:b"}),
    (bodies.AcquireBody, {"resource": "r", "client_id": "w", "mode": "both"}),
    (bodies.AcquireBody, {"resource": "r", "client_id": "w", "ttl": 0.5}),
    (bodies.AcquireBody, {"resource": "r", "client_id": "w", "timeout": 301}),
    (bodies.AcquireBody, {"resource": "r" * 129, "client_id": "w"}),
    (bodies.AcquireBody, {"resource": "", "client_id": "w"}),
    (bodies.ReleaseBody, {"resource": "r", "client_id": "w", "fencing_token": -1}),
    (bodies.RenewBody, {"resource": "r", "client_id": "w", "ttl": None}),
    (bodies.SetBody, {"key": "user:42", "value": {"a": [1, None]}, "ttl": 300}),
    (bodies.SetBody, {"key": "k", "value": 1, "ttl": 0}),
    (bodies.SetBody, {"key": "k", "ttl": 1}),
    (bodies.SetBody, {"key": "k", "value": None, "extra": True}),
    (bodies.PushBody, {"topic": "emails", "message": "hi", "message_id": "m:1"}),
    (bodies.PushBody, {"topic": "e:mails", "message": "hi"}),
    (bodies.ExtendBody, {"topic": "t", "consumer_id": "c", "message_id": "m", "visibility_timeout": 0.05}),
    (bodies.RedriveBody, {"topic": "t", "limit": 0}),
    (kv_bodies.IncrBody, {"key": "k", "delta": 2**53 + 1}),
    (kv_bodies.IncrBody, {"key": "k", "delta": 1.5}),
    (kv_bodies.KvPutBody, {"key": "k", "value": 1, "ttl": 0}),
    (kv_bodies.KvPutBody, {"key": "k", "value": 1, "if_revision": -1}),
    (kv_bodies.TxnBody, {"compare": [{"key": "k", "target": "size", "op": "==", "value": 1}]}),
]


@pytest.mark.parametrize(("struct", "body"), SAMPLES)
def test_the_documented_request_schema_agrees_with_msgspec(struct: type, body: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    names, components = openapi.schema_components()
    validator = jsonschema.Draft202012Validator({"$ref": REF + names[struct], "components": {"schemas": components}})
    try:
        msgspec.json.decode(msgspec.json.encode(body), type=struct)
        accepted = True
    except msgspec.ValidationError:
        accepted = False
    assert validator.is_valid(body) == accepted, (struct.__name__, body)


def test_answer_structs_describe_what_the_handlers_encode() -> None:
    # The shapes the handlers build as dicts, as msgspec sees them: encoding the Struct gives the same keys.
    grant = schemas.LockGrant(
        acquired=True,
        resource="r",
        client_id="c",
        mode="shared",
        fencing_token=3,
        ttl=30.0,
        again=False,
        upgraded=False,
    )
    from rakit.statemachines.locks import Granted

    assert msgspec.json.decode(msgspec.json.encode(grant)) == locks.granted_body(
        Granted("r", "c", "shared", 3, 30.0, 3)
    )


# -- served --------------------------------------------------------------------------------------


def test_openapi_json_is_served(client: TestClient, doc: dict[str, Any]) -> None:
    r = client.get("/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json() == doc
    r30 = client.get("/docs/openapi-3.0.json")
    assert r30.status_code == 200 and r30.json()["openapi"] == "3.0.3"


class Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [v for k, v in attrs if k in ("src", "href") and v]


def test_docs_page_uses_only_local_assets(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "http://" not in page and "https://" not in page and "//cdn" not in page
    parser = Links()
    parser.feed(page)
    assert any(link.endswith("swagger-ui-bundle.js") for link in parser.links)
    assert any(link.endswith("swagger-ui.css") for link in parser.links)
    for link in parser.links:
        assert link.startswith("/") and not link.startswith("//"), link
        asset = client.get(link)
        assert asset.status_code == 200, link
        assert len(asset.content) > 0
    spec_url = re.search(r'url:\s*"([^"]+)"', page)
    assert spec_url is not None and spec_url.group(1).startswith("/")
    spec = client.get(spec_url.group(1))
    assert spec.status_code == 200
    assert spec.json()["paths"].keys() == openapi.document()["paths"].keys()


def test_swagger_ui_files_come_from_the_package(client: TestClient) -> None:
    directory = Path(openapi.swagger_ui_dir())
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        r = client.get(f"/docs/static/{name}")
        assert r.status_code == 200
        assert r.content == (directory / name).read_bytes()
    assert client.get("/docs/static/nothing.js").status_code == 404
    # not the bundle's demo page (it would load a remote example document)
    assert client.get("/docs/static/index.html").status_code == 404
    assert client.get("/docs/static/swagger-initializer.js").status_code == 404
    assert client.get("/docs/static/../openapi.json").status_code == 404


def test_the_page_reads_a_document_its_swagger_ui_can_render() -> None:
    # Swagger UI reads OpenAPI 3.1 only from version 5 on.
    expected = "/openapi.json" if openapi.swagger_ui_major() >= 5 else "/docs/openapi-3.0.json"
    assert f'url: "{expected}"' in openapi.docs_html()


def test_the_3_1_document_uses_no_3_0_keywords(doc: dict[str, Any]) -> None:
    # Plain JSON Schema 2020-12: no `nullable`, no boolean exclusive bounds.
    text = msgspec.json.encode(doc["components"]["schemas"]).decode()
    assert '"nullable"' not in text and '"exclusiveMinimum":true' not in text
