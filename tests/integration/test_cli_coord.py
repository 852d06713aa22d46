"""``rakit session | semaphore | election | elect`` and ``rakit lock run`` as subprocesses on a real cluster."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

PY = sys.executable


def rakit(nodes: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAKIT_NODES": nodes, "COLUMNS": "200"}
    return subprocess.run([PY, "-m", "rakit", *args], capture_output=True, text=True, env=env, timeout=timeout)


def ok_json(nodes: str, *args: str) -> dict:
    result = rakit(nodes, *args, "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert isinstance(answer, dict)
    return answer


def refused(result: subprocess.CompletedProcess[str], code: int, word: str) -> None:
    """Exit ``code`` with exactly one ``rakit: error:`` line naming ``word``."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rakit: error:") and word in lines[0], result.stderr


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``condition`` until true; the seconds it took (fails after ``timeout``)."""
    began = time.monotonic()
    deadline = began + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.02)
    return time.monotonic() - began


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z"):
            return False  # a zombie: dead, not yet reaped
    return True


@pytest.fixture
def nodes(cluster_factory) -> str:
    cluster = cluster_factory(3)
    urls = ",".join(n.url for n in cluster.nodes.values())
    result = rakit(urls, "status", "--wait-leader", "15", "--json")
    assert result.returncode == 0, result.stderr
    return urls


def test_session_commands(nodes):
    granted = ok_json(nodes, "session", "grant", "--client-id", "s-1", "--ttl", "30")
    sid = granted["session_id"]
    assert granted["client_id"] == "s-1" and granted["ttl"] == 30
    shown = ok_json(nodes, "session", "show", sid)
    assert shown["client_id"] == "s-1" and 0 < shown["remaining"] <= 30 and shown["locks"] == []
    table = rakit(nodes, "session", "show", sid)
    assert table.returncode == 0 and sid in table.stdout and "remaining" in table.stdout
    assert ok_json(nodes, "session", "keepalive", sid)["session_id"] == sid
    assert "s-1" in rakit(nodes, "session", "grant", "--client-id", "s-1").stdout  # the table
    assert ok_json(nodes, "session", "revoke", sid)["revoked"] is True
    refused(rakit(nodes, "session", "show", sid), 1, "session_not_found")
    refused(rakit(nodes, "session", "keepalive", sid), 1, "session_not_found")
    refused(rakit(nodes, "session", "grant", "--client-id", "s-1", "--ttl", "0"), 1, "invalid")
    refused(rakit(nodes, "session", "show", "bad name!"), 1, "")
    assert rakit(nodes, "session", "grant").returncode == 2  # --client-id is required


def test_semaphore_commands(nodes):
    a = ok_json(nodes, "semaphore", "acquire", "gpu", "--limit", "2", "--client-id", "a", "--ttl", "30")
    assert a["acquired"] and a["permits"] == 1 and a["limit"] == 2 and a["fencing_token"] > 0
    b = ok_json(nodes, "semaphore", "acquire", "gpu", "--limit", "2", "-c", "b")
    assert b["fencing_token"] > a["fencing_token"] and b["available"] == 0
    refused(rakit(nodes, "semaphore", "acquire", "gpu", "--limit", "2", "-c", "c"), 1, "conflict")
    refused(rakit(nodes, "semaphore", "acquire", "gpu", "--limit", "3", "-c", "c"), 1, "limit_mismatch")
    status = ok_json(nodes, "semaphore", "status", "gpu")
    assert status["limit"] == 2 and status["available"] == 0
    assert sorted(h["client_id"] for h in status["holders"]) == ["a", "b"]
    table = rakit(nodes, "semaphore", "status", "gpu")
    assert table.returncode == 0 and "0/2 available" in table.stdout and "holder" in table.stdout
    assert ok_json(nodes, "semaphore", "renew", "gpu", "-c", "a", "--ttl", "60")["renewed"]
    assert ok_json(nodes, "semaphore", "release", "gpu", "-c", "a")["released"]
    refused(rakit(nodes, "semaphore", "release", "gpu", "-c", "a"), 1, "not_holder")
    refused(rakit(nodes, "semaphore", "renew", "gpu", "-c", "a"), 1, "not_holder")
    assert ok_json(nodes, "semaphore", "status", "gpu")["available"] == 1
    refused(rakit(nodes, "semaphore", "acquire", "gpu", "--limit", "0", "-c", "z"), 1, "invalid")
    assert rakit(nodes, "semaphore", "acquire", "gpu", "-c", "z").returncode == 2  # --limit is required
    assert rakit(nodes, "semaphore", "acquire", "gpu", "--limit", "x", "-c", "z").returncode == 2


def test_election_commands(nodes):
    elected = ok_json(nodes, "election", "campaign", "sched", "-c", "a", "--value", '{"host": "a"}', "--ttl", "30")
    term = elected["term"]
    assert elected["elected"] and elected["leader"] == "a" and elected["value"] == {"host": "a"} and term > 0
    refused(rakit(nodes, "election", "campaign", "sched", "-c", "b"), 1, "conflict")
    leader = ok_json(nodes, "election", "leader", "sched")
    assert leader["leader"] == "a" and leader["term"] == term
    table = rakit(nodes, "election", "leader", "sched")
    assert table.returncode == 0 and f"a leads (term {term})" in table.stdout
    assert ok_json(nodes, "election", "proclaim", "sched", "busy", "-c", "a", "--term", str(term))["value"] == "busy"
    refused(rakit(nodes, "election", "proclaim", "sched", "x", "-c", "a", "--term", str(term + 5)), 1, "not_leader")
    observed = ok_json(nodes, "election", "observe", "sched", "--after-term", "0", "--timeout", "5")
    assert observed["changed"] and observed["leader"] == "a" and observed["value"] == "busy"
    assert ok_json(nodes, "election", "renew", "sched", "-c", "a", "--ttl", "20")["renewed"]
    assert ok_json(nodes, "election", "resign", "sched", "-c", "a")["resigned"]
    assert ok_json(nodes, "election", "leader", "sched")["leader"] is None
    assert "no leader" in rakit(nodes, "election", "leader", "sched").stdout
    refused(rakit(nodes, "election", "resign", "sched", "-c", "a"), 1, "not_leader")
    refused(rakit(nodes, "election", "renew", "sched", "-c", "a"), 1, "not_leader")
    refused(rakit(nodes, "election", "campaign", "bad name!", "-c", "a"), 1, "")
    assert rakit(nodes, "election", "proclaim", "sched", "x", "-c", "a").returncode == 2  # --term is required


def test_run_commands_pass_the_token_and_the_status(nodes, tmp_path: Path):
    out = tmp_path / "token"
    write = f"import os, pathlib; pathlib.Path({str(out)!r}).write_text(os.environ['RAKIT_FENCING_TOKEN'])"
    run = rakit(nodes, "lock", "run", "orders", "--ttl", "10", "--", PY, "-c", write)
    assert run.returncode == 0, run.stderr
    token = int(out.read_text())
    assert token > 0 and ok_json(nodes, "lock", "status", "orders")["holders"] == []  # released
    assert rakit(nodes, "lock", "run", "orders", "--", PY, "-c", "import sys; sys.exit(3)").returncode == 3
    killed = rakit(nodes, "lock", "run", "orders", "--", PY, "-c", "import os, signal; os.kill(os.getpid(), 9)")
    assert killed.returncode == 128 + 9

    run = rakit(nodes, "semaphore", "run", "pool", "--limit", "3", "--permits", "2", "--", PY, "-c", write)
    assert run.returncode == 0, run.stderr
    assert int(out.read_text()) > 0 and ok_json(nodes, "semaphore", "status", "pool")["holders"] == []

    # Granted after waiting in line longer than its ttl: kept, not taken for lost (exit 0, not 1).
    assert ok_json(nodes, "semaphore", "acquire", "one", "--limit", "1", "-c", "x", "--ttl", "2")["acquired"]
    sleep = f"{write}; import time; time.sleep(2.5)"
    waited = rakit(
        nodes, "semaphore", "run", "one", "--limit", "1", "--ttl", "1", "--timeout", "20", "--", PY, "-c", sleep
    )
    assert waited.returncode == 0, waited.stderr

    # Held elsewhere, timeout 0: refused before anything runs.
    assert ok_json(nodes, "lock", "acquire", "orders", "--client-id", "other")["acquired"]
    out.unlink()
    refused(rakit(nodes, "lock", "run", "orders", "--timeout", "0", "--", PY, "-c", write), 1, "conflict")
    assert not out.exists()
    refused(rakit(nodes, "lock", "run", "orders"), 2, "no command")
    refused(rakit(nodes, "elect", "sched"), 2, "no command")


def test_elect_runs_one_child_and_hands_over_within_ttl_after_sigkill(nodes, tmp_path: Path):
    """``rakit elect NAME --ttl 2 -- child`` twice: one child runs; SIGKILL its rakit, the other starts."""
    ttl = 2.0
    markers = tmp_path / "markers"
    markers.mkdir()
    child = (
        "import os, pathlib, time; "
        f"pathlib.Path({str(markers)!r}, os.environ['RAKIT_CLIENT_ID']).write_text(str(os.getpid())); "
        "time.sleep(1000)"
    )
    env = {**os.environ, "RAKIT_NODES": nodes}
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def marker(candidate: str) -> Path:
        return markers / candidate

    def child_pid(candidate: str) -> int | None:
        text = marker(candidate).read_text() if marker(candidate).exists() else ""
        return int(text) if text else None

    try:
        for candidate in ("a", "b"):
            argv = [PY, "-m", "rakit", "elect", "job", "--ttl", str(ttl), "-c", candidate, "--", PY, "-c", child]
            procs[candidate] = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE)
        wait_for(lambda: any(child_pid(c) for c in procs), 30, "a child starts")
        # Both campaign: one leads, the other waits in line (``candidates`` lists the waiting), its child not run.
        wait_for(lambda: len(ok_json(nodes, "election", "leader", "job")["candidates"]) == 1, 30, "both campaign")
        running = [c for c in procs if marker(c).exists()]
        assert len(running) == 1, running
        first = running[0]
        second = "b" if first == "a" else "a"
        assert ok_json(nodes, "election", "leader", "job")["leader"] == first
        first_child = child_pid(first)
        assert first_child is not None and alive(first_child)

        procs[first].kill()  # SIGKILL: it can neither signal its child nor resign
        procs[first].wait(10)
        took = wait_for(lambda: child_pid(second) is not None, ttl + 1, "the other child starts")
        print(f"hand-over after SIGKILL: {took:.2f} s (ttl {ttl} s)")
        wait_for(lambda: not alive(first_child), 5, "the orphan dies with its rakit (PR_SET_PDEATHSIG)")
        assert ok_json(nodes, "election", "leader", "job")["leader"] == second

        procs[second].send_signal(signal.SIGTERM)  # forwarded; the child dies of it; rakit resigns
        assert procs[second].wait(20) == 128 + signal.SIGTERM
        assert ok_json(nodes, "election", "leader", "job")["leader"] is None
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        for candidate in procs:
            pid = child_pid(candidate)
            if pid is not None and alive(pid):
                os.kill(pid, signal.SIGKILL)
