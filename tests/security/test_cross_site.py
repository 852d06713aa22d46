"""Cross-site requests and DNS rebinding (security finding 8), on a real node process.

A page on another site can make a browser POST to ``127.0.0.1:8001`` with a
``text/plain`` body (no preflight), or reach it under its own host name after
rebinding DNS.  Neither may change anything; curl and other non-browser
clients (no ``Origin``) work as before.
"""

from __future__ import annotations

import pytest

from httpcall import call, get

pytestmark = pytest.mark.integration

LOCK = b'{"resource": "orders", "client_id": "victim"}'


def test_foreign_host_origin_and_content_type_are_refused(cluster_factory):
    cluster = cluster_factory(1)
    cluster.wait_for_leader(timeout=15)
    url = next(iter(cluster.nodes.values())).url
    own = url.removeprefix("http://")

    status, body = call(
        "POST", url + "/lock/acquire", raw=LOCK, headers={"Host": "evil.example:8001", "Content-Type": "text/plain"}
    )
    assert (status, body["error"]) == (421, "misdirected_request"), body
    status, body = call(
        "POST", url + "/lock/acquire", raw=LOCK, headers={"Origin": "http://evil.example", "Content-Type": "text/plain"}
    )
    assert (status, body["error"]) == (403, "forbidden"), body
    status, body = call(
        "POST",
        url + "/lock/acquire",
        raw=LOCK,
        headers={"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"},
    )
    assert status == 403, body
    status, body = call(
        "POST", url + "/lock/acquire", raw=LOCK, headers={"Origin": f"http://{own}", "Content-Type": "text/plain"}
    )
    assert (status, body["error"]) == (415, "unsupported_media_type"), body
    status, body = get(url + "/lock/status/orders")
    assert status == 200 and body["holders"] == [], body  # nothing was taken

    # The same origin with JSON (the dashboard), and curl-like clients without Origin, are served.
    status, body = call(
        "POST", url + "/lock/acquire", raw=LOCK, headers={"Origin": f"http://{own}", "Content-Type": "application/json"}
    )
    assert status == 200 and body["acquired"], body
    status, body = call(
        "POST", url + "/lock/release", raw=LOCK, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )  # curl -d
    assert status == 200, body
    status, body = get(url.replace("127.0.0.1", "localhost") + "/health")
    assert status == 200, body
