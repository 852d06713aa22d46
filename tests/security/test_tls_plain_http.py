"""Plain HTTP to a TLS port is told to use https (security finding 11), and HTTPS is untouched.

One real node with ``--tls-cert``/``--tls-key``/``--tls-ca``: a plain-HTTP
request gets ``400 {"error": "invalid_request", "detail": "this node serves
HTTPS: use https://host:port"}`` (JSON, then the connection closes) instead
of a failed TLS handshake; the same port keeps serving HTTPS, keep-alive
and all, and the node logs no error for it.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import rakit
from rakit.launcher import LocalCluster, TlsFiles
from rawsock import connect, read_answer
from tlscerts import make_ca

pytestmark = pytest.mark.integration


@pytest.fixture
def node(cluster_factory: Any, tmp_path: Path) -> Iterator[tuple[LocalCluster, Path]]:
    ca = make_ca(tmp_path)
    cert, key = ca.issue(tmp_path, "node1")
    cluster = cluster_factory(1, tls=TlsFiles(cert, key, ca.path))
    cluster.wait_for_leader(15)
    yield cluster, ca.path


def test_plain_http_gets_a_json_400_saying_use_https(node: tuple[LocalCluster, Path]) -> None:
    cluster, _ = node
    port = cluster.nodes["node1"].port
    with connect("127.0.0.1", port) as sock:
        sock.sendall(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port)
        status, headers, body, was_closed = read_answer(sock)
    assert (status, headers["content-type"], headers["connection"]) == (400, "application/json", "close")
    assert body == {"error": "invalid_request", "detail": f"this node serves HTTPS: use https://127.0.0.1:{port}"}
    assert was_closed
    posted = httpx.post(f"http://localhost:{port}/lock/acquire", json={"resource": "r", "client_id": "c"}, timeout=5)
    assert posted.status_code == 400 and posted.json()["detail"].endswith(f"use https://localhost:{port}")
    with rakit.Client([f"http://127.0.0.1:{port}"], attempts=1) as client, pytest.raises(rakit.InvalidRequest) as err:
        client.cache.get("anything")
    assert "use https" in str(err.value)


def test_the_same_port_still_serves_https_with_keep_alive(node: tuple[LocalCluster, Path]) -> None:
    cluster, ca = node
    url = cluster.nodes["node1"].url
    assert url.startswith("https://")
    httpx.get(url.replace("https://", "http://") + "/health", timeout=5)  # a plain request first: no harm
    with httpx.Client(verify=ssl.create_default_context(cafile=str(ca)), timeout=5) as client:
        for _ in range(50):
            answer = client.get(url + "/health")
            assert answer.status_code == 200 and answer.json()["status"] == "ok"
        grant = client.post(url + "/lock/acquire", json={"resource": "tls-plain", "client_id": "c1", "ttl": 10})
        assert grant.status_code == 200 and grant.json()["acquired"] is True, grant.text
    log = cluster.nodes["node1"].log_tail(200)
    assert "Traceback" not in log and "ERROR" not in log, log
