"""Unauthenticated bodies are not buffered (security finding 4).

A signed call names its body's hash in a header, so a node checks the
signature from the headers alone before it reads the body; a caller without
the secret cannot make it buffer anything.  A call without that header (an
older node) is read only up to ``PREAUTH_LIMIT`` before its check.
"""

from __future__ import annotations

import asyncio
import http.client
import os
from typing import Any

import pytest

from rakit.security.internal import (
    BODY_HEADER,
    NODE_HEADER,
    NONCE_HEADER,
    PREAUTH_LIMIT,
    SIG_HEADER,
    TS_HEADER,
    InternalAuth,
)

SECRET = "a-cluster-secret-of-some-length"


class Receiver:
    """An ASGI ``receive`` with a body of ``size`` bytes in 64 KiB chunks; counts what was read."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.read = 0

    async def __call__(self) -> dict[str, Any]:
        chunk = min(self.left, 65536)
        self.left -= chunk
        self.read += chunk
        return {"type": "http.request", "body": b"x" * chunk, "more_body": self.left > 0}


def scope(path: str = "/append_entries") -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": path, "query_string": b""}


def forged(signer: InternalAuth, size: int) -> dict[str, str]:
    headers = signer.headers("POST", "/append_entries", b"x" * 10, dst="node2")
    headers[SIG_HEADER] = "0" * 64
    headers["content-length"] = str(size)
    return headers


def test_a_forged_signature_is_refused_before_a_byte_of_the_body_is_read() -> None:
    checker = InternalAuth(SECRET, "node2")
    forger = InternalAuth("another-secret-entirely!", "node1")
    receive = Receiver(200 * 1024 * 1024)
    _, refusal = asyncio.run(checker.admit(scope(), receive, forged(forger, 200 * 1024 * 1024)))
    assert refusal is not None and refusal[0] == 401
    assert receive.read == 0


def test_a_call_without_the_body_hash_is_read_only_up_to_the_preauth_limit() -> None:
    checker = InternalAuth(SECRET, "node2")
    headers = forged(InternalAuth(SECRET, "node1"), 10 * 1024 * 1024)
    del headers[BODY_HEADER]
    receive = Receiver(10 * 1024 * 1024)
    _, refusal = asyncio.run(checker.admit(scope(), receive, headers))
    assert refusal is not None and refusal[0] == 413  # declared over the limit: refused before reading
    del headers["content-length"]
    receive = Receiver(10 * 1024 * 1024)
    _, refusal = asyncio.run(checker.admit(scope(), receive, headers))
    assert refusal is not None and refusal[0] == 413
    assert receive.read <= PREAUTH_LIMIT + 65536


def test_a_signed_body_that_does_not_match_its_hash_is_refused() -> None:
    signer, checker = InternalAuth(SECRET, "node1"), InternalAuth(SECRET, "node2")
    headers = signer.headers("POST", "/append_entries", b"y" * 1000, dst="node2")
    _, refusal = asyncio.run(checker.admit(scope(), Receiver(1000), headers))  # x * 1000 arrives
    assert refusal is not None and refusal[0] == 401 and "signed hash" in refusal[2]
    headers = signer.headers("POST", "/append_entries", b"x" * 1000, dst="node2")
    _, refusal = asyncio.run(checker.admit(scope(), Receiver(1000), headers))
    assert refusal is None


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


@pytest.mark.integration
def test_forged_calls_with_huge_bodies_do_not_grow_a_node(cluster_factory):
    cluster = cluster_factory(3)
    cluster.wait_for_leader(timeout=15)
    node = next(iter(cluster.nodes.values()))
    host, port = node.url.removeprefix("http://").split(":")
    before = rss_kib(node.proc.pid)
    forger = InternalAuth("another-secret-entirely!", "node2")
    conns = []
    for _ in range(8):  # eight forged 64 MiB bodies at once
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        headers = forged(forger, 64 * 1024 * 1024)
        conn.putrequest("POST", "/append_entries")
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        try:
            conn.send(os.urandom(1024 * 1024))  # the node may close before it takes even this
        except OSError:
            pass
        conns.append(conn)
    for conn in conns:
        response = conn.getresponse()
        assert response.status == 401
        conn.close()
    assert rss_kib(node.proc.pid) - before < 32 * 1024, "the node buffered unauthenticated bodies"
    assert all(h in forged(forger, 1) for h in (NODE_HEADER, TS_HEADER, NONCE_HEADER))
