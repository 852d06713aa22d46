"""When a node's cache may serve after it starts.

The start mute (contact rule 7) guards a run that may follow one under an
older membership generation; the start quarantine guards write rounds that
counted an ack from an earlier run of this node.  A node of a cluster that
just started from ``--peers`` (generation 0) and whose data dir is new has
neither before it, so it serves as soon as it holds leases on a majority.
"""

from __future__ import annotations

import time

import pytest

from rakit.cache.service import CacheService

PEERS = {"n1": "http://127.0.0.1:1", "n2": "http://127.0.0.1:2", "n3": "http://127.0.0.1:3"}


def service(**kwargs: object) -> CacheService:
    return CacheService("n1", PEERS, session=None, **kwargs)  # type: ignore[arg-type]


def test_a_first_run_at_generation_0_is_neither_muted_nor_quarantined() -> None:
    s = service(generation=0, first_run=True)
    now = time.monotonic()
    assert not s.contact.muted(now) and s.quarantine_until <= now


def test_a_restart_at_generation_0_keeps_the_quarantine_but_not_the_mute() -> None:
    # Within one generation a restart is safe without the mute (acks count from the start: rule 1),
    # but rounds from before the restart may have counted the earlier run's acks.
    s = service(generation=0, first_run=False)
    now = time.monotonic()
    assert not s.contact.muted(now) and s.quarantine_until > now


@pytest.mark.parametrize("first_run", [True, False])
def test_a_start_after_a_membership_change_is_muted(first_run: bool) -> None:
    s = service(generation=7, first_run=first_run)
    assert s.contact.muted(time.monotonic())


def test_a_single_node_serves_at_once() -> None:
    s = CacheService("n1", {"n1": PEERS["n1"]}, session=None)  # type: ignore[arg-type]
    now = time.monotonic()
    assert not s.contact.muted(now) and s.quarantine_until <= now
