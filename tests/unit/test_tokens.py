"""Client API tokens (rakit.security.tokens): the file, the grant grammar, matching, and the middleware."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from rakit.config import ConfigError, build_config
from rakit.http.endpoints import PERMISSIONS
from rakit.http.identity import identity_of
from rakit.http.security import SecurityMiddleware
from rakit.security.internal import InternalAuth
from rakit.security.tokens import (
    IDENTITY_HEADER,
    NODE_IDENTITY,
    OPEN,
    ClientAuth,
    Grant,
    Identity,
    Need,
    Refusal,
    identity_binding,
    load_tokens,
    parse_grant,
)

ORDERS = "orders-token-0123456789"
OPS = "ops-token-0123456789abcdef"
SECRET = "cluster-secret-0123456789"


def write(tmp_path: Path, doc: Any, name: str = "tokens.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    return write(
        tmp_path,
        {
            "tokens": [
                {
                    "name": "orders-svc",
                    "token": ORDERS,
                    "grants": ["locks:orders.*", "queue:read:emails", "queue:write:emails", "cache:*", "status"],
                },
                {"name": "ops", "sha256": hashlib.sha256(OPS.encode()).hexdigest(), "grants": ["admin"]},
            ]
        },
    )


# -- the grammar ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "grant"),
    [
        ("*", Grant("*")),
        ("status", Grant("status")),
        ("admin", Grant("admin")),
        ("members", Grant("members")),
        ("locks", Grant("locks", "*", "*")),
        ("locks:orders.*", Grant("locks", "*", "orders.*")),
        ("locks:read:orders.*", Grant("locks", "read", "orders.*")),
        ("locks:*:read:*", Grant("locks", "*", "read:*")),  # every action on the keys read:*
        ("cache:*", Grant("cache", "*", "*")),
        ("cache:user:*", Grant("cache", "*", "user:*")),  # keys may contain ':'
        ("cache:write:user:?", Grant("cache", "write", "user:?")),
        ("queue:read:emails", Grant("queue", "read", "emails")),
        ("queue:write", Grant("queue", "write", "*")),
        ("kv:read:*", Grant("kv", "read", "*")),
    ],
)
def test_grammar(text: str, grant: Grant) -> None:
    assert parse_grant(text) == grant


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "non-empty"),
        (7, "non-empty string"),
        ("lock:orders", "unknown grant"),
        ("admin:x", "unknown grant"),
        ("members:x", "unknown grant"),
        ("status:*", "unknown grant"),
        ("locks:read:", "pattern"),
        ("locks:", "pattern"),
        ("locks:a b", "pattern"),
        ("locks:a/b", "pattern"),
        ("queue:emails:read", "topics never contain ':'"),
        ("locks:" + "x" * 257, "pattern"),
    ],
)
def test_grammar_refuses(text: Any, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_grant(text)


def test_matching() -> None:
    me = Identity(
        "svc", tuple(parse_grant(g) for g in ["locks:orders.*", "queue:read:emails", "cache:write:user:?", "kv:read:*"])
    )
    assert me.allows("locks", "write", "orders.1") and me.allows("locks", "read", "orders.")
    assert not me.allows("locks", "write", "orders") and not me.allows("locks", "write", "xorders.1")
    assert not me.allows("locks", "write", "ORDERS.1")  # case-sensitive
    assert me.allows("queue", "read", "emails") and not me.allows("queue", "write", "emails")
    assert not me.allows("queue", "read", "emails2")
    assert me.allows("cache", "write", "user:1") and not me.allows("cache", "write", "user:12")
    assert not me.allows("cache", "read", "user:1")
    assert me.allows("kv", "read", "anything") and not me.allows("kv", "write", "a")
    assert not me.allows("status") and not me.allows("admin")
    # no name: "may it do this on some name" (the middleware's first check, or cache stats)
    assert me.allows("cache", "write") and not me.allows("cache", "read") and not me.allows("queue", "write")
    root = Identity("root", (Grant("*"),))
    assert root.allows("admin") and root.allows("locks", "write", "x") and root.allows("status")
    # regex characters in a pattern are literal: "." is a dot, not any character
    dot = Identity("d", (parse_grant("locks:a.b"),))
    assert dot.allows("locks", "read", "a.b") and not dot.allows("locks", "read", "axb")


def test_what_each_path_needs() -> None:
    assert (
        PERMISSIONS.need("/health") is OPEN
        and PERMISSIONS.need("/openapi.json") is OPEN
        and PERMISSIONS.need("/docs") is OPEN
    )
    assert (
        PERMISSIONS.need("/docs/openapi-3.0.json") is OPEN and PERMISSIONS.need("/docs/static/swagger-ui.css") is OPEN
    )
    assert PERMISSIONS.need("/ui") is OPEN and PERMISSIONS.need("/ui/app.js") is OPEN
    assert PERMISSIONS.need("/status") == Need("status")
    for path in ("/metrics", "/debug/digest", "/cluster/overview", "/lock/table", "/queue/topics"):
        assert PERMISSIONS.need(path) == Need("admin"), path
    assert PERMISSIONS.need("/lock/acquire") == Need("locks", "write")
    assert PERMISSIONS.need("/lock/status/a:b") == Need("locks", "read", "a:b")
    assert PERMISSIONS.need("/lock/watch/orders.1") == Need("locks", "read", "orders.1")
    assert PERMISSIONS.need("/queue/pop/emails/worker-1") == Need("queue", "read", "emails")
    assert (
        PERMISSIONS.need("/queue/stats/emails")
        == PERMISSIONS.need("/queue/dead/emails")
        == Need("queue", "read", "emails")
    )
    for op in ("push", "ack", "nack", "extend", "redrive"):
        assert PERMISSIONS.need(f"/queue/{op}") == Need("queue", "write"), op
    assert PERMISSIONS.need("/cache/get/user:1") == Need("cache", "read", "user:1")
    assert PERMISSIONS.need("/cache/stats") == Need("cache", "read")
    assert PERMISSIONS.need("/cache/set") == PERMISSIONS.need("/cache/delete") == Need("cache", "write")
    assert PERMISSIONS.need("/kv/get/k") == Need("kv", "read", "k") and PERMISSIONS.need("/kv/put") == Need(
        "kv", "write"
    )
    assert PERMISSIONS.need("/nowhere") == Need("")  # any valid token; the app then answers 404


# -- the file -------------------------------------------------------------------------------------


def test_load(tokens_file: Path) -> None:
    entries = load_tokens(tokens_file)
    assert [e.identity.name for e in entries] == ["orders-svc", "ops"]
    assert entries[0].digest == hashlib.sha256(ORDERS.encode()).digest()  # only the digest is kept
    assert entries[1].identity.grants == (Grant("admin"),)


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        ("{not json", "not valid JSON"),
        ([], "expected a JSON object"),
        ({"tokens": {}}, "expected a JSON object"),
        ({"tokens": []}, "lists no token"),
        ({"tokens": [], "extra": 1}, "unknown key"),
        ({"tokens": ["x"]}, r"tokens\[0\]: expected an object"),
        ({"tokens": [{"name": "a", "token": ORDERS, "grants": [], "grant": []}]}, "unknown key.*'grant'"),
        ({"tokens": [{"name": "a b", "token": ORDERS, "grants": []}]}, "name must be"),
        ({"tokens": [{"token": ORDERS, "grants": []}]}, "name must be"),
        ({"tokens": [{"name": "a", "grants": []}]}, "exactly one of token and sha256"),
        ({"tokens": [{"name": "a", "token": ORDERS, "sha256": "0" * 64, "grants": []}]}, "exactly one"),
        ({"tokens": [{"name": "a", "token": "short", "grants": []}]}, "16-4096 printable"),
        ({"tokens": [{"name": "a", "token": "has a space in it!!", "grants": []}]}, "16-4096 printable"),
        ({"tokens": [{"name": "a", "sha256": "xyz", "grants": []}]}, "64 hex digits"),
        ({"tokens": [{"name": "a", "token": ORDERS}]}, "grants must be a list"),
        ({"tokens": [{"name": "a", "token": ORDERS, "grants": "status"}]}, "grants must be a list"),
        ({"tokens": [{"name": "a", "token": ORDERS, "grants": ["lock:x"]}]}, r"tokens\[0\] \('a'\): unknown grant"),
        (
            {"tokens": [{"name": "a", "token": ORDERS, "grants": []}, {"name": "a", "token": OPS, "grants": []}]},
            "used twice",
        ),
        (
            {
                "tokens": [
                    {"name": "a", "token": ORDERS, "grants": []},
                    {"name": "b", "sha256": hashlib.sha256(ORDERS.encode()).hexdigest(), "grants": []},
                ]
            },
            "same token is listed twice",
        ),
    ],
)
def test_a_malformed_file_is_a_one_line_config_error(tmp_path: Path, doc: Any, why: str) -> None:
    path = write(tmp_path, doc)
    with pytest.raises(ConfigError, match=why) as info:
        load_tokens(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def config(**kw: Any) -> Any:
    return build_config(
        node_id="n1",
        host="127.0.0.1",
        port=None,
        peers="n1=http://127.0.0.1:9",
        redis_url="redis://127.0.0.1:6379/0",
        data_dir=None,
        **kw,
    )


def test_config_wants_the_file_and_a_cluster_secret_and_security_reads_it(tmp_path: Path, tokens_file: Path) -> None:
    with pytest.raises(ConfigError, match="--auth-tokens needs --cluster-secret"):
        config(auth_tokens=str(tokens_file))
    with pytest.raises(ConfigError, match="no such file"):
        config(auth_tokens=str(tmp_path / "missing.json"), cluster_secret=SECRET)
    # The file itself is read once, at start, by the security layer (config only parses the flags).
    malformed = config(auth_tokens=str(write(tmp_path, "{", "bad.json")), cluster_secret=SECRET)
    with pytest.raises(ConfigError, match="not valid JSON"):
        ClientAuth(malformed.auth_tokens, PERMISSIONS)
    assert config(auth_tokens=str(tokens_file), cluster_secret=SECRET).auth_tokens == tokens_file
    assert config().auth_tokens is None  # off by default


def test_the_node_command_refuses_a_malformed_file_with_exit_2(tmp_path: Path, capsys: Any) -> None:
    from rakit.cli import main

    bad = write(tmp_path, {"tokens": [{"name": "a", "token": ORDERS, "grants": ["locks:a b"]}]})
    with pytest.raises(SystemExit) as info:
        main(
            [
                "node",
                "--id",
                "n1",
                "--peers",
                "n1=http://127.0.0.1:9",
                "--data-dir",
                str(tmp_path / "d"),
                "--cluster-secret",
                SECRET,
                "--auth-tokens",
                str(bad),
            ]
        )
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("rakit: error: --auth-tokens") and "pattern 'a b'" in err and err.count("\n") == 1


# -- the checker ------------------------------------------------------------------------------------


def outcome(result: Identity | Refusal | None) -> str | int | None:
    """A check's result, short: the identity's name, the refusal's status, or None (open)."""
    return result.name if isinstance(result, Identity) else result.status if result is not None else None


