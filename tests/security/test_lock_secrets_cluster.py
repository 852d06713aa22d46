"""Without tokens, a client id (public in /lock/status) is not enough to release a lock (finding 9)."""

from __future__ import annotations

import pytest

import rakit
from httpcall import call, get

pytestmark = pytest.mark.integration


def test_an_outsider_knowing_the_client_id_cannot_release_renew_or_take_over(cluster_factory):
    cluster = cluster_factory(3)
    leader = cluster.wait_for_leader(timeout=15)
    urls = [n.url for n in cluster.nodes.values()]
    with rakit.Client(urls, client_id="victim") as client:
        with client.lock("payroll", ttl=30, renew=False) as lease:
            status, seen = get(cluster.nodes[leader].url + "/lock/status/payroll")
            assert status == 200 and seen["holders"] == ["victim"]  # the id is public...
            for url in urls:  # ...but with it alone, through any node, nothing is done
                body = {"resource": "payroll", "client_id": "victim"}
                assert call("POST", url + "/lock/release", body)[1]["error"] == "not_holder"
                assert (
                    call("POST", url + "/lock/release", {**body, "fencing_token": lease.fencing_token})[1]["error"]
                    == "not_holder"
                )
                assert call("POST", url + "/lock/renew", body)[1]["error"] == "not_holder"
                status, taken = call("POST", url + "/lock/acquire", body)  # a re-acquire would renew it
                assert status == 409 and taken["error"] == "conflict", taken
                assert call("POST", url + "/lock/release", {**body, "secret": "x" * 24})[1]["error"] == "not_holder"
            assert get(urls[0] + "/lock/status/payroll")[1]["holders"] == ["victim"]
            lease.renew()  # the holder, with its secret, still can
        assert get(urls[0] + "/lock/status/payroll")[1]["holders"] == []  # released on leaving


@pytest.mark.quick
def test_a_curl_user_can_protect_a_hold_with_a_secret(cluster_factory):
    cluster = cluster_factory(1)
    url = cluster.nodes[cluster.wait_for_leader(timeout=15)].url
    secret = "my-own-secret-0123456789"
    body = {"resource": "r", "client_id": "c"}
    assert call("POST", url + "/lock/acquire", {**body, "secret": secret})[0] == 200
    assert call("POST", url + "/lock/release", body)[1]["error"] == "not_holder"
    assert call("POST", url + "/lock/release", {**body, "secret": secret}) == (200, {"released": True})
    status, refused = call("POST", url + "/lock/acquire", {**body, "secret": "short"})
    assert status == 422 and refused["field"] == "$.secret"
