"""A rogue member, on real node processes: it cannot join, stall the cluster or read its log.

Security issue findings 1 and 2: membership changes and leader transfer must
prove the cluster secret (no token stands in for it); a node streams its log
only to a peer that proves the secret when it accepts the stream; and every
message a node receives, on any path (its own outbound streams included), is
checked, so one reply with a huge term cannot move the cluster's term.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from httpcall import call, get, post, retry_until_ok
from rakit.launcher import free_port

pytestmark = pytest.mark.integration

ROGUE = Path(__file__).with_name("rogue.py")


class Rogue:
    """``rogue.py`` in its own process; ``events`` is what it printed."""

    def __init__(self, secret: str | None = None, term: int = 2**62) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, str(ROGUE), "--port", str(self.port), "--term", str(term)]
        if secret is not None:
            args += ["--secret", secret]
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 30
        while not any(e["event"] == "listening" for e in self.events):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stderr.seek(0)
                pytest.fail(f"the rogue did not start: {self.stderr.read().decode(errors='replace')[-2000:]}")
            time.sleep(0.02)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.append(json.loads(line))

    def count(self, kind: str, path: str | None = None) -> int:
        return sum(1 for e in list(self.events) if e["event"] == kind and (path is None or e.get("path") == path))

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


def wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def voters_and_learners(url: str) -> list[str]:
    status, view = get(url + "/cluster/members")
    assert status == 200, view
    return sorted(m["id"] for m in view["voters"] + view["learners"])


def test_nobody_without_the_secret_can_change_membership_or_move_leadership(cluster_factory):
    cluster = cluster_factory(3)
    leader = cluster.wait_for_leader(timeout=15)
    urls = [n.url for n in cluster.nodes.values()]
    for url in urls:  # every node, the leader and the followers (which would relay)
        status, body = post(url + "/cluster/members", {"id": "evil", "url": "http://127.0.0.1:9"})
        assert status == 401 and body["error"] == "unauthorized" and "cluster secret" in body["detail"], body
        for node in cluster.nodes:
            status, body = post(url + f"/cluster/members/{node}/promote", {})
            assert status == 401, body
            status, body = call("DELETE", url + f"/cluster/members/{node}")
            assert status == 401, body
        status, body = post(url + "/cluster/transfer-leader", {})
        assert status == 401, body
        # A forged signature, or one made with another secret, is refused the same way.
        status, body = call(
            "POST",
            url + "/cluster/members",
            {"id": "evil", "url": "http://127.0.0.1:9"},
            secret="not-the-cluster-secret-at-all",
        )
        assert status == 401 and "bad signature" in body["detail"], body
    assert voters_and_learners(urls[0]) == sorted(cluster.nodes)
    assert cluster.wait_for_leader(timeout=5) == leader
    # With the secret (as ``rakit member`` and ``--join`` sign), it works through any node.
    follower = next(n.url for i, n in cluster.nodes.items() if i != leader)
    status, body = call("POST", follower + "/cluster/transfer-leader", {}, secret=cluster.cluster_secret)
    assert status == 200 and body["leader"] != leader, body


def test_a_member_that_cannot_prove_the_secret_is_sent_nothing(cluster_factory):
    cluster = cluster_factory(3)
    leader = cluster.wait_for_leader(timeout=15)
    status, _ = retry_until_ok(
        "POST", cluster.nodes[leader].url + "/kv/put", {"key": "db.password", "value": "hunter2"}
    )
    assert status == 200
    rogue = Rogue(secret=None)
    try:
        # An operator adds it (with the secret): the nodes dial it, signed, but it cannot answer the proof.
        status, body = call(
            "POST",
            cluster.nodes[leader].url + "/cluster/members",
            {"id": "evil", "url": rogue.url},
            secret=cluster.cluster_secret,
        )
        assert status == 200, body
        wait(lambda: rogue.count("accepted", "/raft/stream") >= 2, 15, "the leader to dial the rogue twice")
        assert rogue.count("frame") == 0, rogue.events  # not one frame: no entry, no snapshot, no heartbeat
        for node in cluster.nodes.values():
            log = node.log_path.read_text() if node.log_path and node.log_path.exists() else ""
            if "did not prove the cluster secret" in log:
                break
        else:
            pytest.fail("no node logged why it would not stream to the rogue")
    finally:
        rogue.stop()


def test_huge_terms_in_replies_on_a_nodes_own_stream_are_refused(cluster_factory):
    cluster = cluster_factory(3)
    leader = cluster.wait_for_leader(timeout=15)
    term = cluster.statuses()[leader]["term"]
    # The worst case: the rogue holds the secret (a member gone bad) and answers every frame with term 2**62.
    rogue = Rogue(secret=cluster.cluster_secret)
    try:
        status, body = call(
            "POST",
            cluster.nodes[leader].url + "/cluster/members",
            {"id": "evil", "url": rogue.url},
            secret=cluster.cluster_secret,
        )
        assert status == 200, body
        wait(lambda: rogue.count("frame", "/raft/stream") >= 20, 15, "the leader to stream to the rogue")
        # Writes keep committing, the leader keeps leading, nobody's term moved.
        for n in range(20):
            status, _ = retry_until_ok("POST", cluster.nodes[leader].url + "/kv/put", {"key": f"k{n}", "value": n})
            assert status == 200
        statuses = cluster.statuses()
        assert cluster.wait_for_leader(timeout=5) == leader
        assert all(s["term"] == term for s in statuses.values() if s), statuses
        status, body = call(
            "DELETE", cluster.nodes[leader].url + "/cluster/members/evil", secret=cluster.cluster_secret
        )
        assert status == 200, body
    finally:
        rogue.stop()