def test_check(tokens_file: Path) -> None:
    auth = ClientAuth(tokens_file, PERMISSIONS)
    assert auth.enabled and not ClientAuth(None).enabled

    def check(path: str, authorization: str | None = None) -> str | int | None:
        return outcome(auth.check("GET", path, {"authorization": authorization} if authorization else {}))

    orders, ops = f"Bearer {ORDERS}", f"Bearer {OPS}"
    assert check("/health") is None  # open
    assert check("/status") == 401
    assert check("/status", "Basic abc") == check("/status", "Bearer") == 401
    assert auth.check("GET", "/status", {"authorization": "Bearer wrong-token-0123456789"}) == (
        401,
        "unauthorized",
        "unknown API token",
        None,
    )
    assert check("/status", orders) == check("/status", f"bearer  {ORDERS} ") == "orders-svc"
    assert check("/lock/acquire", orders) == "orders-svc"  # the resource (in the body) is the route's to check
    assert auth.check("GET", "/lock/status/payments", {"authorization": orders}) == (
        403,
        "forbidden",
        "token 'orders-svc' is not granted locks:read on 'payments'",
        None,
    )
    assert check("/metrics", orders) == 403
    assert check("/kv/put", orders) == 403  # no kv grant at all
    assert check("/metrics", ops) == "ops"  # listed by its sha256
    assert check("/status", ops) == 403  # admin is not status
    # operator calls (signed with the secret first): only a token with the members grant (or *)
    assert outcome(auth.operator({"authorization": ops})) == 403
    assert outcome(auth.operator({})) == 401
    # relayed by a peer: looked up by name, grants checked again
    assert outcome(auth.on_behalf_of("orders-svc", "/lock/status/orders.1")) == "orders-svc"
    assert outcome(auth.on_behalf_of("orders-svc", "/lock/status/x")) == 403
    assert outcome(auth.on_behalf_of("stranger", "/status")) == 401
    assert outcome(auth.on_behalf_of(NODE_IDENTITY, "/cache/stats")) == NODE_IDENTITY


