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
    return subprocess.run(
        [sys.executable, "-m", "rakit", "node", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.quick
@pytest.mark.parametrize(
    "args, problem",
    [
        (["--id", "node9", "--peers", "node1=http://127.0.0.1:1"], "unknown node id 'node9'"),
        (["--id", "node1", "--peers", "node1=localhost"], "malformed URL"),
        (["--id", "node1", "--peers", "node1"], "malformed --peers entry"),
        (["--id", "node1", "--peers", "node1=http://127.0.0.1:1,node1=http://127.0.0.1:2"], "appears twice"),
        (["--peers", "node1=http://127.0.0.1:1"], "--id (or NODE_ID) is required"),
        (["--id", "node1", "--peers", "node1=http://127.0.0.1:1", "--port", "abc"], "Invalid value for '--port'"),
        (["--id", "node1", "--peers", "node1=http://127.0.0.1:1", "--data-dir", "/proc/rakit/nope"], "data dir"),
        (["--id", "node1", "--peers", "node1=http://127.0.0.1:1", "--redis-url", "http://x"], "malformed --redis-url"),
        (["--id", "node1", "--peers", "node1=http://127.0.0.1:1", "--bogus"], "No such option"),
    ],
)
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
    assert len(lines) == 1 and "cannot open the Raft log" in lines[0] and "not a rakit log" in lines[0], result.stderr


@pytest.mark.quick
def test_environment_configures_the_node_and_sigterm_exits_zero(tmp_path):
    port = free_port()
    env = {
        "NODE_ID": "solo",
        "PEERS": f"solo=http://127.0.0.1:{port}",
        "DATA_DIR": str(tmp_path / "solo"),
        "REDIS_URL": "redis://127.0.0.1:1/0",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "rakit", "node"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: get(url + "/status", timeout=1)[0] == 200, 20, "the node to serve")
        status = wait_until(
            lambda: (s := get(url + "/status", timeout=1)[1]) and s["role"] == "leader" and s,
            10,
            "a one-node cluster to elect itself",
        )
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


def _solo(tmp_path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rakit",
            "node",
            "--id",
            "solo",
            "--peers",
            f"solo=http://127.0.0.1:{port}",
            "--data-dir",
            str(tmp_path / "solo"),
            "--redis-url",
            "redis://127.0.0.1:1/0",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until(
        lambda: proc.poll() is None and (s := get(url + "/status", timeout=1)[1]) and s["role"] == "leader",
        20,
        "a one-node cluster to serve as leader",
    )
    return proc, url


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    return proc.stderr.read() if proc.stderr else ""


def test_a_log_damaged_in_the_middle_is_refused_in_one_line_and_repair_starts_it(tmp_path):
    from httpcall import call
    from rakit.storage.wal_damage import RECORD_HEADER

    proc, url = _solo(tmp_path)
    try:
        for i in range(40):
            assert call("POST", url + "/kv/put", {"key": f"k{i}", "value": i})[0] == 200
    finally:
        _stop(proc)
    wal = tmp_path / "solo" / "raft.wal"
    data = bytearray(wal.read_bytes())
    ends, pos = [], 12
    while length := int.from_bytes(data[pos : pos + 4], "little"):
        pos += RECORD_HEADER.size + length
        ends.append(pos)
    middle = ends[len(ends) // 2]
    data[middle + 10] ^= 0xFF  # one flipped byte in a record with many whole ones after it
    wal.write_bytes(bytes(data))
    before = wal.read_bytes()

    result = run_node("--id", "solo", "--peers", "solo=http://127.0.0.1:1", "--data-dir", str(tmp_path / "solo"))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"byte {middle}" in lines[0] and "--repair" in lines[0], result.stderr
    assert "Traceback" not in result.stderr and wal.read_bytes() == before  # refused, untouched

    proc, url = _solo(tmp_path, "--repair")
    stderr = _stop(proc)
    assert "repair: dropped" in stderr and f"from byte {middle}" in stderr
    proc, url = _solo(tmp_path)  # repaired for good: a plain start serves
    _stop(proc)
