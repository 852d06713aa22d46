"""``rakit node`` as a user starts it: bad configuration, environment variables, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from httpcall import get

from rakit.launcher import free_port, wait_until

pytestmark = pytest.mark.integration


def run_node(*args: str, env: dict[str, str] | None = None, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rakit", "node", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("args, problem", [
    (["--id", "node9", "--peers", "node1=http://127.0.0.1:1"], "unknown node id 'node9'"),
    (["--id", "node1", "--peers", "node1=localhost"], "malformed URL"),
    (["--id", "node1", "--peers", "node1"], "malformed --peers entry"),
    (["--id", "node1", "--peers", "node1=http://127.0.0.1:1,node1=http://127.0.0.1:2"], "appears twice"),
    (["--peers", "node1=http://127.0.0.1:1"], "--id (or NODE_ID) is required"),
    (["--id", "node1", "--peers", "node1=http://127.0.0.1:1", "--port", "abc"], "Invalid value for '--port'"),
    (["--id", "node1", "--peers", "node1=http://127.0.0.1:1", "--data-dir", "/proc/rakit/nope"], "data dir"),
    (["--id", "node1", "--peers", "node1=http://127.0.0.1:1", "--redis-url", "http://x"], "malformed --redis-url"),
    (["--id", "node1", "--peers", "node1=http://127.0.0.1:1", "--bogus"], "No such option"),
])
def test_bad_configuration_exits_non_zero_with_one_line(args, problem, tmp_path):
    if "--data-dir" not in args:
        args = [*args, "--data-dir", str(tmp_path / "d")]
    result = run_node(*args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rakit: error: ") and problem in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_port_in_use_is_one_line(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_node("--id", "n1", "--peers", f"n1=http://127.0.0.1:{port}", "--data-dir", str(tmp_path))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in lines[0], result.stderr


def test_an_unreadable_raft_log_is_one_line(tmp_path):
    (tmp_path / "raft.wal").write_bytes(b"not a rakit log at all")
    port = free_port()
    result = run_node("--id", "n1", "--peers", f"n1=http://127.0.0.1:{port}", "--data-dir", str(tmp_path))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot open the Raft log" in lines[0] and "not a rakit log" in lines[0], \
        result.stderr


def test_environment_configures_the_node_and_sigterm_exits_zero(tmp_path):
    port = free_port()
    env = {"NODE_ID": "solo", "PEERS": f"solo=http://127.0.0.1:{port}", "DATA_DIR": str(tmp_path / "solo"),
           "REDIS_URL": "redis://127.0.0.1:1/0"}
    proc = subprocess.Popen([sys.executable, "-m", "rakit", "node"], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: get(url + "/status", timeout=1)[0] == 200, 20, "the node to serve")
        status = wait_until(lambda: (s := get(url + "/status", timeout=1)[1]) and s["role"] == "leader" and s,
                            10, "a one-node cluster to elect itself")
        assert status["node_id"] == "solo" and status["peers"] == ["solo"]
        assert (tmp_path / "solo" / "raft.wal").exists()
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert time.monotonic() - started < 5.0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
