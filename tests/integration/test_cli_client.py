"""``rakit status | lock | queue | cache`` run as subprocesses against a real cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.integration


def rakit(nodes: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAKIT_NODES": nodes, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "rakit", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def ok_json(nodes: str, *args: str) -> object:
    result = rakit(nodes, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def nodes(cluster_factory) -> str:
    cluster = cluster_factory(3)
    urls = ",".join(n.url for n in cluster.nodes.values())
    result = rakit(urls, "status", "--wait-leader", "15", "--json")
    assert result.returncode == 0, result.stderr
    return urls


def test_status_table_and_json(nodes):
    status = ok_json(nodes, "status")
    assert isinstance(status, list) and len(status) == 3
    assert sum(n["role"] == "leader" for n in status) == 1 and all(n["ok"] for n in status)
    table = rakit(nodes, "status")
    assert table.returncode == 0
    for word in ("node1", "node2", "node3", "leader", "follower", "commit"):
        assert word in table.stdout


def test_lock_commands(nodes):
    grant = ok_json(nodes, "lock", "acquire", "orders", "--client-id", "cli-1", "--ttl", "30")
    assert grant["acquired"] and grant["fencing_token"] > 0
    status = ok_json(nodes, "lock", "status", "orders")
    assert status["holders"] == ["cli-1"] and status["mode"] == "exclusive"
    conflict = rakit(nodes, "lock", "acquire", "orders", "--client-id", "cli-2")
    assert conflict.returncode == 1 and conflict.stderr.startswith("rakit: error: conflict")
    renewed = ok_json(nodes, "lock", "renew", "orders", "--client-id", "cli-1", "--ttl", "60")
    assert renewed["renewed"] and renewed["ttl"] == 60
    watcher = subprocess.Popen(
        [sys.executable, "-m", "rakit", "lock", "watch", "orders", "--client-id", "cli-1", "--timeout", "20", "--json"],
        env={**os.environ, "RAKIT_NODES": nodes},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Released before or after the watch reaches the leader, the watch answers (at once if late).
    assert ok_json(nodes, "lock", "release", "orders", "--client-id", "cli-1")["released"]
    out, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 0, err
    assert isinstance(json.loads(out), dict)
    assert ok_json(nodes, "lock", "status", "orders")["holders"] == []
    not_holder = rakit(nodes, "lock", "release", "orders", "--client-id", "cli-1")
    assert not_holder.returncode == 1 and "not_holder" in not_holder.stderr


def test_queue_commands(nodes):
    pushed = ok_json(nodes, "queue", "push", "mail", '{"to": "a@b.c"}', "--message-id", "m-1")
    assert pushed["message_id"] == "m-1"
    assert ok_json(nodes, "queue", "stats", "mail")["ready"] == 1
    popped = ok_json(nodes, "queue", "pop", "mail", "--consumer-id", "w1", "--wait", "2")
    assert popped["message"] == {"to": "a@b.c"} and popped["delivery_count"] == 1
    assert ok_json(nodes, "queue", "stats", "mail")["in_flight"] == 1
    assert ok_json(nodes, "queue", "ack", "mail", "m-1", "--consumer-id", "w1")["acked"]
    assert ok_json(nodes, "queue", "pop", "mail", "--consumer-id", "w1") is None
    assert ok_json(nodes, "queue", "dead", "mail") == []
    assert ok_json(nodes, "queue", "redrive", "mail")["redriven"] == 0
    plain = rakit(nodes, "queue", "push", "mail", "hello")
    assert plain.returncode == 0 and plain.stdout.strip()


def test_cache_commands(nodes):
    deadline = time.monotonic() + 20
    while True:
        result = rakit(nodes, "cache", "set", "greeting", '{"hello": "world"}', "--json")
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["version"]
    got = ok_json(nodes, "cache", "get", "greeting")
    assert got["value"] == {"hello": "world"}
    plain = rakit(nodes, "cache", "get", "greeting")
    assert json.loads(plain.stdout) == {"hello": "world"}
    stats = ok_json(nodes, "cache", "stats")
    assert len(stats) == 3 and all(s["ok"] and s["serving"] for s in stats)
    assert ok_json(nodes, "cache", "delete", "greeting")["deleted"] is True
    missing = rakit(nodes, "cache", "get", "greeting")
    assert missing.returncode == 1 and "not_found" in missing.stderr


def test_bad_input_and_unreachable_nodes():
    bad = rakit("http://127.0.0.1:9", "lock", "acquire", "x", "--client-id", "c", "--mode", "weird")
    assert bad.returncode == 2 and "--mode" in bad.stderr
    down = rakit("http://127.0.0.1:9", "cache", "get", "k", timeout=60)
    assert down.returncode == 1 and "connection_failed" in down.stderr
    status = rakit("http://127.0.0.1:9", "status", "--json", timeout=60)
    assert status.returncode == 0 and json.loads(status.stdout)[0]["ok"] is False
