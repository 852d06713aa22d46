"""The client's sessions, semaphores and elections against a tiny in-process fake of the v2 contract
(``/work/shared/API.md``: "Sessions", "Semaphores", "Leader election") on an ``httpx.MockTransport``.

Short ttls stand in for time; every wait is for a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

import rakit
from rakit.client import AsyncClient, Client


def reply(status: int, body: dict[str, Any]) -> httpx.Response:
    return httpx.Response(status, json=body)


def err(status: int, code: str, **extra: Any) -> httpx.Response:
    return reply(status, {"error": code, "detail": code, **extra})


class Fake:
    """Just enough of a node: sessions, one lock table, semaphores and elections (no waiting)."""

    def __init__(self) -> None:
        self.mutex = threading.Lock()
        self.index = 0
        self.paths: list[str] = []
        self.sessions: dict[str, str] = {}  # session id -> client id
        self.locks: dict[str, str] = {}
        self.sems: dict[str, tuple[int, dict[str, tuple[int, int]]]] = {}  # name -> (limit, holder -> (n, token))
        self.elections: dict[str, dict[str, Any]] = {}  # name -> {"leader", "value", "term"}
        self.refuse_renewals = False
        self.unreachable = False

    def next_index(self) -> int:
        self.index += 1
        return self.index

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.unreachable:
            raise httpx.ConnectError("unreachable", request=request)
        with self.mutex:
            self.paths.append(request.url.path)
            body = json.loads(request.content) if request.content else {}
            return self.answer(request.method, request.url.path, body, dict(request.url.params))

    def answer(self, method: str, path: str, b: dict[str, Any], q: dict[str, str]) -> httpx.Response:
        if path == "/session/grant":
            sid = f"s{self.next_index()}"
            self.sessions[sid] = b["client_id"]
            return reply(200, {"session_id": sid, "client_id": b["client_id"], "ttl": b["ttl"]})
        if path in ("/session/keepalive", "/session/revoke"):
            if b["session_id"] not in self.sessions:
                return err(404, "session_not_found")
            if path.endswith("revoke"):
                self.end_session(b["session_id"])
                return reply(200, {"revoked": True})
            return reply(200, {"session_id": b["session_id"], "ttl": 1})
        if path.startswith("/session/"):
            sid = path.rsplit("/", 1)[1]
            locks = [r for r, h in self.locks.items() if h == sid]
            return reply(200, {"session_id": sid, "client_id": self.sessions[sid], "locks": locks})
        if path == "/lock/acquire":
            holder = b.get("session_id") or b["client_id"]
            if self.locks.setdefault(b["resource"], holder) != holder:
                return err(409, "timeout" if b["timeout"] else "conflict")
            return reply(200, {"acquired": True, "fencing_token": self.next_index(), "ttl": b["ttl"]})
        if path == "/lock/release":
            holders = {b["client_id"]} | {s for s, c in self.sessions.items() if c == b["client_id"]}
            if self.locks.get(b["resource"]) not in holders:
                return err(409, "not_holder")
            del self.locks[b["resource"]]
            return reply(200, {"released": True})
        if path.startswith("/semaphore/"):
            return self.semaphore(path, b)
        if path.startswith("/election/"):
            return self.election(path, b, q)
        return err(404, "not_found")

    def end_session(self, sid: str) -> None:
        del self.sessions[sid]
        self.locks = {r: h for r, h in self.locks.items() if h != sid}

    def semaphore(self, path: str, b: dict[str, Any]) -> httpx.Response:
        if path.startswith("/semaphore/status/"):
            name = path.rsplit("/", 1)[1]
            limit, holders = self.sems.get(name, (None, {}))
            used = sum(n for n, _ in holders.values())
            return reply(200, {"name": name, "limit": limit, "available": (limit or 0) - used, "holders": holders})
        limit, holders = self.sems.setdefault(b["name"], (b.get("limit", 1), {}))
        me = b["client_id"]
        if path == "/semaphore/acquire":
            if b["limit"] != limit and holders:
                return err(409, "limit_mismatch", limit=limit)
            if me not in holders:
                if sum(n for n, _ in holders.values()) + b["permits"] > limit:
                    return err(409, "timeout" if b["timeout"] else "conflict")
                holders[me] = (b["permits"], self.next_index())
            used = sum(n for n, _ in holders.values())
            return reply(200, {"acquired": True, "fencing_token": holders[me][1], "available": limit - used})
        if me not in holders or (path.endswith("renew") and self.refuse_renewals):
            return err(409, "not_holder")
        if path.endswith("release"):
            del holders[me]
            return reply(200, {"released": True})
        return reply(200, {"renewed": True, "ttl": b.get("ttl")})

    def election(self, path: str, b: dict[str, Any], q: dict[str, str]) -> httpx.Response:
        name = b.get("name") or path.rsplit("/", 1)[1]
        e = self.elections.setdefault(name, {"leader": None, "value": None, "term": None})
        me = b.get("candidate_id")
        if path == "/election/campaign":
            if e["leader"] not in (None, me):
                return err(409, "timeout" if b["timeout"] else "conflict")
            if e["leader"] is None:
                e.update(leader=me, value=b["value"], term=self.next_index())
            return reply(200, {"elected": True, "name": name, "leader": me, "value": e["value"], "term": e["term"]})
        if path.startswith(("/election/leader/", "/election/observe/")):
            changed = e["term"] is not None and e["term"] > int(q.get("after_term", -1))
            return reply(200, {"name": name, **e, "changed": changed, "candidates": []})
        if e["leader"] != me or (path.endswith("renew") and self.refuse_renewals):
            return err(409, "not_leader")
        if path == "/election/proclaim":
            e["value"] = b["value"]
            return reply(200, {"name": name, "term": e["term"], "value": b["value"]})
        if path == "/election/resign":
            e.update(leader=None, term=self.next_index())
            return reply(200, {"resigned": True})
        return reply(200, {"renewed": True, "ttl": b.get("ttl")})


def wait_until(condition: Callable[[], object], what: str, deadline: float = 5.0) -> None:
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.01)


async def await_until(condition: Callable[[], object], what: str, deadline: float = 5.0) -> None:
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


@pytest.fixture
def fake() -> Fake:
    return Fake()


def sync_client(fake: Fake, client_id: str = "me") -> Client:
    c = Client("http://node1:8001", client_id=client_id, attempts=1)
    c._runner.http.close()
    c._runner.http = httpx.Client(transport=httpx.MockTransport(fake))
    return c


@pytest.fixture
def client(fake: Fake) -> Iterator[Client]:
    c = sync_client(fake)
    yield c
    c.close()


@pytest.fixture
async def aclient(fake: Fake) -> AsyncIterator[AsyncClient]:
    c = AsyncClient("http://node1:8001", client_id="me", attempts=1)
    await c._runner.http.aclose()
    c._runner.http = httpx.AsyncClient(transport=httpx.MockTransport(fake))
    yield c
    await c.aclose()


# -- sessions ---------------------------------------------------------------------------------------------


def test_a_session_keeps_itself_alive_attaches_a_lock_and_revokes_on_exit(client: Client, fake: Fake) -> None:
    with client.session(ttl=0.3) as s:
        assert s.session_id == "s1"
        with client.lock("orders", session=s) as lease:
            assert fake.locks == {"orders": "s1"} and lease.locked()
            wait_until(lambda: fake.paths.count("/session/keepalive") >= 2, "two keepalives")
            assert not s.lost.is_set() and "/lock/renew" not in fake.paths  # the session keeps it
            assert s.info()["locks"] == ["orders"]
    assert fake.sessions == {} and fake.paths[-1] == "/session/revoke"


def test_a_session_lost_sets_lost_on_it_and_its_locks(client: Client, fake: Fake) -> None:
    with pytest.raises(rakit.SessionLost):
        with client.session(ttl=0.3) as s:
            lease = client.lock("orders", session=s).acquire()
            with fake.mutex:
                fake.end_session("s1")  # it expired on the server
            wait_until(s.lost.is_set, "the keepalive to find the session gone")
            assert lease.is_lost and not lease.locked()
            with pytest.raises(rakit.SessionLost):
                s.check()
            lease.release()  # ended with its session: nothing to send
    assert fake.paths.count("/lock/release") == 0 and "/session/revoke" not in fake.paths


def test_a_session_that_cannot_reach_the_cluster_is_lost_by_its_ttl(client: Client, fake: Fake) -> None:
    s = client.session(ttl=0.4).grant()
    with pytest.raises(rakit.PermitsLost), client.semaphore("gpu", 2, session=s) as gpu:
        fake.unreachable = True
        started = time.monotonic()
        wait_until(s.lost.is_set, "the keepalive to give up", deadline=3)
        assert time.monotonic() - started < 1.5  # by the ttl, not a retry deadline (15 s) later
        assert gpu.lost.is_set()
        fake.unreachable = False
    with pytest.raises(rakit.SessionLost):
        s.check()
    s.revoke()


async def test_an_async_session_lost_cancels_the_block(aclient: AsyncClient, fake: Fake) -> None:
    reached_end = False
    with pytest.raises(rakit.SessionLost):
        async with aclient.session(ttl=0.3) as s:
            async with aclient.lock("orders", session=s) as lease:
                with fake.mutex:
                    fake.end_session("s1")
                await asyncio.sleep(10)  # cancelled by the loss, not slept through
                reached_end = True
    assert not reached_end and s.lost.is_set() and lease.is_lost
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


# -- semaphores -------------------------------------------------------------------------------------------


def test_a_semaphore_acquires_releases_times_out_and_says_if_held(fake: Fake) -> None:
    a, b = sync_client(fake, "a"), sync_client(fake, "b")
    try:
        gpu_a, gpu_b = a.semaphore("gpu", limit=2, permits=2, ttl=30), b.semaphore("gpu", limit=2)
        assert not gpu_a.locked()
        assert gpu_a.acquire() is True and gpu_a.locked() and gpu_a.fencing_token == 1
        assert gpu_b.acquire(blocking=False) is False
        assert gpu_b.acquire(timeout=0.05) is False and not gpu_b.locked()
        assert a.semaphore_status("gpu")["available"] == 0
        gpu_a.release()
        with gpu_b:
            assert gpu_b.fencing_token == 2 and gpu_b.available == 1
        assert fake.sems["gpu"][1] == {}
        with pytest.raises(rakit.LimitMismatch) as mismatch:
            gpu_a.acquire()
            b.semaphore("gpu", limit=3).acquire()
        assert mismatch.value.limit == 2
        with pytest.raises(ValueError, match="non-blocking"):
            gpu_b.acquire(False, 1)
    finally:
        a.close()
        b.close()


async def test_async_semaphore_lost_when_renewal_is_refused(aclient: AsyncClient, fake: Fake) -> None:
    with pytest.raises(rakit.PermitsLost):
        async with aclient.semaphore("gpu", 4, ttl=0.3) as gpu:
            assert gpu.locked()
            fake.refuse_renewals = True
            await asyncio.sleep(10)
    assert gpu.lost.is_set()


# -- elections --------------------------------------------------------------------------------------------


def test_campaign_runs_the_block_as_leader_and_resigns_on_exit(client: Client, fake: Fake) -> None:
    with client.campaign("scheduler", value={"host": "a"}, ttl=0.3) as leadership:
        assert leadership.term == 1 and leadership.is_leader
        assert client.election_leader("scheduler")["leader"] == "me"
        wait_until(lambda: "/election/renew" in fake.paths, "a renewal")
        leadership.proclaim({"host": "b"})
        assert fake.elections["scheduler"]["value"] == {"host": "b"}
    assert fake.paths[-1] == "/election/resign" and fake.elections["scheduler"]["leader"] is None


def test_a_refused_renewal_raises_leadership_lost_on_exit(client: Client, fake: Fake) -> None:
    with pytest.raises(rakit.LeadershipLost):
        with client.campaign("scheduler", ttl=0.3) as leadership:
            fake.refuse_renewals = True
            wait_until(leadership.lost.is_set, "the refused renewal")
    assert "/election/resign" not in fake.paths


async def test_async_refused_renewal_cancels_the_block(aclient: AsyncClient, fake: Fake) -> None:
    reached_end = False
    with pytest.raises(rakit.LeadershipLost):
        async with aclient.campaign("scheduler", ttl=0.3):
            fake.refuse_renewals = True
            await asyncio.sleep(10)
            reached_end = True
    assert not reached_end


def test_observe_yields_each_change_with_increasing_terms(fake: Fake) -> None:
    a, b = sync_client(fake, "a"), sync_client(fake, "b")
    try:
        seen = a.observe("scheduler", poll=1)
        with b.campaign("scheduler", ttl=30):
            first = next(seen)
        second = next(seen)  # the resignation: vacant, a newer term
        assert (first.leader, second.leader) == ("b", None) and second.term > first.term  # type: ignore[operator]
        assert isinstance(first, rakit.LeaderChange)
    finally:
        a.close()
        b.close()


async def test_async_observe(aclient: AsyncClient, fake: Fake) -> None:
    async with aclient.campaign("scheduler", ttl=30, value=1):
        changes = aclient.observe("scheduler", poll=1)
        change = await anext(changes)
    assert (change.leader, change.value, change.term) == ("me", 1, 1)
    assert (await anext(changes)).term == 2


def test_leader_only_runs_on_one_of_two_competing_clients(fake: Fake) -> None:
    a, b = sync_client(fake, "a"), sync_client(fake, "b")
    runs: list[str] = []
    try:
        job_a = a.leader_only("nightly", ttl=30)(lambda: runs.append("a") or "done")
        job_b = b.leader_only("nightly", ttl=30)(lambda: runs.append("b") or "done")
        assert job_a() == "done" and job_b() is None
        assert job_a() == "done"  # still the leader: runs again
        assert runs == ["a", "a"] and "/election/resign" not in fake.paths  # kept for its ttl
    finally:
        a.close()
        b.close()


async def test_async_leader_only(aclient: AsyncClient, fake: Fake) -> None:
    @aclient.leader_only("nightly", ttl=30, resign=True)
    async def job() -> int:
        return 7

    assert await job() == 7 and fake.paths[-1] == "/election/resign"
    with pytest.raises(TypeError, match="not a coroutine function"):
        aclient.leader_only("nightly")(lambda: None)


# -- the Lock protocol ------------------------------------------------------------------------------------


def test_the_lock_stands_for_a_threading_lock(fake: Fake) -> None:
    a, b = sync_client(fake, "a"), sync_client(fake, "b")
    try:
        mine, theirs = a.lock("r", ttl=30), b.lock("r", ttl=30)
        assert mine.acquire(blocking=True, timeout=1) is True and mine.locked()
        assert theirs.acquire(False) is False and theirs.acquire(timeout=0.05) is False
        mine.release()
        assert not mine.locked() and theirs.acquire() is theirs  # no arguments: the lease, as before
        theirs.release()
        with pytest.raises(rakit.LockConflict):
            with mine:
                b.lock("r").acquire()
    finally:
        a.close()
        b.close()


async def test_the_async_lock_stands_for_an_asyncio_lock(aclient: AsyncClient, fake: Fake) -> None:
    lock = aclient.lock("r", ttl=30)
    assert await lock.acquire(timeout=1) is True and lock.locked()
    await lock.release()
    async with lock:
        assert lock.locked()
    assert fake.locks == {}


# -- argument checks ---------------------------------------------------------------------------------------

WRONG: list[tuple[Callable[[Client], Any], type[Exception], str]] = [
    (lambda c: c.semaphore("gpu", "4"), TypeError, "Client.semaphore(): limit must be an int, not str"),
    (lambda c: c.semaphore("gpu", 0), ValueError, "Client.semaphore(): limit must be at least 1, not 0"),
    (
        lambda c: c.semaphore("gpu", 4, permits=5),
        ValueError,
        "Client.semaphore(): permits must be from 1 to the limit (4), not 5",
    ),
    (lambda c: c.semaphore("gpu", 4, permits=1.0), TypeError, "Client.semaphore(): permits must be an int"),
    (lambda c: c.session(ttl="10"), TypeError, "Client.session(): ttl must be a number, not str"),
    (lambda c: c.lock("r", session="s1"), TypeError, "Client.lock(): session must be a Session or None, not str"),
    (lambda c: c.campaign("e", value={1, 2}), TypeError, "Client.campaign(): value must be JSON-serializable"),
    (lambda c: c.campaign(5), TypeError, "Client.campaign(): name must be a str, not int"),
    (lambda c: c.observe("e", after_term="3"), TypeError, "Client.observe(): after_term must be an int, not str"),
    (lambda c: c.leader_only("e", ttl=None), TypeError, "Client.leader_only(): ttl must be a number, not NoneType"),
]


@pytest.mark.parametrize(
    ("call", "kind", "error"), WRONG, ids=[e.split(":")[0] + ":" + e.split()[1] for *_, e in WRONG]
)
def test_wrong_arguments_fail_before_sending(
    client: Client, fake: Fake, call: Callable[[Client], Any], kind: type[Exception], error: str
) -> None:
    with pytest.raises(kind, match="^" + re.escape(error)):
        call(client)
    assert fake.paths == []


def test_async_wrong_arguments(aclient: AsyncClient, fake: Fake) -> None:
    with pytest.raises(ValueError, match=r"^AsyncClient\.semaphore\(\): permits must be from 1"):
        aclient.semaphore("gpu", 2, permits=3)
    with pytest.raises(TypeError, match=r"^AsyncClient\.lock\(\): session must be an AsyncSession or None"):
        aclient.lock("r", session=object())  # type: ignore[arg-type]
    assert fake.paths == []
