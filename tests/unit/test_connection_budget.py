"""The connection budget's rules (rakit.node.connection_budget), one test per rule."""

from __future__ import annotations

import random

import pytest

from rakit.node.connection_budget import OPEN, SHED, TRIAL, ConnectionBudget, Limits, Ticket, client_key


def budget(total: int = 100, per_client: int = 20) -> ConnectionBudget:
    return ConnectionBudget(Limits.of(total, per_client))


def kinds(b: ConnectionBudget, *keys: str) -> list[str | None]:
    """Admit one connection per key; each one's kind (None: closed at once)."""
    return [None if (t := b.admit(key)) is None else t.kind for key in keys]


def kinds_at(b: ConnectionBudget, now: float, *keys: str) -> list[str | None]:
    return [None if (t := b.admit(key, now)) is None else t.kind for key in keys]


def ticket(b: ConnectionBudget, key: str) -> Ticket:
    t = b.admit(key)
    assert t is not None
    return t


def test_rule_1_clients_are_keyed_by_address_ipv6_by_its_64() -> None:
    assert client_key("10.0.0.7") == "10.0.0.7"
    assert client_key("2001:db8:1:2::7") == client_key("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::7") != client_key("2001:db8:1:2::7")
    assert client_key("fe80::1%eth0") == "fe80::/64"
    assert client_key("::ffff:192.0.2.9") == "192.0.2.9"  # a dual-stack listener's IPv4 client
    assert client_key(None) == client_key("") == ""
    b = budget(100, 2)
    assert kinds(b, *(client_key(h) for h in ("2001:db8::1", "2001:db8::2", "2001:db8::3"))) == [OPEN, OPEN, TRIAL]


def test_rule_2_the_general_pool_takes_each_client_up_to_its_cap() -> None:
    b = budget(100, 20)  # general pool: 90
    assert kinds(b, *["a"] * 21) == [OPEN] * 20 + [TRIAL]  # a over its cap
    assert kinds(b, "b") == [OPEN]  # another client is not
    for k in range(3):
        kinds(b, *[f"c{k}"] * 20)
    assert b.open == 81 and b.held("a") == (20, 1)
    assert kinds(b, *["d"] * 10).count(OPEN) == 9  # 90 open: the general pool is full


def test_rule_3_the_reserve_serves_only_reserved_requests_and_a_few_per_client() -> None:
    b = budget(100, 100)  # reserve 10, at most 1 per client
    assert kinds(b, *["flood"] * 92) == [OPEN] * 90 + [TRIAL, SHED]
    assert kinds(b, *(f"peer{k}" for k in range(10))) == [TRIAL] * 9 + [SHED]
    assert b.trial == 10 and b.in_use == 100
    one = budget(100, 1)
    open_one, on_trial = ticket(one, "a"), ticket(one, "a")
    assert (open_one.kind, on_trial.kind) == (OPEN, TRIAL)
    assert ConnectionBudget.serves(on_trial, reserved=True)
    assert not ConnectionBudget.serves(on_trial, reserved=False)
    assert ConnectionBudget.serves(open_one, reserved=False)
    # A full reserve: a newcomer takes the place of the oldest unproven trial connection past its grace.
    full = budget(20, 20)  # general 18, reserve 2, 1 per client
    kinds(full, *["flood"] * 18)
    peer, silent = full.admit("peer", now=0.0), full.admit("silent", now=0.1)
    assert peer is not None and silent is not None and full.trial == 2
    full.prove(peer)  # the peer's first request was a reserved one
    assert kinds_at(full, 0.3, "health") == [SHED]  # the silent one is still within its grace
    newcomer = full.admit("health", now=0.7)
    assert newcomer is not None and newcomer.kind == TRIAL
    assert full.take_evicted() == [silent] and silent.released and not peer.released
    assert full.take_evicted() == [] and full.trial == 2 and full.held("silent") == (0, 0)
    full.prove(newcomer)  # its /health came
    assert kinds_at(full, 9.0, "late") == [SHED] and full.take_evicted() == []  # proven ones are never evicted


def test_rule_4_over_every_cap_a_new_connection_is_shed_then_closed_at_once() -> None:
    b = budget(20, 20)  # general 18, reserve 2 (1 per client), at most 2 shed connections closing
    assert kinds(b, *["a"] * 19, "b") == [OPEN] * 18 + [TRIAL, TRIAL]
    shed = [ticket(b, "c"), ticket(b, "d")]
    assert [t.kind for t in shed] == [SHED, SHED] and b.shedding == 2
    assert kinds(b, "e") == [None]  # two are still closing: this one is closed without an answer
    b.release(shed[0])
    assert kinds(b, "e") == [SHED]
    assert b.in_use == 20 and b.open == 18  # what was admitted was never touched


def test_rule_5_every_ticket_is_released_once_and_the_table_empties() -> None:
    rng = random.Random(5)
    b = budget(50, 7)
    live: list[Ticket] = []
    for _ in range(5000):
        if live and rng.random() < 0.5:
            gone = live.pop(rng.randrange(len(live)))
            b.release(gone)
            b.release(gone)  # a second close path: nothing changes
        else:
            new = b.admit(f"c{rng.randrange(12)}")
            if new is not None:
                live.append(new)
        held = [t.kind for t in live]
        assert (b.open, b.trial, b.shedding) == (held.count(OPEN), held.count(TRIAL), held.count(SHED))
        assert b.open <= 45 and b.trial <= 5 and b.shedding <= 5
    for t in live:
        b.release(t)
    assert (b.open, b.trial, b.shedding, b.clients()) == (0, 0, 0, 0)


def test_rule_6_under_pressure_and_on_trial_the_timeouts_shorten() -> None:
    b = budget(100, 100)  # pressure over 75 in use
    held = [ticket(b, "a") for _ in range(75)]
    first = held[0]
    assert not b.pressed and b.onsets == 0
    assert (b.head_timeout(first, 10.0), b.idle_timeout(first, 30)) == (10.0, 30)
    held.append(ticket(b, "a"))
    assert b.pressed and b.onsets == 1
    assert (b.head_timeout(first, 10.0), b.idle_timeout(first, 30)) == (2.0, 1.0)
    assert b.head_timeout(first, 0.5) == 0.5  # never longer than the protocol's own
    b.release(held.pop())
    assert not b.pressed
    held.append(ticket(b, "a"))
    assert b.pressed and b.onsets == 2  # pressure began again
    calm = budget(100, 1)
    ticket(calm, "a")
    on_trial = ticket(calm, "a")
    assert on_trial.kind == TRIAL and not calm.pressed
    assert (calm.head_timeout(on_trial, 10.0), calm.idle_timeout(on_trial, 30)) == (2.0, 1.0)


def test_rule_7_the_limits_derive_from_the_two_caps() -> None:
    limits = Limits.of(2048, 256)
    assert (limits.reserve, limits.reserve_per_client, limits.max_shedding, limits.pressure_at) == (204, 25, 204, 1536)
    small = Limits.of(5, 5)
    assert (small.reserve, small.reserve_per_client, small.max_shedding) == (0, 1, 1)
    for total, per_client in ((0, 5), (5, 0), (-1, 1)):
        with pytest.raises(ValueError, match="positive"):
            Limits.of(total, per_client)
