"""One client cannot make a node refuse everyone (security finding 6).

Real node processes with small caps (``RAKIT_MAX_CONNECTIONS=200``,
``RAKIT_MAX_CONNECTIONS_PER_CLIENT=50``: a reserve of 20 for peers and
``/health``, 2 of it per client; pressure over 150 in use).  Everything runs
on loopback, so "another client" is another loopback address: the flooding
sockets are bound to 127.0.0.2 and up (Linux routes 127.0.0.0/8 to ``lo``),
the nodes listen on 127.0.0.1, and their peers and this test's own checks
come from 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import rakit
from rakit.launcher import LocalCluster, wait_until
from rakit.server.serve import MAX_CONNECTIONS_ENV, MAX_CONNECTIONS_PER_CLIENT_ENV
from rawsock import closed, connect, read_answer, read_answer_open

pytestmark = pytest.mark.integration

CAPS = {MAX_CONNECTIONS_ENV: "200", MAX_CONNECTIONS_PER_CLIENT_ENV: "50"}
STATUS = b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
HEALTH = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
HEAD_TIMEOUT = 10.0  # the node's, and its keep-alive is 30 s: what pressure shortens to 2 s and 1 s


def port_of(cluster: LocalCluster, node_id: str = "node1") -> int:
    return cluster.nodes[node_id].port


def client_from(source: str) -> httpx.Client:
    """An httpx client whose connections come from ``source`` (another client, to the node)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=5)


def idle(port: int, source: str, n: int) -> tuple[list[socket.socket], list[int]]:
    """``n`` connections from ``source``, one ``GET /status`` each, kept open: (sockets, statuses)."""
    socks = [connect("127.0.0.1", port, source) for _ in range(n)]
    statuses = []
    for sock in socks:
        try:
            sock.sendall(STATUS)
            statuses.append(read_answer_open(sock)[0])
        except (ConnectionError, OSError):
            statuses.append(0)  # closed without an answer (shed beyond the shedding bound)
    return socks, statuses


def silent(port: int, source: str, n: int) -> list[socket.socket]:
    """``n`` connections from ``source`` that send nothing."""
    return [connect("127.0.0.1", port, source) for _ in range(n)]


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


@pytest.fixture
def node(cluster_factory: Any) -> Iterator[LocalCluster]:
    cluster = cluster_factory(1, env=CAPS)
    cluster.wait_for_leader(15)
    yield cluster


def test_one_address_over_its_cap_does_not_lock_anyone_else_out(node: LocalCluster) -> None:
    port = port_of(node)
    kept, statuses = idle(port, "127.0.0.2", 60)  # 10 over the cap
    kept += silent(port, "127.0.0.2", 60)
    assert statuses[:50] == [200] * 50
    assert set(statuses[50:]) <= {503, 0}  # over its cap: shed (a trial connection may carry only /health)
    with client_from("127.0.0.3") as other:  # another client, fresh connections: served as ever
        assert other.get(f"http://127.0.0.1:{port}/health").status_code == 200
        assert other.get(f"http://127.0.0.1:{port}/status").status_code == 200
        grant = other.post(
            f"http://127.0.0.1:{port}/lock/acquire", json={"resource": "flood", "client_id": "c1", "ttl": 10}
        )
        assert grant.status_code == 200 and grant.json()["acquired"] is True, grant.text
        released = other.post(f"http://127.0.0.1:{port}/lock/release", json={"resource": "flood", "client_id": "c1"})
        assert released.status_code == 200, released.text
    # The flooding address itself still gets /health from the reserve (its own silent trial
    # connections give their places up after half a second), and its admitted ones are served.
    with client_from("127.0.0.2") as flooder:

        def health() -> bool:
            try:
                return flooder.get(f"http://127.0.0.1:{port}/health").status_code == 200
            except httpx.TransportError:
                return False  # shed: closed without an answer while 20 shed connections are closing

        wait_until(health, 10, "/health for the flooder")
    for sock in kept[:50]:
        sock.sendall(STATUS)
        assert read_answer_open(sock)[0] == 200
    close_all(kept)


def test_under_pressure_silent_and_idle_connections_are_reclaimed_in_seconds(node: LocalCluster) -> None:
    port = port_of(node)
    kept = idle(port, "127.0.0.2", 50)[0] + idle(port, "127.0.0.3", 50)[0]  # idle: keep-alive 30 s
    quiet = silent(port, "127.0.0.4", 40) + silent(port, "127.0.0.5", 20)  # silent: 10 s for a first byte
    flooded = time.monotonic()  # 160 connections in use: over 150, pressure
    for sock in quiet:
        status, _, body, was_closed = read_answer(sock, timeout=HEAD_TIMEOUT)
        assert (status, body["error"], was_closed) == (408, "request_timeout", True)
    assert all(closed(sock, HEAD_TIMEOUT) for sock in kept)
    took = time.monotonic() - flooded
    assert took < 5.0, f"reclaimed after {took:.1f} s (2 s for a first byte, 1 s idle under pressure)"
    with client_from("127.0.0.6") as other:
        assert other.get(f"http://127.0.0.1:{port}/status").status_code == 200
    close_all(kept + quiet)


