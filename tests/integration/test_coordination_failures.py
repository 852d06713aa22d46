"""Sessions, semaphores and elections on real processes under SIGKILL (issue 20, "What it must show").

1. A client process holding a lock, a permit and a candidacy through one
   session is SIGKILLed: the session expires on the leader's clock, its holds
   end in ONE Raft entry and the waiters on each primitive are granted.  The
   observable for "one entry": fencing tokens and terms are the log index of
   the granting command (rule 2 of ``statemachines/semaphores.py`` and of
   ``statemachines/elections.py``; rule 3 of ``statemachines/coordination.py``),
   so the permit's token, the new term and (without a lock delay) the lock's
   token are one number.  With a ``lock_delay`` the lock stays ungranted
   (``delayed`` in ``/lock/table``) after the others were granted.
2. The Raft leader is SIGKILLed while client A leads an election and B waits:
   A keeps its term (renewing through the other nodes), B keeps waiting;
   A's resignation then elects B with a greater term.
3. The Raft leader is SIGKILLed under semaphore load: the pure chaos checker
   (``rakit.chaos.checkers.semaphores``) finds no over-grant and no token out
   of order in the recorded history, and a holder across the kill keeps its
   permit with the same token.

Every wait is bounded by a deadline (``cluster.wait_until``, thread joins,
long-poll timeouts); the only sleeps are a load's own hold times.
"""

from __future__ import annotations

import os
import random
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_coordination_cluster import in_background, urls

import rakit
from httpcall import call, get, post
from rakit.chaos.checkers.semaphores import check_semaphores
from rakit.chaos.history import Op
from rakit.chaos.workloads import Answer, classify

pytestmark = pytest.mark.integration

SRC = Path(__file__).resolve().parents[2] / "src"
SESSION_TTL = 2.0
EPSILON = 0.01  # the rounding of a session's ``remaining`` (ms) and then some
WAIT = 20.0  # every waiter's own long-poll timeout: far longer than any of these tests needs

# The client process of test 1: one session, a lock, a permit and a candidacy on it; "ready" once held.
HOLDER = """
import sys
import rakit

nodes, ttl, lock_delay = sys.argv[1].split(","), float(sys.argv[2]), float(sys.argv[3])
with rakit.Client(nodes, client_id="doomed", timeout=2.0) as client:
    with client.session(ttl=ttl, lock_delay=lock_delay) as session:
        with (
            client.lock("job", session=session),
            client.semaphore("pool", 1, session=session),
            client.campaign("cron", session=session, timeout=0),
        ):
            print("ready", session.session_id, flush=True)
            session.lost.wait(60)  # kept alive in the background until SIGKILLed (bounded all the same)
"""


