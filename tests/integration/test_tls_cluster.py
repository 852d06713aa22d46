"""A 3-node cluster with TLS and mutual TLS between nodes.

A CA and one certificate per node (SANs 127.0.0.1 and localhost, serverAuth +
clientAuth) are made in the test's temporary folder.  Every node-to-node path
runs over TLS here: the Raft WebSockets (a leader is elected), request
forwarding to the leader (a lock taken through a follower), the cache
WebSockets (a value written on one node is read from another, and a second
write invalidates it there), queue forwarding to a topic's owner.  Clients:
``rakit.Client(verify=<ca>)`` works; plain HTTP is answered 400 "use https";
a client trusting no CA and a client presenting a certificate from another CA
are refused.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import rakit
from rakit.launcher import LocalCluster, TlsFiles, free_ports, wait_until
from tlscerts import make_ca

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("pki")
    ca = make_ca(folder)
    nodes = {}
    for k in (1, 2, 3):
        cert, key = ca.issue(folder, f"node{k}")
        nodes[f"node{k}"] = TlsFiles(cert, key, ca.path)
    other = make_ca(folder, "other-ca")
    foreign_cert, foreign_key = other.issue(folder, "intruder")
    return {"ca": ca.path, "nodes": nodes, "other_ca": other.path, "foreign": (foreign_cert, foreign_key)}


@pytest.fixture(scope="module")
def cluster(pki, tmp_path_factory, request):
    c = LocalCluster(3, tmp_path_factory.mktemp("tls"), tls=pki["nodes"])
    failed_before = request.session.testsfailed
    try:
        c.start(timeout=30)
        c.wait_for_leader(15)
        yield c
    finally:
        c.close()
        if request.session.testsfailed > failed_before:
            for name, tail in c.log_tails(40).items():
                print(f"\n----- {name} (last lines) -----\n{tail}")


@pytest.fixture(scope="module")
def http(pki):
    """An httpx client trusting the cluster CA (and presenting no certificate)."""
    with httpx.Client(verify=ssl.create_default_context(cafile=str(pki["ca"])), timeout=10) as client:
        yield client


def urls(cluster: LocalCluster) -> list[str]:
    return [n.url for n in cluster.nodes.values()]


def retry_ok(http: httpx.Client, method: str, url: str, body: object = None, timeout: float = 15.0) -> dict:
    """Repeat until 200 (a fresh cluster may answer 503 while its peers connect)."""
    last: list[httpx.Response] = []

    def ok() -> bool:
        last[:] = [http.request(method, url, json=body)]
        return last[0].status_code == 200

    try:
        wait_until(ok, timeout, f"{method} {url} to answer 200", interval=0.1)
    except TimeoutError:
        raise AssertionError(f"{method} {url}: {last[0].status_code} {last[0].text}") from None
    return last[0].json()


def test_the_cluster_serves_https_and_elects_a_leader_over_mutual_tls(cluster, http):
    assert all(u.startswith("https://127.0.0.1:") for u in urls(cluster))
    assert all(n.url.startswith("https://") for n in cluster.nodes.values())
    for node in cluster.nodes.values():
        assert "--tls-ca" in node.argv and "--tls-cert" in node.argv
    leader = cluster.wait_for_leader(15)
    statuses = [http.get(u + "/status").json() for u in urls(cluster)]
    assert {s["leader_id"] for s in statuses} == {leader}
    assert sorted(s["role"] for s in statuses) == ["follower", "follower", "leader"]


def test_a_lock_taken_through_a_follower_is_forwarded_over_tls(cluster, http):
    leader = cluster.wait_for_leader(15)
    follower = cluster.nodes[cluster.followers()[0]]
    grant = retry_ok(
        http, "POST", follower.url + "/lock/acquire", {"resource": "tls-orders", "client_id": "w1", "ttl": 30}
    )
    assert grant["acquired"] is True and grant["fencing_token"] > 0
    status = http.get(cluster.nodes[leader].url + "/lock/status/tls-orders").json()
    assert status["holders"] == ["w1"] and status["fencing_token"] == grant["fencing_token"], status
    retry_ok(http, "POST", follower.url + "/lock/release", {"resource": "tls-orders", "client_id": "w1"})
    assert http.get(cluster.nodes[leader].url + "/lock/status/tls-orders").json()["holders"] == []


def test_the_cache_talks_to_its_peers_over_tls(cluster, http):
    a, b, c = urls(cluster)
    # Each node serves its cache once it has heard from its peers (over the cache WebSockets).
    wait_until(
        lambda: all(http.get(u + "/cache/stats").json()["serving"] for u in (a, b, c)),
        15,
        "every node's cache to serve",
    )
    v1 = retry_ok(http, "POST", a + "/cache/set", {"key": "tls:user", "value": {"name": "Ada"}})["version"]
    got = retry_ok(http, "GET", b + "/cache/get/tls:user")
    assert got["value"] == {"name": "Ada"} and got["version"] == v1 and got["source"] == "peer", got
    assert retry_ok(http, "GET", b + "/cache/get/tls:user")["source"] == "local"
    # A new write on c invalidates b's copy (over the cache WebSocket) before it answers.
    retry_ok(http, "POST", c + "/cache/set", {"key": "tls:user", "value": {"name": "Grace"}})
    assert retry_ok(http, "GET", b + "/cache/get/tls:user")["value"] == {"name": "Grace"}
    assert http.get(c + "/cache/stats").json()["invalidations_sent"] >= 1


def test_a_queue_push_through_a_non_owner_is_forwarded_over_tls(cluster, http):
    first = urls(cluster)[0]

    def agreed_owner() -> str | None:
        owners = {http.get(u + "/queue/stats/tls-mail").json().get("owner") for u in urls(cluster)}
        return owners.pop() if len(owners) == 1 else None

    owner = wait_until(agreed_owner, 10, "the nodes to agree on the owner of tls-mail", interval=0.1)
    assert owner in cluster.nodes, first
    entry = next(n for i, n in cluster.nodes.items() if i != owner)
    pushed = retry_ok(http, "POST", entry.url + "/queue/push", {"topic": "tls-mail", "message": {"to": "a@b.c"}})
    assert pushed["node"] == owner
    popped = http.get(entry.url + "/queue/pop/tls-mail/c1?visibility_timeout=30").json()
    assert popped["message"] == {"to": "a@b.c"} and popped["message_id"] == pushed["message_id"]
    acked = http.post(
        entry.url + "/queue/ack", json={"topic": "tls-mail", "consumer_id": "c1", "message_id": pushed["message_id"]}
    )
    assert acked.status_code == 200, acked.text


def test_the_python_client_with_the_cluster_ca(cluster, pki):
    with rakit.Client(urls(cluster), verify=pki["ca"]) as client:
        assert all(n["ok"] and n["url"].startswith("https://") for n in client.status())
        with client.lock("tls-client", ttl=10, timeout=5) as lease:
            assert lease.fencing_token > 0
        client.cache.set("tls:client", [1, 2, 3])
        assert client.cache.get("tls:client") == [1, 2, 3]
        queue = client.queue("tls-client-q")
        message_id = queue.push({"n": 1})
        message = queue.pop("c1", wait=5)
        assert message is not None and message.message_id == message_id
        queue.ack(message.message_id, "c1")


async def test_the_async_client_with_the_cluster_ca(cluster, pki):
    async with rakit.AsyncClient(urls(cluster), verify=str(pki["ca"])) as client:
        await client.cache.set("tls:async", "yes")
        assert await client.cache.get("tls:async") == "yes"


def test_plain_http_to_the_port_fails(cluster):
    """Plain HTTP to a TLS port is answered ``400 invalid_request`` saying to use https (not a transport error)."""
    for node in cluster.nodes.values():
        answer = httpx.get(f"http://127.0.0.1:{node.port}/status", timeout=5)
        assert answer.status_code == 400 and answer.headers["content-type"] == "application/json", answer.text
        assert answer.json()["error"] == "invalid_request"
        assert "use https" in answer.json()["detail"] and f"https://127.0.0.1:{node.port}" in answer.json()["detail"]
    plain_urls = [f"http://127.0.0.1:{n.port}" for n in cluster.nodes.values()]
    with rakit.Client(plain_urls, attempts=1) as client, pytest.raises(rakit.InvalidRequest, match="use https"):
        client.cache.get("tls:user")


def test_a_client_trusting_no_ca_fails_verification(cluster, pki):
    for verify in (True, pki["other_ca"]):  # True: the default CAs only; then a CA that signed no node
        with (
            rakit.Client(urls(cluster), attempts=1, verify=verify) as client,
            pytest.raises(rakit.ConnectionFailed, match="CERTIFICATE_VERIFY_FAILED"),
        ):
            client.cache.get("tls:user")
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(urls(cluster)[0] + "/status", timeout=5)


def test_a_client_certificate_from_another_ca_is_refused(cluster, pki):
    """The node verifies a client certificate that is presented (CERT_OPTIONAL): a foreign one is refused."""
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    ctx.load_cert_chain(*map(str, pki["foreign"]))
    with pytest.raises(httpx.TransportError):
        httpx.get(urls(cluster)[0] + "/status", verify=ctx, timeout=5)
    # ... while a node's own certificate, signed by the cluster CA, is accepted.
    member = pki["nodes"]["node2"]
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    ctx.load_cert_chain(str(member.cert), str(member.key))
    assert httpx.get(urls(cluster)[0] + "/status", verify=ctx, timeout=5).status_code == 200


# -- refusing to start ---------------------------------------------------------------------------------------


def run_node(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rakit", "node", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ},
        check=False,
    )


@pytest.mark.parametrize(
    "case, problem",
    [
        ("http-peers", "--tls-cert is set but --peers gives node1 as http://127.0.0.1:"),
        ("https-without-tls", "but TLS is off"),
        ("foreign-cert", "peers would refuse"),
    ],
)
def test_a_node_with_an_impossible_tls_setup_exits_2_with_one_line(case, problem, pki, tmp_path):
    ports = free_ports(2)
    scheme = "http" if case == "http-peers" else "https"
    peers = ",".join(f"node{k}={scheme}://127.0.0.1:{p}" for k, p in enumerate(ports, 1))
    member = pki["nodes"]["node1"]
    cert, key = (member.cert, member.key) if case != "foreign-cert" else pki["foreign"]
    flags = (
        []
        if case == "https-without-tls"
        else ["--tls-cert", str(cert), "--tls-key", str(key), "--tls-ca", str(pki["ca"])]
    )
    result = run_node(
        "--id",
        "node1",
        "--peers",
        peers,
        "--data-dir",
        str(tmp_path / "d"),
        "--cluster-secret",
        "tls-setup-test-secret",
        *flags,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rakit: error: ") and problem in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "d").exists()  # refused before touching the data dir


def test_launcher_tls_files_args(pki):
    member = pki["nodes"]["node1"]
    assert member.args == [
        "--tls-cert",
        str(Path(member.cert).absolute()),
        "--tls-key",
        str(Path(member.key).absolute()),
        "--tls-ca",
        str(Path(pki["ca"]).absolute()),
    ]
    assert TlsFiles("c.pem", "k.pem").args[-2:] == ["--tls-key", str(Path("k.pem").absolute())]