# -- the middleware ---------------------------------------------------------------------------------


async def echo(request: Request) -> JSONResponse:
    identity = identity_of(request)
    body = await request.body()
    return JSONResponse({"identity": identity.name if identity else None, "body": body.decode()})


def app(tokens_file: Path, node_id: str = "n1") -> Starlette:
    routes = [
        Route(p, echo, methods=["GET", "POST"])
        for p in ("/health", "/status", "/lock/acquire", "/lock/status/{r:path}", "/metrics", "/openapi.json")
    ]
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(
                SecurityMiddleware, internal=InternalAuth(SECRET, node_id), clients=ClientAuth(tokens_file, PERMISSIONS)
            )
        ],
    )


def test_middleware_answers_401_and_403_and_sets_the_identity(tokens_file: Path) -> None:
    client = TestClient(app(tokens_file))
    assert client.get("/health").json() == {"identity": None, "body": ""}
    assert client.get("/openapi.json").status_code == 200
    r = client.get("/status")
    assert r.status_code == 401 and r.json()["error"] == "unauthorized" and "Bearer" in r.json()["detail"]
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = client.get("/status", headers={"Authorization": "Bearer nope-nope-nope-nope"})
    assert (r.status_code, r.json()) == (401, {"error": "unauthorized", "detail": "unknown API token"})
    r = client.get("/lock/status/payments", headers={"Authorization": f"Bearer {ORDERS}"})
    assert r.status_code == 403 and r.json()["error"] == "forbidden" and "payments" in r.json()["detail"]
    assert "www-authenticate" not in r.headers
    r = client.get("/lock/status/orders.1", headers={"Authorization": f"Bearer {ORDERS}"})
    assert r.json()["identity"] == "orders-svc"
    r = client.post("/lock/acquire", content=b'{"x": 1}', headers={"Authorization": f"Bearer {ORDERS}"})
    assert r.json() == {"identity": "orders-svc", "body": '{"x": 1}'}