def start_holder(cluster, lock_delay: float, timeout: float = 20.0) -> tuple[subprocess.Popen[str], str]:
    """Start the HOLDER process; (process, session id) once it printed "ready"."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    argv = [sys.executable, "-c", HOLDER, ",".join(urls(cluster)), str(SESSION_TTL), str(lock_delay)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        line = proc.stdout.readline()
        if line.startswith("ready "):
            return proc, line.split()[1]
        if not line:  # the process ended before it was ready
            break
    proc.kill()
    _, err = proc.communicate(timeout=10)
    raise AssertionError(f"the holder process never got ready (rc={proc.returncode}): {err[-2000:]}")


def timed(fn):
    """``in_background`` of ``fn``, with the moment its answer came: out["answer"] = (answer, monotonic)."""
    return in_background(lambda: (fn(), time.monotonic()))


def answer_of(thread: threading.Thread, out: dict, timeout: float) -> tuple[int, Any, float]:
    thread.join(timeout)
    assert not thread.is_alive(), "the waiter was never answered"
    (status, body), at = out["answer"]
    return status, body, at


@pytest.mark.parametrize("lock_delay", [0.0, 2.0])
def test_sigkilled_session_client_releases_everything_in_one_entry_and_each_waiter_is_granted(
    cluster_factory, lock_delay
):
    cluster = cluster_factory(3)
    cluster.wait_for_leader(timeout=15)
    a, b, c = urls(cluster)
    proc, sid = start_holder(cluster, lock_delay)
    try:
        s, view = get(b + f"/session/{sid}")
        assert s == 200 and (view["locks"], view["semaphores"], view["elections"]) == (["job"], ["pool"], ["cron"])
        lock = timed(lambda: post(a + "/lock/acquire", {"resource": "job", "client_id": "other", "timeout": WAIT}, 30))
        sem = timed(
            lambda: post(
                b + "/semaphore/acquire", {"name": "pool", "client_id": "other", "limit": 1, "timeout": WAIT}, 30
            )
        )
        vote = timed(
            lambda: post(c + "/election/campaign", {"name": "cron", "candidate_id": "other", "timeout": WAIT}, 30)
        )
        cluster.wait_until(lambda: get(a + "/lock/status/job")[1]["waiters"], 10, "the lock waiter to queue")
        cluster.wait_until(lambda: get(a + "/semaphore/status/pool")[1]["waiters"], 10, "the permit waiter to queue")
        cluster.wait_until(
            lambda: "other" in get(a + "/election/leader/cron")[1]["candidates"], 10, "the candidate to queue"
        )
        assert get(c + "/election/leader/cron")[1]["leader"] == "doomed"
        # The lease's end as the leader times it: at least ``remaining`` after this read was sent
        # (keepalives sent since only push it later).
        asked_at = time.monotonic()
        s, view = get(b + f"/session/{sid}")
        assert s == 200 and 0 < view["remaining"] <= SESSION_TTL, view
        lease_end = asked_at + view["remaining"] - EPSILON
        proc.kill()  # SIGKILL: no revoke, no release; only the lease's end frees anything
        proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)

    s, permit, permit_at = answer_of(*sem, SESSION_TTL + 15)
    assert s == 200 and permit["client_id"] == "other", permit
    s, elected, elected_at = answer_of(*vote, SESSION_TTL + 15)
    assert s == 200 and elected["leader"] == "other", elected
    # One entry: the permit's token and the new term are both the index of the session's expiry.
    assert permit["fencing_token"] == elected["term"], (permit, elected)
    # Nothing came back before the session's lease ended (the leader's clock is this machine's).
    assert min(permit_at, elected_at) >= lease_end, (permit_at - lease_end, elected_at - lease_end)
    if lock_delay:
        # Granted the others, the lock is free but in its delay: nobody holds it, the waiter still waits.
        s, st = get(b + "/lock/status/job")
        assert s == 200 and st["holders"] == [] and [w["client_id"] for w in st["waiters"]] == ["other"], st
        s, table = get(b + "/lock/table")
        assert s == 200 and {r["resource"]: r["delayed"] for r in table["resources"]}.get("job") is True, table
    s, granted, granted_at = answer_of(*lock, SESSION_TTL + lock_delay + 15)
    assert s == 200 and granted["client_id"] == "other", granted
    if lock_delay:
        assert granted["fencing_token"] > permit["fencing_token"], "a later entry ends the delay"
        assert granted_at >= lease_end + lock_delay, "the session's expiry, then its lock delay"
        assert granted_at - permit_at >= lock_delay / 2, "the delay counts from the expiry the permit came with"
    else:
        assert granted["fencing_token"] == permit["fencing_token"], "the lock is granted in the same entry"
    s, body = get(c + f"/session/{sid}")
    assert (s, body["error"]) == (404, "session_not_found")
    s, body = post(a + "/session/keepalive", {"session_id": sid})
    assert (s, body["error"]) == (404, "session_not_found")


def test_sigkill_of_the_raft_leader_during_a_campaign_changes_no_leadership(cluster_factory):
    cluster = cluster_factory(3)
    raft_leader = cluster.wait_for_leader(timeout=15)
    survivor = next(cluster.nodes[i].url for i in sorted(cluster.nodes) if i != raft_leader)
    with rakit.Client(urls(cluster), client_id="A", timeout=2.0, retry_deadline=20.0) as client:
        with client.campaign("E", value="a", ttl=6.0) as leadership:
            term = leadership.term
            assert term is not None
            waiter = timed(
                lambda: post(survivor + "/election/campaign", {"name": "E", "candidate_id": "B", "timeout": 30}, 40)
            )
            cluster.wait_until(
                lambda: get(survivor + "/election/leader/E")[1]["candidates"] == ["B"], 10, "B to wait as candidate"
            )
            cluster.nodes[raft_leader].kill()
            cluster.wait_for_leader(timeout=15, exclude=[raft_leader])
            leadership.renew()  # through the surviving nodes (the dead one is in the client's list too)
            s, lead = get(survivor + "/election/leader/E")
            assert s == 200 and (lead["leader"], lead["term"], lead["value"]) == ("A", term, "a"), lead
            assert lead["candidates"] == ["B"]
            assert waiter[0].is_alive(), "B must still be waiting"
            assert not leadership.lost.is_set()
        resigned_at = time.monotonic()
    s, elected, elected_at = answer_of(*waiter, 20)
    assert s == 200 and elected["leader"] == "B" and elected["term"] > term, elected
    assert elected_at - resigned_at < 5.0
    s, lead = get(survivor + "/election/leader/E")
    assert s == 200 and (lead["leader"], lead["term"]) == ("B", elected["term"])


# -- semaphore load ------------------------------------------------------------------------

NAME = "load"
LIMIT = 3  # one long holder across the kill, six threads contending for the other two
LOAD_TTL = 5.0
PATHS = {"acquire": "/semaphore/acquire", "release": "/semaphore/release", "status": f"/semaphore/status/{NAME}"}


class History:
    """The run's ops (``rakit.chaos.history.Op``) on one monotonic clock, shared by the threads."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.ops: list[Op] = []
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def request(self, process: int, f: str, url: str, args: dict[str, Any], timeout: float = 5.0) -> Op:
        """Send one request and record it as the chaos workloads do (``classify``: 200 ok, 409 fail, else info)."""
        invoke = self.now()
        if f == "status":
            status, body = call("GET", url + PATHS[f], None, timeout)
        else:
            status, body = call("POST", url + PATHS[f], args, timeout)
        kind, result = classify(Answer(status or None, body))  # 0: no answer (unknown outcome: "info")
        error = None if kind == "ok" else (body.get("error") if isinstance(body, dict) else f"http {status}")
        op = Op("semaphores", process, f, url, invoke, self.now(), kind, args, result, error)
        with self._lock:
            self.ops.append(op)
        return op

    def granted(self, since: float = 0.0) -> int:
        with self._lock:
            return sum(1 for op in self.ops if op.f == "acquire" and op.type == "ok" and op.invoke >= since)


