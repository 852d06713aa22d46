"""``rakit kv ...`` (``rakit.cli_kv``) through typer's ``CliRunner``, against the fake node of ``kv_fake``."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from kv_fake import FakeKv, StreamPlan
from typer.testing import CliRunner

import rakit.cli_client
from rakit.cli import app
from rakit.client import Client

runner = CliRunner()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeKv:
    node = FakeKv()

    def client_on_fake(*args: Any, **kwargs: Any) -> Client:
        client = Client(*args, **kwargs)
        client._runner.http.close()
        client._runner.http = httpx.Client(transport=httpx.MockTransport(node))
        return client

    monkeypatch.setattr(rakit.cli_client, "Client", client_on_fake)
    monkeypatch.setenv("RAKIT_NODES", "http://n1:8001,http://n2:8001")
    return node


def kv(*args: str, stdin: str | None = None) -> Any:
    return runner.invoke(app, ["kv", *args], input=stdin)


def ok_json(*args: str, stdin: str | None = None) -> Any:
    result = kv(*args, "--json", stdin=stdin)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_put_get_and_the_revision_conditions(fake: FakeKv) -> None:
    assert ok_json("put", "config:mode", "blue") == {"key": "config:mode", "revision": 1, "previous_revision": None}
    assert ok_json("put", "config:n", "17", "--ttl", "30")["revision"] == 2
    assert fake.bodies("/kv/put")[1] == {"key": "config:n", "value": 17, "ttl": 30}
    got = ok_json("get", "config:mode")
    assert got == {
        "key": "config:mode",
        "value": "blue",
        "create_revision": 1,
        "mod_revision": 1,
        "version": 1,
        "revision": 2,
    }
    table = kv("get", "config:mode")
    assert table.exit_code == 0 and "mod_revision" in table.stdout and "blue" in table.stdout
    stale = kv("put", "config:mode", '{"c": "green"}', "--if-revision", "7")
    assert stale.exit_code == 1
    assert "rakit: error: revision_mismatch" in stale.stderr and "current revision: 1" in stale.stderr
    assert kv("put", "config:mode", "x", "--if-absent").exit_code == 1
    assert ok_json("put", "config:mode", '{"c": "green"}', "--if-revision", "1")["previous_revision"] == 1
    assert fake.data["config:mode"]["value"] == {"c": "green"}
    assert ok_json("put", "svc.a", "1", "--session", "s-1")["revision"] == 4
    assert fake.bodies("/kv/put")[-1] == {"key": "svc.a", "value": 1, "session_id": "s-1"}
    ok_json("get", "svc.a", "--serializable")
    assert fake.requests[-1].url.params["consistency"] == "serializable"
    missing = kv("get", "nope")
    assert missing.exit_code == 1 and "not_found" in missing.stderr


def test_del_range_and_incr(fake: FakeKv) -> None:
    for i in range(5):
        fake.put(f"jobs:{i}", i)
    fake.put("keep", 0)
    page = ok_json("range", "--prefix", "jobs:", "--limit", "2")
    assert [r["key"] for r in page["items"]] == ["jobs:0", "jobs:1"] and page["more"] and page["revision"] == 6
    rest = ok_json("range", "--prefix", "jobs:", "--after", "jobs:1")
    assert [r["value"] for r in rest["items"]] == [2, 3, 4] and not rest["more"]
    every = ok_json("range", "--prefix", "jobs:", "--all")
    assert len(every["items"]) == 5
    table = kv("range", "--prefix", "jobs:", "--limit", "2")
    assert table.exit_code == 0 and "jobs:1" in table.stdout and "--after jobs:1" in table.stdout
    assert kv("del", "jobs:0", "--if-revision", "9").exit_code == 1
    assert ok_json("del", "jobs:0", "--if-revision", "1") == {"deleted": 1}
    assert ok_json("del", "--prefix", "jobs:") == {"deleted": 4}
    assert sorted(fake.data) == ["keep"]
    assert kv("del").exit_code == 2 and kv("del", "a", "--prefix", "b").exit_code == 2
    assert ok_json("incr", "hits", "--delta", "5") == {"key": "hits", "value": 5}
    assert kv("incr", "hits").stdout.strip() == "6"


TXN = {
    "compare": [{"key": "leader", "target": "value", "op": "==", "value": "a"}],
    "success": [{"put": {"key": "leader", "value": "b"}}, {"get": {"key": "leader"}}],
    "failure": [{"get": {"key": "leader"}}],
}


def test_txn_from_an_argument_or_stdin(fake: FakeKv) -> None:
    fake.put("leader", "a")
    done = ok_json("txn", json.dumps(TXN))
    assert done["succeeded"] and done["revision"] == 2
    assert done["results"][1]["value"] == "b" and done["results"][0] == {"revision": 2}
    assert fake.bodies("/kv/txn")[0] == TXN
    again = ok_json("txn", stdin=json.dumps(TXN))
    assert not again["succeeded"] and again["results"][0]["value"] == "b"
    table = kv("txn", "-", stdin=json.dumps(TXN))
    assert table.exit_code == 0 and "failed at revision 2" in table.stdout
    for bad in ("not json", '{"compare": [{"key": "a"}]}', '{"success": [{"frob": {"key": "a"}}]}', "[]"):
        refused = kv("txn", bad)
        assert refused.exit_code == 2 and "rakit: error: txn:" in refused.stderr, bad


def test_watch_prints_events_as_lines_until_count(fake: FakeKv) -> None:
    fake.put("config:a", 1)
    fake.commit([("put", "config:b", {"x": 1}), ("delete", "config:a", None)])
    fake.put("config:c", "z")
    fake.plans = [StreamPlan(events=2)]  # the stream breaks once inside revision 2
    lines = kv("watch", "--prefix", "config:", "--from-revision", "1", "--count", "4").stdout.splitlines()
    assert lines == ["1 put config:a 1", '2 put config:b {"x": 1}', "2 delete config:a", '3 put config:c "z"']
    fake.plans = []
    as_json = kv("watch", "config:c", "--from-revision", "3", "--count", "1", "--json")
    event = json.loads(as_json.stdout)
    assert event["type"] == "put" and event["key"] == "config:c" and event["revision"] == 3
    assert kv("watch").exit_code == 2 and kv("watch", "k", "--count", "0").exit_code == 2


def test_watch_shows_a_compaction(fake: FakeKv) -> None:
    fake.put("config:a", 1)
    fake.put("config:b", 2)
    fake.compact_revision = 2
    fake.plans = [StreamPlan(events=None, error=None)]
    line = kv("watch", "--prefix", "config:", "--from-revision", "1", "--count", "1").stdout.strip()
    assert line == "2 compacted (history from 2): 2 keys now"
    fake.plans = [StreamPlan(events=None, error=None)]
    event = json.loads(kv("watch", "--prefix", "config:", "--from-revision", "1", "--count", "1", "--json").stdout)
    assert event["type"] == "compacted" and [r["key"] for r in event["snapshot"]] == ["config:a", "config:b"]
