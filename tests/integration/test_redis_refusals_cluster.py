"""A real Redis that refuses the node: queue calls answer 503 naming what Redis said, never 500.

Each test starts its own ``redis-server`` (a password it does not get, a
read-only replica, protected mode on a non-loopback address) and one rakit
node pointed at it, then checks the answers, ``/health``, ``/status`` and the
node's log (one warning, at start).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from httpcall import call, get, post
from rakit.launcher import LocalCluster, find_redis_server, free_port, wait_until

pytestmark = pytest.mark.integration

QUEUE_CALLS = [
    ("POST", "/queue/push", {"topic": "t", "message": {"n": 1}}),
    ("GET", "/queue/pop/t/c?visibility_timeout=5", None),
    ("POST", "/queue/ack", {"topic": "t", "consumer_id": "c", "message_id": "m1"}),
    ("GET", "/queue/stats/t", None),
]


def _answers(host: str, port: int, password: str | None) -> bool:
    """The server answers a (raw) PING, whatever it answers."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5) as s:
        s.sendall((f"AUTH {password}\r\n" if password else "").encode() + b"PING\r\n")
        return s.recv(4096)[:1] in (b"+", b"-")
    return False


@contextlib.contextmanager
def redis_server(tmp: Path, *args: str, host: str = "127.0.0.1", password: str | None = None) -> Iterator[str]:
    """A throw-away ``redis-server`` on ``host`` with extra ``args``; yields its host:port."""
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            find_redis_server(),
            "--port",
            str(port),
            "--bind",
            host,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp),
            "--logfile",
            str(tmp / "redis.log"),
            *args,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until(lambda: proc.poll() is not None or _answers(host, port, password), 10, f"redis-server on {port}")
        assert proc.poll() is None, (tmp / "redis.log").read_text()
        yield f"{host}:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def one_node(cluster_factory: Callable[..., LocalCluster], redis_url: str) -> tuple[LocalCluster, str]:
    cluster = cluster_factory(1, redis_url=redis_url)
    return cluster, next(iter(cluster.urls.values()))


def queue_state(url: str, path: str) -> dict | None:
    status, body = get(url + path, timeout=2)
    return body["queue"] if status == 200 else None


def assert_refused(url: str, code: str, calls=QUEUE_CALLS) -> None:
    for method, path, body in calls:
        status, answer = call(method, url + path, body, timeout=10)
        assert status == 503, (path, status, answer)
        assert answer["error"] == "unavailable", answer
        assert answer["detail"].startswith(f"Redis refused the node: {code} "), answer


def warnings_about_redis(cluster: LocalCluster) -> list[str]:
    node = next(iter(cluster.nodes.values()))
    return [ln for ln in node.log_tail(400).splitlines() if "queue: unavailable" in ln]


@pytest.mark.parametrize("password, code", [(None, "NOAUTH"), ("wrong", "WRONGPASS")])
def test_a_password_redis_refuses_the_node_with_503_and_says_why(cluster_factory, tmp_path, password, code):
    with redis_server(tmp_path / "redis", "--requirepass", "secret", password="secret") as where:
        url_password = f":{password}@" if password else ""
        cluster, url = one_node(cluster_factory, f"redis://{url_password}{where}/0")
        # The start-up probe found it out: /health (still 200) and /status say so before any queue call.
        assert wait_until(
            lambda: queue_state(url, "/health") == {"available": False}, 10, "/health to show the queue unavailable"
        )
        status = queue_state(url, "/status")
        assert status["available"] is False and status["detail"].startswith(f"Redis refused the node: {code} ")
        assert "secret" not in status["detail"] and "wrong" not in status["detail"]
        assert_refused(url, code)
        assert_refused(url, code)
        lines = warnings_about_redis(cluster)
        assert len(lines) == 1 and code in lines[0] and "--redis-url" in lines[0], lines  # once, at start
        assert "Traceback" not in next(iter(cluster.nodes.values())).log_tail(400)


def test_the_right_password_serves(cluster_factory, tmp_path):
    with redis_server(tmp_path / "redis", "--requirepass", "secret", password="secret") as where:
        cluster, url = one_node(cluster_factory, f"redis://:secret@{where}/0")
        assert wait_until(lambda: queue_state(url, "/health") == {"available": True}, 10, "the queue available")
        status, answer = post(url + "/queue/push", {"topic": "t", "message": 1})
        assert status == 200, answer
        assert queue_state(url, "/status") == {**queue_state(url, "/status"), "available": True, "detail": None}
        assert warnings_about_redis(cluster) == []


def test_a_read_only_replica_refuses_writes_with_503(cluster_factory, tmp_path):
    nobody = free_port()  # the replica's primary never answers: the replica stays read-only
    with redis_server(tmp_path / "redis", "--replicaof", "127.0.0.1", str(nobody)) as where:
        cluster, url = one_node(cluster_factory, f"redis://{where}/0")
        # A replica answers PING and reads: the queue looks available until a write is refused.
        assert wait_until(lambda: queue_state(url, "/health") == {"available": True}, 10, "the start-up PING")
        status, answer = get(url + "/queue/stats/t")
        assert status == 200, answer
        assert_refused(url, "READONLY", QUEUE_CALLS[:2])  # push, pop
        # An ack of a message not in flight writes nothing: the replica answers it (404), no refusal.
        assert post(url + "/queue/ack", {"topic": "t", "consumer_id": "c", "message_id": "m1"})[0] == 404
        state = queue_state(url, "/status")
        assert state["available"] is False and "READONLY" in state["detail"], state
        assert get(url + "/queue/stats/t")[0] == 200  # reads still served, and ...
        assert queue_state(url, "/health") == {"available": False}  # ... they do not hide the refusal
        lines = warnings_about_redis(cluster)
        assert len(lines) == 1 and "READONLY" in lines[0] and "replica" in lines[0], lines


def _outside_address() -> str | None:
    """An IPv4 address of this machine that is not loopback (connections from it are not local)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing address
        address = s.getsockname()[0]
        if not address.startswith("127."):
            return address
    return None


def test_protected_mode_denies_the_node_with_503_and_says_why(cluster_factory, tmp_path):
    host = _outside_address()
    if host is None:
        pytest.skip("no non-loopback IPv4 address: protected mode only denies remote clients")
    with redis_server(tmp_path / "redis", "--protected-mode", "yes", host=host) as where:
        cluster, url = one_node(cluster_factory, f"redis://{where}/0")
        assert wait_until(
            lambda: queue_state(url, "/health") == {"available": False}, 10, "/health to show the queue unavailable"
        )
        assert_refused(url, "DENIED")
        detail = queue_state(url, "/status")["detail"]
        assert detail.startswith("Redis refused the node: DENIED Redis is running in protected mode")
        assert len(detail) < 300
        lines = warnings_about_redis(cluster)
        assert len(lines) == 1 and "protected mode" in lines[0], lines
