"""Sessions, semaphores and leader election on a real 3-node cluster, through random nodes (docs/api.md v2)."""

from __future__ import annotations

import threading

import pytest

from httpcall import get, post

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from rakit.launcher import LocalCluster

    c = LocalCluster(3, tmp_path_factory.mktemp("coordination"))
    c.start()
    c.wait_for_leader(timeout=15)
    yield c
    c.close()


def urls(cluster) -> list[str]:
    return [n.url for n in cluster.nodes.values()]


def in_background(fn):
    out: dict = {}
    thread = threading.Thread(target=lambda: out.update(answer=fn()), daemon=True)
    thread.start()
    return thread, out


def test_a_semaphore_counts_permits_fifo_with_fencing_tokens(cluster):
    a, b, c = urls(cluster)
    s, g1 = post(a + "/semaphore/acquire", {"name": "gpu", "client_id": "w1", "limit": 2})
    assert s == 200 and g1["acquired"] and (g1["permits"], g1["limit"], g1["available"]) == (1, 2, 1)
    s, g2 = post(b + "/semaphore/acquire", {"name": "gpu", "client_id": "w2", "limit": 2})
    assert s == 200 and g2["fencing_token"] > g1["fencing_token"] and g2["available"] == 0
    s, body = post(c + "/semaphore/acquire", {"name": "gpu", "client_id": "w3", "limit": 2})
    assert (s, body["error"], body["acquired"]) == (409, "conflict", False)
    s, body = post(c + "/semaphore/acquire", {"name": "gpu", "client_id": "w3", "limit": 3})
    assert (s, body["error"], body["limit"]) == (409, "limit_mismatch", 2)
    s, again = post(a + "/semaphore/acquire", {"name": "gpu", "client_id": "w1", "limit": 2})
    assert s == 200 and again["again"] and again["fencing_token"] == g1["fencing_token"]
    s, body = post(a + "/semaphore/acquire", {"name": "gpu", "client_id": "w1", "limit": 2, "permits": 2})
    assert (s, body["error"]) == (409, "already_holder")
    waiter, out = in_background(
        lambda: post(
            c + "/semaphore/acquire", {"name": "gpu", "client_id": "w3", "limit": 2, "timeout": 20}, timeout=30
        )
    )
    assert post(b + "/semaphore/release", {"name": "gpu", "client_id": "w2"}) == (200, {"released": True, "permits": 1})
    waiter.join(25)
    s, g3 = out["answer"]
    assert s == 200 and g3["client_id"] == "w3" and g3["fencing_token"] > g2["fencing_token"]
    s, st = get(b + "/semaphore/status/gpu")
    assert s == 200 and st["limit"] == 2 and st["available"] == 0
    assert sorted(h["client_id"] for h in st["holders"]) == ["w1", "w3"]
    s, body = post(a + "/semaphore/release", {"name": "gpu", "client_id": "nobody"})
    assert (s, body["error"]) == (409, "not_holder")


def test_an_election_hands_over_in_one_entry_and_observers_see_it(cluster):
    a, b, c = urls(cluster)
    s, won = post(a + "/election/campaign", {"name": "sched", "candidate_id": "n1", "value": {"host": "a"}})
    assert s == 200 and won["elected"] and won["leader"] == "n1" and won["value"] == {"host": "a"}
    s, body = post(b + "/election/campaign", {"name": "sched", "candidate_id": "n2"})
    assert (s, body["error"]) == (409, "conflict")
    second, out = in_background(
        lambda: post(b + "/election/campaign", {"name": "sched", "candidate_id": "n2", "timeout": 20, "value": 2})
    )
    observer, seen = in_background(
        lambda: get(c + f"/election/observe/sched?after_term={won['term']}&timeout=20", timeout=30)
    )
    s, lead = get(c + "/election/leader/sched")
    assert s == 200 and lead["leader"] == "n1" and lead["term"] == won["term"]
    s, body = post(c + "/election/proclaim", {"name": "sched", "candidate_id": "n1", "term": won["term"], "value": 7})
    assert s == 200 and body["value"] == 7 and body["term"] == won["term"]
    s, body = post(c + "/election/proclaim", {"name": "sched", "candidate_id": "n1", "term": 1, "value": 7})
    assert (s, body["error"]) == (409, "not_leader")
    assert post(a + "/election/resign", {"name": "sched", "candidate_id": "n1"}) == (200, {"resigned": True})
    second.join(25)
    observer.join(25)
    s, next_leader = out["answer"]
    assert s == 200 and next_leader["leader"] == "n2" and next_leader["term"] > won["term"]
    s, change = seen["answer"]
    assert s == 200 and change["changed"] and change["term"] > won["term"]
    s, body = post(a + "/election/renew", {"name": "sched", "candidate_id": "n1"})
    assert (s, body["error"]) == (409, "not_leader")


