"""Node-to-node authentication (``rakit.security.internal``) and its middleware branch."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from rakit.http.security import SecurityMiddleware
from rakit.security.internal import (
    BODY_HEADER,
    NODE_HEADER,
    NONCE_HEADER,
    SIG_HEADER,
    TS_HEADER,
    InternalAuth,
    is_internal,
)
from rakit.security.tokens import ClientAuth

SECRET = "s3cret-s3cret-s3cret-s3cret"
OTHER = "another-secret-another-secret"
BODY = b'{"topic":"t","message_id":"m1","message":{"a":1}}'
PATH = "/queue/internal/push"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def pair(clock: Clock | None = None, **kwargs: Any) -> tuple[InternalAuth, InternalAuth]:
    """(node1 signing, node2 checking), sharing SECRET and a clock."""
    clock = clock or Clock()
    return (InternalAuth(SECRET, "node1", clock=clock, **kwargs), InternalAuth(SECRET, "node2", clock=clock, **kwargs))


def test_a_good_signature_is_accepted_once() -> None:
    signer, checker = pair()
    headers = signer.headers("POST", PATH, BODY, dst="node2")
    assert set(headers) == {NODE_HEADER, TS_HEADER, NONCE_HEADER, BODY_HEADER, SIG_HEADER}
    assert headers[NODE_HEADER] == "node1"
    assert checker.check("POST", PATH, headers, BODY) is None
    reason = checker.check("POST", PATH, headers, BODY)  # the same call again: a replay
    assert reason is not None and "replayed" in reason
    assert checker.refused == 1


def test_every_call_gets_a_fresh_nonce_and_a_websocket_handshake_signs_an_empty_body() -> None:
    signer, checker = pair()
    first = signer.headers("GET", "/raft/stream", dst="node2")
    second = signer.headers("GET", "/raft/stream", dst="node2")
    assert first[NONCE_HEADER] != second[NONCE_HEADER]
    assert checker.check("GET", "/raft/stream", first) is None
    assert checker.check("GET", "/raft/stream", second) is None


def test_wrong_secret_is_refused() -> None:
    clock = Clock()
    intruder = InternalAuth(OTHER, "node1", clock=clock)
    checker = InternalAuth(SECRET, "node2", clock=clock)
    reason = checker.check("POST", PATH, intruder.headers("POST", PATH, BODY, dst="node2"), BODY)
    assert reason is not None and "bad signature" in reason
    assert checker.remembered == 0  # refused calls do not use up cache room


@pytest.mark.parametrize("skew", [-31.0, 31.0, -3600.0, 10 * 365 * 86400.0])
def test_a_timestamp_outside_the_window_is_refused(skew: float) -> None:
    clock = Clock()
    signer, checker = pair(clock)
    clock.now += -skew  # signed at "now - skew" seen from the checker
    headers = signer.headers("POST", PATH, BODY, dst="node2")
    clock.now += skew
    reason = checker.check("POST", PATH, headers, BODY)
    assert reason is not None and "stale" in reason


@pytest.mark.parametrize("skew", [-29.0, 29.0])
def test_a_timestamp_inside_the_window_is_accepted(skew: float) -> None:
    clock = Clock()
    clock.now -= 60  # the checking node started a minute ago
    signer, checker = pair(clock)
    clock.now += 60
    clock.now -= skew
    headers = signer.headers("POST", PATH, BODY, dst="node2")
    clock.now += skew
    assert checker.check("POST", PATH, headers, BODY) is None


def test_a_call_signed_before_the_checker_started_is_refused_so_a_restart_opens_no_replay() -> None:
    clock = Clock()
    signer, checker = pair(clock)
    headers = signer.headers("POST", PATH, BODY, dst="node2")
    assert checker.check("POST", PATH, headers, BODY) is None
    clock.now += 5  # node2 restarts: its nonce cache is empty, but the call predates the process
    restarted = InternalAuth(SECRET, "node2", clock=clock)
    assert "replayed" in (restarted.check("POST", PATH, headers, BODY) or "")


def test_a_replayed_nonce_is_refused_even_with_a_new_timestamp() -> None:
    signer, checker = pair()
    headers = signer.headers("POST", PATH, BODY, dst="node2")
    assert checker.check("POST", PATH, headers, BODY) is None
    forged = {**headers, TS_HEADER: f"{float(headers[TS_HEADER]) + 1:.3f}"}  # the MAC no longer matches
    assert "bad signature" in (checker.check("POST", PATH, forged, BODY) or "")
    assert "replayed" in (checker.check("POST", PATH, headers, BODY) or "")


@pytest.mark.parametrize("change", ["body", "body_hash", "path", "method", "query", "caller", "callee", "nonce", "sig"])
def test_tampering_with_anything_signed_is_refused(change: str) -> None:
    clock = Clock()
    signer, checker = pair(clock)
    method, path, body = "POST", PATH, BODY
    headers = signer.headers(method, path, body, dst="node2")
    if change == "body":
        body = BODY.replace(b"m1", b"m2")
    elif change == "body_hash":  # the hash the signature covers, changed with the body
        body = BODY.replace(b"m1", b"m2")
        headers = {**headers, BODY_HEADER: hashlib.sha256(body).hexdigest()}
    elif change == "path":
        path = "/queue/internal/ack"
    elif change == "method":
        method = "PUT"
    elif change == "query":
        path = PATH + "?wait=20"
    elif change == "caller":
        headers = {**headers, NODE_HEADER: "node3"}
    elif change == "callee":  # signed for node2, replayed to node3
        checker = InternalAuth(SECRET, "node3", clock=clock)
    elif change == "nonce":
        headers = {**headers, NONCE_HEADER: "A" * 22}
    elif change == "sig":
        sig = headers[SIG_HEADER]
        headers = {**headers, SIG_HEADER: ("0" if sig[0] != "0" else "1") + sig[1:]}
    reason = checker.check(method, path, headers, body)
    expected = "does not match its signed hash" if change == "body" else "bad signature"
    assert reason is not None and expected in reason


def test_missing_or_malformed_headers_are_refused() -> None:
    signer, checker = pair()
    good = signer.headers("POST", PATH, BODY, dst="node2")
    assert "missing" in (checker.check("POST", PATH, {}, BODY) or "")
    for name in (NODE_HEADER, TS_HEADER, NONCE_HEADER, SIG_HEADER):
        partial = {k: v for k, v in good.items() if k != name}
        assert name in (checker.check("POST", PATH, partial, BODY) or "")
    for name, bad in (
        (TS_HEADER, "soon"),
        (TS_HEADER, "nan"),
        (NONCE_HEADER, "short"),
        (SIG_HEADER, "zz" * 32),
        (NODE_HEADER, "a b"),
    ):
        reason = checker.check("POST", PATH, {**good, name: bad}, BODY)
        assert reason is not None and "malformed" in reason, (name, bad, reason)
    assert checker.check("POST", PATH, good, BODY) is None  # none of that used the nonce up


def test_without_a_secret_nothing_is_signed_or_checked() -> None:
    off = InternalAuth(None, "node1")
    assert not off.enabled
    assert off.headers("POST", PATH, BODY, dst="node2") == {}
    assert off.check("POST", PATH, {}, BODY) is None


def test_the_replay_cache_is_bounded_and_never_lets_an_evicted_nonce_back_in() -> None:
    clock = Clock()
    signer, checker = pair(clock, max_nonces=3)
    sent = []
    for _ in range(10):
        clock.now += 0.01
        headers = signer.headers("POST", PATH, BODY, dst="node2")
        assert checker.check("POST", PATH, headers, BODY) is None
        sent.append(headers)
        assert checker.remembered <= 3
    for headers in sent:  # every one of them, forgotten or not, is refused again
        assert "replayed" in (checker.check("POST", PATH, headers, BODY) or "")
    clock.now += 0.01
    assert checker.check("POST", PATH, signer.headers("POST", PATH, BODY, dst="node2"), BODY) is None


def test_nonces_are_forgotten_once_their_timestamp_leaves_the_window() -> None:
    clock = Clock()
    signer, checker = pair(clock)
    for _ in range(100):
        assert checker.check("POST", PATH, signer.headers("POST", PATH, BODY, dst="node2"), BODY) is None
    assert checker.remembered == 100
    clock.now += 31
    assert checker.check("POST", PATH, signer.headers("POST", PATH, BODY, dst="node2"), BODY) is None
    assert checker.remembered == 1


def test_internal_paths() -> None:
    for path in (
        "/request_vote",
        "/append_entries",
        "/install_snapshot",
        "/raft/stream",
        "/cache/invalidate",
        "/cache/internal/batch",
        "/cache/stream",
        "/queue/internal/push",
        "/queue/internal/pop",
    ):
        assert is_internal(path), path
    for path in ("/status", "/health", "/cache/stats", "/cache/get/k", "/queue/push", "/kv/put", "/ui"):
        assert not is_internal(path), path


# -- the middleware ---------------------------------------------------------------


@pytest.fixture
def client() -> TestClient:
    async def echo(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse({"len": len(body), "body": body.decode()})

    async def stream(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_bytes(b"hello")
        await websocket.close()

    internal = InternalAuth(SECRET, "node2")
    app = Starlette(
        routes=[
            Route(PATH, echo, methods=["POST"]),
            Route("/append_entries", echo, methods=["POST"]),
            Route("/status", echo, methods=["GET"]),
            WebSocketRoute("/raft/stream", stream),
        ],
        middleware=[Middleware(SecurityMiddleware, internal=internal, clients=ClientAuth(None))],
    )
    return TestClient(app)


def test_a_signed_post_reaches_the_app_with_its_body(client: TestClient) -> None:
    signer = InternalAuth(SECRET, "node1")
    big = b'{"x":"' + b"y" * 300_000 + b'"}'
    for body in (BODY, big, b""):
        resp = client.post(PATH, content=body, headers=signer.headers("POST", PATH, body, dst="node2"))
        assert resp.status_code == 200, resp.text
        assert resp.json()["len"] == len(body) and resp.json()["body"] == body.decode()


def test_unsigned_or_badly_signed_posts_get_401(client: TestClient) -> None:
    signer = InternalAuth(SECRET, "node1")
    intruder = InternalAuth(OTHER, "node1")
    cases = [
        {},
        intruder.headers("POST", PATH, BODY, dst="node2"),
        signer.headers("POST", PATH, BODY + b" ", dst="node2"),  # the body differs from what was signed
        signer.headers("POST", "/append_entries", BODY, dst="node2"),  # signed for another path
        signer.headers("POST", PATH, BODY, dst="node3"),  # signed for another node
    ]
    for headers in cases:
        resp = client.post(PATH, content=BODY, headers=headers)
        assert resp.status_code == 401, resp.text
        assert resp.json()["error"] == "unauthorized" and isinstance(resp.json()["detail"], str)
    headers = signer.headers("POST", PATH, BODY, dst="node2")
    assert client.post(PATH, content=BODY, headers=headers).status_code == 200
    replay = client.post(PATH, content=BODY, headers=headers)
    assert replay.status_code == 401 and "replayed" in replay.json()["detail"]
    assert client.get("/status").status_code == 200  # public paths are not this branch's business


def test_a_too_large_internal_body_is_refused_before_it_is_read(client: TestClient) -> None:
    signer = InternalAuth(SECRET, "node1")
    headers = {**signer.headers("POST", PATH, b"", dst="node2"), "content-length": str(1 << 30)}
    resp = client.post(PATH, content=b"", headers=headers)
    assert resp.status_code == 413 and resp.json()["error"] == "too_large"


def test_websocket_handshakes_are_checked(client: TestClient) -> None:
    signer = InternalAuth(SECRET, "node1")
    with client.websocket_connect("/raft/stream", headers=signer.headers("GET", "/raft/stream", dst="node2")) as ws:
        assert ws.receive_bytes() == b"hello"
    for headers in ({}, InternalAuth(OTHER, "node1").headers("GET", "/raft/stream", dst="node2")):
        with pytest.raises(WebSocketDisconnect) as refused:
            with client.websocket_connect("/raft/stream", headers=headers) as ws:
                ws.receive_bytes()
        assert refused.value.code == 4401


# -- who gets the secret: LocalCluster / rakit up, docker-compose ---------------------


def test_local_cluster_makes_up_a_secret_per_cluster_unless_one_is_given(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rakit.launcher import LocalCluster as Cluster

    made: list[Cluster] = []

    def LocalCluster(*args: Any, **kwargs: Any) -> Any:
        made.append(cluster := Cluster(*args, **kwargs))
        return cluster

    monkeypatch.delenv("CLUSTER_SECRET", raising=False)
    monkeypatch.delenv("CLUSTER_SECRET_FILE", raising=False)
    first, second = LocalCluster(3, tmp_path / "a"), LocalCluster(3, tmp_path / "b")
    try:
        assert first.secret_generated and first.cluster_secret and len(first.cluster_secret) >= 32
        assert first.cluster_secret != second.cluster_secret
        assert {n.env["CLUSTER_SECRET"] for n in first.nodes.values()} == {first.cluster_secret}
        assert all(first.cluster_secret not in " ".join(n.argv) for n in first.nodes.values())  # not in ps

        given = LocalCluster(3, tmp_path / "c", cluster_secret="x" * 20)
        assert given.cluster_secret == "x" * 20 and not given.secret_generated
        assert {n.env["CLUSTER_SECRET"] for n in given.nodes.values()} == {"x" * 20}

        flag = LocalCluster(3, tmp_path / "d", extra_args=["--cluster-secret", "y" * 20])
        assert flag.cluster_secret == "y" * 20 and not flag.secret_generated
        assert all("CLUSTER_SECRET" not in n.env for n in flag.nodes.values())

        secret_file = tmp_path / "secret"
        secret_file.write_text("z" * 20 + "\n")
        from_file = LocalCluster(3, tmp_path / "e", env={"CLUSTER_SECRET_FILE": str(secret_file)})
        assert from_file.cluster_secret == "z" * 20 and "CLUSTER_SECRET" not in from_file.nodes["node1"].env

        monkeypatch.setenv("CLUSTER_SECRET", "w" * 20)  # e.g. CLUSTER_SECRET=... rakit up
        inherited = LocalCluster(3, tmp_path / "f")
        assert inherited.cluster_secret == "w" * 20 and not inherited.secret_generated
        monkeypatch.delenv("CLUSTER_SECRET")

        off = LocalCluster(3, tmp_path / "g", cluster_secret=False)
        assert off.cluster_secret is None and all("CLUSTER_SECRET" not in n.env for n in off.nodes.values())
        with pytest.raises(ValueError, match="twice"):
            LocalCluster(
                3, tmp_path / "h", extra_args=["--cluster-secret-file", str(secret_file)], cluster_secret="x" * 20
            )
    finally:
        for cluster in made:
            cluster.close()


def test_compose_gives_every_node_the_cluster_secret_and_has_no_default_one() -> None:
    from pathlib import Path

    import yaml

    from rakit.config import ConfigError, build_config

    compose = yaml.safe_load((Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text())
    values = set()
    for name in ("node1", "node2", "node3"):
        env = compose["services"][name]["environment"]
        value = str(env["CLUSTER_SECRET"])
        # ${VAR:?message}: compose refuses to start unless RAKIT_CLUSTER_SECRET is set.
        assert value.startswith("${RAKIT_CLUSTER_SECRET:?") and value.endswith("}"), value
        config = build_config(
            node_id=name,
            host="0.0.0.0",
            port=None,
            peers=env["PEERS"],
            redis_url=env["REDIS_URL"],
            data_dir="/data",
            cluster_secret="s" * 32,
        )
        assert config.cluster_secret == "s" * 32
        with pytest.raises(ConfigError, match="reachable from the network"):
            build_config(
                node_id=name,
                host="0.0.0.0",
                port=None,
                peers=env["PEERS"],
                redis_url=env["REDIS_URL"],
                data_dir="/data",
            )
        values.add(value)
    assert len(values) == 1  # one secret for the whole cluster