def test_middleware_trusts_a_relayed_identity_only_when_signed(tokens_file: Path) -> None:
    client = TestClient(app(tokens_file, node_id="leader"))
    peer = InternalAuth(SECRET, "follower")
    body = b'{"resource": "orders.1"}'

    def signed(name: str, path: str = "/lock/acquire", data: bytes = body, dst: str = "leader") -> dict[str, str]:
        return {**peer.headers("POST", path, identity_binding(name, data), dst=dst), IDENTITY_HEADER: name}

    r = client.post("/lock/acquire", content=body, headers=signed("orders-svc"))
    assert r.status_code == 200 and r.json() == {"identity": "orders-svc", "body": body.decode()}
    # the header alone (a client trying to be someone else), even with a valid token: refused
    r = client.post(
        "/lock/acquire", content=body, headers={IDENTITY_HEADER: "ops", "Authorization": f"Bearer {ORDERS}"}
    )
    assert r.status_code == 401 and IDENTITY_HEADER in r.json()["detail"]
    # signed for another name, another body, another node, or replayed: refused
    forged = {**signed("orders-svc"), IDENTITY_HEADER: "ops"}
    assert client.post("/lock/acquire", content=body, headers=forged).status_code == 401
    assert client.post("/lock/acquire", content=b'{"resource": "x"}', headers=signed("orders-svc")).status_code == 401
    assert client.post("/lock/acquire", content=body, headers=signed("orders-svc", dst="other")).status_code == 401
    once = signed("orders-svc")
    assert client.post("/lock/acquire", content=body, headers=once).status_code == 200
    assert client.post("/lock/acquire", content=body, headers=once).status_code == 401
    # a wrong secret
    stranger = InternalAuth("another-secret-0123456789", "follower")
    headers = {
        **stranger.headers("POST", "/lock/acquire", identity_binding("orders-svc", body), dst="leader"),
        IDENTITY_HEADER: "orders-svc",
    }
    assert client.post("/lock/acquire", content=body, headers=headers).status_code == 401
    # the grants are checked again on the relayed name
    path = "/lock/status/payments"
    r = client.get(
        path,
        headers={
            **peer.headers("GET", path, identity_binding("orders-svc", b""), dst="leader"),
            IDENTITY_HEADER: "orders-svc",
        },
    )
    assert r.status_code == 403
    # the node's own identity (dashboard overview): everything
    r = client.get(
        "/metrics",
        headers={
            **peer.headers("GET", "/metrics", identity_binding(NODE_IDENTITY, b""), dst="leader"),
            IDENTITY_HEADER: NODE_IDENTITY,
        },
    )
    assert r.status_code == 200 and r.json()["identity"] == NODE_IDENTITY
