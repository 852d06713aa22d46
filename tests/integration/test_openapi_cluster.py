"""``/openapi.json`` and ``/docs`` on a real node, and real answers checked against the document.

Each answer is validated (jsonschema, Draft 2020-12) against the schema the
document gives for its path, method and status, with every documented object
closed (``additionalProperties: false``), so a field a handler answers but
the document does not list fails here as much as a missing or mistyped one.
"""

from __future__ import annotations

import copy
import json
import urllib.request
from typing import Any

import pytest

from httpcall import call, internal_headers, retry_until_ok

jsonschema = pytest.importorskip("jsonschema")

pytestmark = pytest.mark.integration


def closed(node: Any) -> Any:
    """A copy of a schema tree where every object with listed properties allows no others."""
    if isinstance(node, dict):
        out = {k: closed(v) for k, v in node.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [closed(v) for v in node]
    return node


class Checker:
    def __init__(self, url: str, doc: dict[str, Any]) -> None:
        self.url = url
        self.doc = doc
        self.components = {"schemas": closed(copy.deepcopy(doc["components"]["schemas"]))}
        self.checked: list[tuple[str, str, int]] = []

    def schema_for(self, method: str, template: str, status: int) -> dict[str, Any] | None:
        op = self.doc["paths"][template][method.lower()]
        response = op["responses"].get(str(status))
        assert response is not None, f"{method} {template}: status {status} is not documented"
        if "$ref" in response:
            response = self.doc["components"]["responses"][response["$ref"].rpartition("/")[2]]
        content = response.get("content")
        if content is None:
            return None
        return closed(content["application/json"]["schema"])

    def check(
        self,
        method: str,
        template: str,
        path: str | None = None,
        body: Any = None,
        status: int = 200,
        retry: bool = False,
        headers: dict[str, str] | None = None,
    ) -> Any:
        url = self.url + (path or template)
        if retry:
            got, answer = retry_until_ok(method, url, body, timeout=20.0, ok=(status,))
        else:
            got, answer = call(method, url, body, headers=headers)
        assert got == status, f"{method} {path or template}: {got} {answer}"
        schema = self.schema_for(method, template, status)
        if schema is None:
            assert answer is None, f"{method} {template} {status}: no body documented, got {answer!r}"
        else:
            validator = jsonschema.Draft202012Validator({**schema, "components": self.components})
            errors = sorted(validator.iter_errors(answer), key=str)
            assert not errors, (
                f"{method} {path or template} {status}: the answer does not match the "
                f"document:\n{answer}\n" + "\n".join(e.message for e in errors[:5])
            )
        self.checked.append((method, template, status))
        return answer


def raw_get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.headers.get("content-type", ""), resp.read()


def test_docs_are_served_and_answers_match_the_document(cluster_factory: Any) -> None:
    cluster = cluster_factory(1)
    url = next(iter(cluster.urls.values()))

    status, content_type, raw = raw_get(url + "/openapi.json")
    assert status == 200 and content_type.startswith("application/json")
    doc = json.loads(raw)
    assert doc["openapi"].startswith("3.1.")
    from openapi_spec_validator import validate

    validate(doc)

    status, content_type, page = raw_get(url + "/docs")
    assert status == 200 and content_type.startswith("text/html")
    assert b"http://" not in page and b"https://" not in page
    for asset in ("/docs/static/swagger-ui-bundle.js", "/docs/static/swagger-ui.css"):
        assert asset.encode() in page
        status, _, content = raw_get(url + asset)
        assert status == 200 and len(content) > 1000
    status, _, translated = raw_get(url + "/docs/openapi-3.0.json")
    assert status == 200 and json.loads(translated)["openapi"] == "3.0.3"

    c = Checker(url, doc)
    c.check("GET", "/health")
    c.check("GET", "/status")
    retry_until_ok("POST", url + "/kv/put", {"key": "warm", "value": 1})  # a leader is elected
    assert c.check("GET", "/status")["role"] == "leader"
    c.check("GET", "/debug/digest")

    # locks
    grant = c.check("POST", "/lock/acquire", body={"resource": "orders", "client_id": "w1", "ttl": 30})
    c.check("POST", "/lock/acquire", body={"resource": "orders", "client_id": "w2"}, status=409)
    c.check("POST", "/lock/acquire", body={"resource": "orders", "client_id": "w2", "timeout": 0.2}, status=409)
    c.check("POST", "/lock/acquire", body={"resource": "orders"}, status=422)
    c.check("POST", "/lock/acquire", body={"resource": "bad name", "client_id": "w"}, status=422)
    c.check(
        "POST", "/lock/acquire", body={"resource": "shared-r", "client_id": "s1", "mode": "shared", "lock_delay": 0}
    )
    c.check("GET", "/lock/status/{resource}", "/lock/status/orders")
    c.check("GET", "/lock/status/{resource}", "/lock/status/x")
    c.check("GET", "/lock/status/{resource}", "/lock/status/shared-r")
    c.check("GET", "/lock/status/{resource}", "/lock/status/a%20b", status=422)
    c.check("POST", "/lock/renew", body={"resource": "orders", "client_id": "w1"})
    c.check("POST", "/lock/renew", body={"resource": "orders", "client_id": "nobody"}, status=409)
    c.check("GET", "/lock/watch/{resource}", "/lock/watch/orders?client_id=w1&timeout=0.1")
    c.check("GET", "/lock/watch/{resource}", "/lock/watch/orders?client_id=nobody&timeout=0.1")
    c.check("GET", "/lock/watch/{resource}", "/lock/watch/orders?timeout=0.1", status=422)
    c.check(
        "POST",
        "/lock/release",
        body={"resource": "orders", "client_id": "w1", "fencing_token": grant["fencing_token"] + 1000},
        status=409,
    )
    c.check("POST", "/lock/release", body={"resource": "orders", "client_id": "w1"})
    c.check("POST", "/lock/release", body={"resource": "orders", "client_id": "w1"}, status=409)

    # kv
    c.check("POST", "/kv/put", body={"key": "k", "value": {"a": [1, 2]}})
    c.check("GET", "/kv/get/{key}", "/kv/get/k")
    c.check("GET", "/kv/get/{key}", "/kv/get/missing", status=404)
    c.check("POST", "/kv/put", body={"key": "n", "value": 5})
    c.check("POST", "/kv/incr", body={"key": "n", "delta": 2})
    c.check("POST", "/kv/delete", body={"key": "n"})
    put = c.check("POST", "/kv/put", body={"key": "cfg.a", "value": 1, "ttl": 60})
    c.check("POST", "/kv/put", body={"key": "cfg.a", "value": 2, "if_revision": put["revision"] + 100}, status=409)
    c.check("POST", "/kv/put", body={"key": "cfg.b", "value": "x", "session_id": "no-such"}, status=404)
    c.check("GET", "/kv/get/{key}", "/kv/get/cfg.a?consistency=serializable")
    c.check("GET", "/kv/range", "/kv/range?prefix=cfg.&limit=1")
    c.check("GET", "/kv/range", "/kv/range?limit=0", status=422)
    c.check(
        "POST",
        "/kv/txn",
        body={
            "compare": [{"key": "cfg.a", "target": "version", "op": "==", "value": 1}],
            "success": [{"put": {"key": "cfg.a", "value": 3}}, {"get": {"key": "cfg.a"}}, {"delete": {"key": "x"}}],
            "failure": [],
        },
    )
    c.check("GET", "/kv/watch", f"/kv/watch?prefix=cfg.&from_revision={put['revision']}&format=json")
    c.check("GET", "/kv/watch", "/kv/watch?key=cfg.zz&format=json&wait=0.1")
    c.check("GET", "/kv/watch", "/kv/watch?format=json", status=422)
    c.check("POST", "/kv/delete", body={"prefix": "cfg."})

    # cache (a starting node serves its cache once pre-start write rounds are over: retry)
    c.check("POST", "/cache/set", body={"key": "user:42", "value": {"name": "Ada"}, "ttl": 300}, retry=True)
    c.check("GET", "/cache/get/{key}", "/cache/get/user:42")
    c.check("GET", "/cache/get/{key}", "/cache/get/nothing", status=404)
    c.check("POST", "/cache/set", body={"key": "big", "value": "x" * (1024 * 1024 + 10)}, status=413)
    c.check("POST", "/cache/delete", body={"key": "user:42"})
    c.check("GET", "/cache/stats")
    bad = {"src": "nodeX", "key": "k", "version": "1.nodeX"}  # signed: the cluster has a secret
    c.check(
        "POST",
        "/cache/invalidate",
        body=bad,
        status=422,
        headers=internal_headers(
            cluster.cluster_secret, "node1", "POST", "/cache/invalidate", json.dumps(bad).encode()
        ),
    )

    # queue
    pushed = c.check("POST", "/queue/push", body={"topic": "emails", "message": {"to": "a@b.c"}}, retry=True)
    delivery = c.check("GET", "/queue/pop/{topic}/{consumer_id}", "/queue/pop/emails/w1?visibility_timeout=30")
    assert delivery["message_id"] == pushed["message_id"]
    c.check("GET", "/queue/pop/{topic}/{consumer_id}", "/queue/pop/emails/w1", status=204)
    c.check("GET", "/queue/pop/{topic}/{consumer_id}", "/queue/pop/emails/w1?wait=99", status=422)
    ack = {"topic": "emails", "consumer_id": "w1", "message_id": pushed["message_id"]}
    c.check("POST", "/queue/extend", body={**ack, "visibility_timeout": 10})
    c.check("POST", "/queue/ack", body=ack)
    c.check("POST", "/queue/ack", body=ack, status=404)
    c.check("POST", "/queue/nack", body=ack, status=404)
    c.check("GET", "/queue/stats/{topic}", "/queue/stats/emails")
    c.check("GET", "/queue/dead/{topic}", "/queue/dead/emails?limit=10")
    c.check("POST", "/queue/redrive", body={"topic": "emails"})

    # the dashboard's views, when this build has them
    for template in ("/cluster/overview", "/lock/table", "/queue/topics"):
        if template in doc["paths"]:
            c.check("GET", template)

    assert len(c.checked) >= 45
