"""The cache's failure detector (``rakit.cache.rules.contact``): leases, lapses, fences, skips."""

from __future__ import annotations

import pytest

from rakit.cache.rules.contact import ContactTable

PEERS = ["a", "b", "c"]


def table(now: float = 0.0, peers: list[str] = PEERS, **kw: float) -> ContactTable:
    return ContactTable("a", peers, now, lease=1.0, drift=0.05, margin=0.05, fence=6.0, **kw)


def test_a_single_node_always_serves_and_needs_no_grants():
    t = ContactTable("a", ["a"], 0.0)
    assert t.check(0.0).serving and t.check(1e9).serving
    assert t.needed_grants == 1


def test_a_node_starts_not_serving_and_serves_with_a_majority_of_leases():
    t = table()
    assert not t.check(0.1).serving
    result = t.on_ack("b", sent_at=0.2, now=0.25)
    assert result.serving and not result.lapsed  # starting empty is not a lapse to report
    assert t.serving(1.19) and not t.serving(1.2)  # lease = sent_at + 1.0


def test_five_nodes_need_two_peer_leases():
    t = table(peers=["a", "b", "c", "d", "e"])
    assert not t.on_ack("b", 0.0, 0.01).serving
    assert t.on_ack("c", 0.5, 0.51).serving
    assert t.serving(0.99) and not t.serving(1.0)  # the 2nd-best lease (b's) ends at 1.0
    assert t.needed_grants == 3


def test_a_lapse_is_reported_once_even_when_a_renewal_arrives_first():
    t = table()
    t.on_ack("b", 0.0, 0.01)
    # Paused from 0.5 to 5.0: the first event after is an ack to an old message.
    result = t.on_ack("c", sent_at=4.9, now=5.0)
    assert result.lapsed and result.serving
    assert not t.check(5.1).lapsed


def test_a_lapse_found_by_check_then_serving_again_after_an_ack():
    t = table()
    t.on_ack("b", 0.0, 0.01)
    first = t.check(2.0)
    assert first.lapsed and not first.serving
    assert not t.check(2.5).lapsed  # reported once
    assert t.on_ack("b", 2.6, 2.7).serving
    assert not t.check(2.8).lapsed


def test_acks_are_refused_while_fenced_and_fences_need_an_expired_lease():
    t = table(now=0.0)
    assert t.accept("b", 0.5)
    assert not t.grant_fence("b", 1.0)  # acked 0.5 s ago: its lease on us may still run
    assert not t.lease_expired("b", 1.59)
    assert t.lease_expired("b", 1.61)  # 1.0 * 1.05 + 0.05 after the ack
    assert t.grant_fence("b", 1.61)
    assert t.fenced("b", 7.60) and not t.fenced("b", 7.62)
    assert not t.accept("b", 3.0)  # fenced: no ack, so no lease for b
    assert t.accept("b", 7.8)
    assert not t.grant_fence("nobody", 100.0)


def test_a_restarted_node_counts_its_start_as_its_last_ack():
    t = table(now=10.0)
    assert not t.grant_fence("b", 10.5)
    assert t.grant_fence("b", 11.11)


def test_skip_needs_enough_grants_and_lasts_less_than_the_fences():
    t = table()
    assert not t.record_grants("c", asked_at=1.0, granted=1, now=1.1)  # 3 nodes: need 2
    assert not t.skippable("c", 1.2)
    assert t.record_grants("c", asked_at=1.0, granted=2, now=1.1)
    # fences last 6 s from receipt (after 1.0); counted with 5% drift: 1.0 + 5.7
    assert t.skippable("c", 6.69) and not t.skippable("c", 6.7)
    assert t.skip_remaining("c", 2.0) == pytest.approx(4.7)


def test_describe_reports_every_peer():
    t = table()
    t.on_ack("b", 0.0, 0.01)
    d = t.describe(0.5)
    assert set(d) == {"b", "c"}
    assert d["b"]["in_contact"] and not d["c"]["in_contact"]


# -- rule 7: generations ---------------------------------------------------


def test_reconfigure_voids_leases_and_mutes_acks_and_serving():
    t = table()
    t.on_ack("b", 0.0, 0.01)
    assert t.serving(0.5) and t.accept("b", 0.5)
    t.reconfigure(["a", "b", "c", "d"], now=0.6)
    assert t.needed_leases == 2 and t.needed_grants == 2
    assert not t.serving(0.6) and not t.check(0.6).serving  # the old lease no longer counts
    assert not t.accept("b", 0.7) and not t.accept("d", 0.7)  # muted: lends nothing
    t.on_ack("b", 0.8, 0.81)
    t.on_ack("d", 0.8, 0.81)
    assert not t.check(0.9).serving  # leases of the new generation, but still muted
    mute_end = 0.6 + t.skip_age
    assert t.check(mute_end + 0.01).serving and t.accept("c", mute_end + 0.01)


def test_reconfigure_mutes_for_longer_when_asked_and_a_lone_member_waits_too():
    t = table()
    t.reconfigure(["a"], now=1.0, mute=3.0)
    assert t.needed_leases == 0
    assert not t.check(3.9).serving and t.check(4.0).serving


def test_reconfigure_keeps_fences_on_peers_that_stay_and_drops_skips():
    t = table(now=0.0)
    assert t.grant_fence("b", 2.0)  # b's lease here expired: fenced until 8.0
    assert t.record_grants("b", asked_at=2.0, granted=2, now=2.1)
    assert t.skippable("b", 3.0)
    t.reconfigure(["a", "b", "c", "d"], now=3.0)
    assert t.fenced("b", 7.9) and not t.skippable("b", 3.1)
    assert not t.accept("b", 6.0)  # fenced (and the mute has ended)


def test_acks_from_a_removed_peer_are_ignored_and_unknown_peers_are_not_acked():
    t = table()
    t.reconfigure(["a", "c"], now=0.0)
    result = t.on_ack("b", 0.0, 0.01)  # a reply to a frame sent before b was removed
    assert not result.serving and "b" not in t.peers
    assert not t.accept("b", 5.0) and not t.grant_fence("b", 5.0)
    assert not t.skippable("b", 5.0) and not t.in_contact("b", 5.0)


def test_a_muted_start_lends_nothing_until_old_leases_ran_out():
    t = ContactTable("a", PEERS, 0.0, lease=1.0, drift=0.05, margin=0.05, muted=True)
    assert not t.accept("b", 1.0)
    assert t.accept("b", t.skip_age + 0.01)