async def _request(port: int, source: str | None, writer_reader: Any = None) -> int:
    """One ``GET /status`` (on a new connection from ``source``, or on the given one): its status, 0 if none."""
    try:
        if writer_reader is None:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), 10
            )
        else:
            reader, writer = writer_reader
        writer.write(STATUS)
        line = await asyncio.wait_for(reader.readline(), 10)
        if writer_reader is None:
            writer.close()
        return int(line.split()[1]) if line else 0
    except (ConnectionError, OSError):
        return 0


def test_a_burst_beyond_the_caps_is_shed_on_new_connections_not_on_admitted_ones(node: LocalCluster) -> None:
    port = port_of(node)
    admitted, statuses = idle(port, "127.0.0.2", 50)
    assert statuses == [200] * 50

    async def burst() -> tuple[list[int], list[int]]:
        streams = [await asyncio.open_connection(sock=sock) for sock in admitted]
        new = [_request(port, f"127.0.0.{3 + k % 8}") for k in range(400)]  # 400 at once from 8 addresses
        old = [_request(port, None, (reader, writer)) for reader, writer in streams]
        answers = await asyncio.gather(*new, *old)
        for _, writer in streams:
            writer.close()
        return answers[:400], answers[400:]

    for sock in admitted:
        sock.setblocking(False)
    fresh, kept = asyncio.run(burst())
    assert kept == [200] * 50  # every request on an admitted connection is served
    assert set(fresh) <= {200, 503, 0}, sorted(set(fresh))  # a new one: served, or shed (503 or closed)
    assert 0 < fresh.count(200) <= 130 and fresh.count(503) + fresh.count(0) >= 270, fresh
    with client_from("127.0.0.11") as other:  # and the node is itself again at once
        wait_until(lambda: other.get(f"http://127.0.0.1:{port}/status").status_code == 200, 10, "a served /status")


class SustainedFlood:
    """Silent connections from ``sources``, ``per_source`` each, reopened as the node closes them."""

    def __init__(self, port: int, sources: list[str], per_source: int) -> None:
        self.port = port
        self.sources = sources
        self.per_source = per_source
        self.opened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SustainedFlood:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with selectors.DefaultSelector() as selector:

            def open_one(source: str) -> None:
                try:
                    sock = socket.create_connection(("127.0.0.1", self.port), timeout=2, source_address=(source, 0))
                except OSError:
                    return
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ, source)
                self.opened += 1

            for source in self.sources:
                for _ in range(self.per_source):
                    open_one(source)
            while not self._stop.is_set():
                for key, _ in selector.select(0.05):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    if not data:  # closed by the node (or its 408 came): take the place again
                        selector.unregister(sock)
                        sock.close()
                        open_one(key.data)
            for key in list(selector.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]


def test_a_flooded_follower_keeps_following_and_writes_commit_through_it(cluster_factory: Any) -> None:
    """The flooded follower is the leader's only peer left: every write commits only if it takes part."""
    cluster = cluster_factory(3, env=CAPS)
    leader = cluster.wait_for_leader(15)
    flooded, other = cluster.followers()
    term = cluster.nodes[leader].status()["term"]
    cluster.nodes[other].stop()  # a majority is now the leader and the flooded follower
    port = port_of(cluster, flooded)
    with SustainedFlood(port, [f"127.0.0.{k}" for k in range(2, 7)], 50):  # 250 silent: its general pool full
        with client_from("127.0.0.9") as stranger:
            wait_until(
                lambda: stranger.get(f"http://127.0.0.1:{port}/status").status_code == 503,
                10,
                "the follower's general pool to be full (a new client's /status shed)",
            )
        with rakit.Client([cluster.nodes[leader].url], attempts=1) as client:
            started = time.monotonic()
            n = 0
            while time.monotonic() - started < 6.0:  # past several rounds of the flood's 2 s timeouts
                with client.lock(f"flooded-{n}", ttl=10, timeout=5) as lease:
                    assert lease.fencing_token > 0
                n += 1
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)  # /health: the reserve
        assert health.status_code == 200, health.text
    statuses = [cluster.nodes[i].status(timeout=5) for i in (leader, flooded)]
    assert [s and (s["leader_id"], s["term"]) for s in statuses] == [(leader, term)] * 2, statuses
    assert n >= 3