def semaphore_load(nodes: list[str], history: History, stop: threading.Event, process: int) -> None:
    """Acquire (a fresh client id per hold), hold a moment, release; round the nodes; until ``stop``."""
    rng = random.Random(process)
    n = 0
    while not stop.is_set():
        n += 1
        client, url = f"w{process}-{n}", nodes[(process + n) % len(nodes)]
        args = {"name": NAME, "client_id": client, "limit": LIMIT, "ttl": LOAD_TTL, "timeout": 1.0}
        if history.request(process, "acquire", url, args, timeout=4.0).type != "ok":
            stop.wait(0.05)
            continue
        stop.wait(rng.uniform(0.0, 0.05))  # the hold itself: the load's work, not a wait for anything
        for attempt in range(20):  # a release cut by the kill is sent again (through the next node)
            url = nodes[(process + n + attempt) % len(nodes)]
            if history.request(process, "release", url, {"name": NAME, "client_id": client}).type != "info":
                break
            stop.wait(0.1)


def unknown_ops(history: History) -> list[Op]:
    return [op for op in history.ops if op.type == "info"]


def test_sigkill_of_the_raft_leader_under_semaphore_load_over_grants_nothing(cluster_factory):
    cluster = cluster_factory(3)
    raft_leader = cluster.wait_for_leader(timeout=15)
    nodes = urls(cluster)
    survivor = next(cluster.nodes[i].url for i in sorted(cluster.nodes) if i != raft_leader)
    history = History()
    kept = history.request(99, "acquire", survivor, {"name": NAME, "client_id": "keeper", "limit": LIMIT, "ttl": 60})
    assert kept.type == "ok", kept
    stop = threading.Event()
    threads = [threading.Thread(target=semaphore_load, args=(nodes, history, stop, i)) for i in range(6)]
    for t in threads:
        t.start()
    try:
        cluster.wait_until(lambda: history.granted() >= 15, 20, "load before the kill")
        cluster.nodes[raft_leader].kill()
        cluster.wait_for_leader(timeout=15, exclude=[raft_leader])
        new_leader_at = history.now()
        cluster.wait_until(lambda: history.granted(since=new_leader_at) >= 15, 20, "load after the new leader")
        st = history.request(99, "status", survivor, {"name": NAME})
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert not any(t.is_alive() for t in threads)
    assert st.type == "ok" and st.result is not None, st
    keeper = [h for h in st.result["holders"] if h["client_id"] == "keeper"]
    assert keeper == [{"client_id": "keeper", "permits": 1, "fencing_token": kept.result["fencing_token"]}], st
    assert history.request(99, "release", survivor, {"name": NAME, "client_id": "keeper"}).type == "ok"
    final = history.request(99, "status", survivor, {"name": NAME})
    assert final.type == "ok", final
    # Still held at the end: only a hold whose acquire or release was cut by the kill (its outcome
    # unknown to the client; its lease ends it), never one the client saw released or refused.
    settled = {op.args["client_id"] for op in history.ops if op.f == "release" and op.type != "info"}
    settled |= {op.args["client_id"] for op in history.ops if op.f == "acquire" and op.type == "fail"}
    assert not {h["client_id"] for h in final.result["holders"]} & settled, (final, unknown_ops(history))

    verdict = check_semaphores(history.ops)
    assert verdict.valid, "\n".join(verdict.violations)
    assert verdict.stats["holds"] >= 30 and verdict.stats["peak_permits"] <= LIMIT, verdict.stats
    assert verdict.stats["fencing_violations"] == verdict.stats["capacity_violations"] == 0
    grants = [op for op in history.ops if op.f == "acquire" and op.type == "ok"]
    assert len({op.result["fencing_token"] for op in grants}) == len(grants), "every grant its own token"