def test_a_revoked_session_ends_everything_attached_at_once_and_grants_the_waiters(cluster):
    a, b, c = urls(cluster)
    s, sess = post(a + "/session/grant", {"client_id": "worker", "ttl": 30})
    assert s == 200 and sess["client_id"] == "worker"
    sid = sess["session_id"]
    assert post(b + "/lock/acquire", {"resource": "job", "client_id": "worker", "session_id": sid})[0] == 200
    sem = {"name": "pool", "client_id": "worker", "limit": 1, "session_id": sid}
    assert post(c + "/semaphore/acquire", sem)[0] == 200
    assert post(a + "/election/campaign", {"name": "cron", "candidate_id": "worker", "session_id": sid})[0] == 200
    s, view = get(b + f"/session/{sid}")
    assert s == 200 and view["locks"] == ["job"] and view["semaphores"] == ["pool"] and view["elections"] == ["cron"]
    assert 0 < view["remaining"] <= 30
    waiters = [
        in_background(
            lambda: post(a + "/lock/acquire", {"resource": "job", "client_id": "other", "timeout": 20}, timeout=30)
        ),
        in_background(
            lambda: post(
                b + "/semaphore/acquire", {"name": "pool", "client_id": "other", "limit": 1, "timeout": 20}, timeout=30
            )
        ),
        in_background(
            lambda: post(c + "/election/campaign", {"name": "cron", "candidate_id": "other", "timeout": 20}, timeout=30)
        ),
    ]
    assert post(c + "/session/revoke", {"session_id": sid}) == (200, {"revoked": True})
    for thread, out in waiters:
        thread.join(25)
        s, body = out["answer"]
        assert s == 200, body
    s, body = get(a + f"/session/{sid}")
    assert (s, body["error"]) == (404, "session_not_found")
    s, body = post(a + "/session/keepalive", {"session_id": sid})
    assert (s, body["error"]) == (404, "session_not_found")


def test_a_session_client_must_match_and_bad_input_is_a_422(cluster):
    a, b, _ = urls(cluster)
    s, sess = post(a + "/session/grant", {"client_id": "w", "ttl": 5})
    sid = sess["session_id"]
    s, body = post(b + "/semaphore/acquire", {"name": "x", "client_id": "intruder", "limit": 1, "session_id": sid})
    assert s == 422 and body["error"] == "invalid_request"
    for path, bad in [
        ("/session/grant", {"client_id": "w", "ttl": 0}),
        ("/semaphore/acquire", {"name": "x\n", "client_id": "w", "limit": 1}),
        ("/semaphore/acquire", {"name": "x", "client_id": "w", "limit": 2, "permits": 3}),
        ("/election/campaign", {"name": "e", "candidate_id": "c", "value": "v" * 70_000}),
        ("/election/proclaim", {"name": "e", "candidate_id": "c"}),
    ]:
        s, body = post(b + path, bad)
        assert s == 422 and body["error"] == "invalid_request", (path, body)
    s, body = post(b + "/session/keepalive", {"session_id": "never-granted"})
    assert (s, body["error"]) == (404, "session_not_found")


def test_the_python_client_against_the_cluster(cluster):
    import asyncio

    import rakit

    with rakit.Client(urls(cluster), timeout=3.0, retry_deadline=20.0) as client:
        with client.session(ttl=10) as session:
            with client.semaphore("client-pool", 2, session=session) as permit:
                assert permit.fencing_token is not None
                other = client.semaphore("client-pool", 2, permits=2, client_id="other")
                assert other.acquire(blocking=False) is False
            info = session.info()
            assert info["session_id"] == session.session_id and info["semaphores"] == []
        assert client.semaphore_status("client-pool")["holders"] == []
        with client.campaign("client-election", value={"host": "a"}) as leadership:
            assert leadership.term is not None
            assert client.election_leader("client-election")["leader"] is not None

    async def main() -> None:
        async with rakit.AsyncClient(urls(cluster), timeout=3.0) as client:
            async with client.campaign("async-election", value=1) as leadership:
                term = leadership.term
            changes = client.observe("async-election", after_term=0)
            first = await asyncio.wait_for(changes.__anext__(), 20)
            assert first.term is not None and first.term >= term

    asyncio.run(main())


def test_holder_secrets_guard_permits_and_leaderships(cluster):
    """A client id is public (status, leader reads): without the hold's secret nobody can release or resign it."""
    import rakit

    a, b, _ = urls(cluster)
    with rakit.Client(urls(cluster), timeout=3.0, retry_deadline=20.0) as client:
        with client.semaphore("secret-pool", 1, client_id="sw1") as permit:
            assert (
                post(b + "/semaphore/release", {"name": "secret-pool", "client_id": "sw1"})[1]["error"] == "not_holder"
            )
            s, body = post(a + "/semaphore/renew", {"name": "secret-pool", "client_id": "sw1", "secret": "x" * 20})
            assert (s, body["error"]) == (409, "not_holder")
            s, body = post(a + "/semaphore/acquire", {"name": "secret-pool", "client_id": "sw1", "limit": 1})
            assert (s, body["error"]) == (409, "conflict")
            s, st = get(b + "/semaphore/status/secret-pool")
            assert [h["fencing_token"] for h in st["holders"]] == [permit.fencing_token] and permit.secret not in str(
                st
            )
        with client.campaign("secret-election", candidate_id="sc1") as leadership:
            s, body = post(b + "/election/resign", {"name": "secret-election", "candidate_id": "sc1"})
            assert (s, body["error"]) == (409, "not_leader")
            term = leadership.term
            s, body = post(
                a + "/election/proclaim", {"name": "secret-election", "candidate_id": "sc1", "term": term, "value": 2}
            )
            assert (s, body["error"]) == (409, "not_leader")
            s, view = get(b + "/election/leader/secret-election")
            assert (view["leader"], view["term"]) == ("sc1", term) and leadership.secret not in str(view)
        assert get(a + "/election/leader/secret-election")[1]["leader"] is None  # the handle resigned with its secret
    s, body = post(a + "/semaphore/acquire", {"name": "secret-pool", "client_id": "sw1", "limit": 1, "secret": "short"})
    assert (s, body["error"]) == (422, "invalid_request")
