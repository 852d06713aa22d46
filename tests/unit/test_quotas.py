"""Per-token rates (``rakit.security.ratelimit``), the tokens file's limits, and lock quotas (rule 16)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from rakit.config import ConfigError
from rakit.security.ratelimit import RateLimiter, retry_after_header
from rakit.security.tokens import load_tokens
from rakit.statemachines.locks import Acquire, CancelWait, Expire, LockTable, Refused, Release, Waiting

# -- rate limiter ------------------------------------------------------------------------------


def test_a_bucket_starts_full_refills_at_the_rate_and_a_refusal_costs_nothing() -> None:
    limiter = RateLimiter()
    assert [limiter.take("t", 2.0, 3.0, 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]  # the burst
    wait = limiter.take("t", 2.0, 3.0, 0.0)
    assert wait == pytest.approx(0.5)
    assert limiter.take("t", 2.0, 3.0, 0.0) == pytest.approx(0.5)  # refused again: the wait did not grow
    assert limiter.take("t", 2.0, 3.0, 0.5) == 0.0  # waited as told: served
    assert limiter.take("other", 2.0, 3.0, 0.5) == 0.0  # one bucket per token


def test_a_long_pause_refills_only_up_to_the_burst_and_a_clock_going_back_refills_nothing() -> None:
    limiter = RateLimiter()
    for _ in range(2):
        limiter.take("t", 1.0, 2.0, 0.0)
    assert [limiter.take("t", 1.0, 2.0, 1000.0) for _ in range(3)][:2] == [0.0, 0.0]
    assert limiter.take("t", 1.0, 2.0, 500.0) > 0


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    assert [retry_after_header(s) for s in (0.01, 1.0, 1.2)] == ["1", "1", "2"]


# -- the tokens file -----------------------------------------------------------------------------


def tokens(tmp_path: Path, **limits: object) -> Path:
    path = tmp_path / "tokens.json"
    entry = {"name": "svc", "token": "t" * 20, "grants": ["*"], **limits}
    path.write_text(json.dumps({"tokens": [entry]}))
    return path


def test_limits_are_read_with_a_default_burst_of_one_second(tmp_path: Path) -> None:
    (entry,) = load_tokens(tokens(tmp_path, rate=50, max_locks=10))
    assert (entry.identity.rate, entry.identity.burst, entry.identity.max_locks) == (50.0, 50.0, 10)
    (entry,) = load_tokens(tokens(tmp_path))
    assert (entry.identity.rate, entry.identity.max_locks) == (None, None)


@pytest.mark.parametrize(
    ("limits", "problem"),
    [
        ({"rate": 0}, "rate must be a number above 0"),
        ({"rate": True}, "rate must be a number"),
        ({"burst": 5}, "burst needs a rate"),
        ({"rate": 5, "burst": 0.5}, "burst must be at least 1"),
        ({"max_locks": 0}, "max_locks must be a whole number"),
        ({"max_locks": 2.5}, "max_locks must be a whole number"),
    ],
)
def test_bad_limits_are_one_line_errors(tmp_path: Path, limits: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_tokens(tokens(tmp_path, **limits))


# -- rule 16 -------------------------------------------------------------------------------------


def acquire(client: str, resource: str, *, owner: str = "A", wait: float = 0, quota: int | None = 2) -> Acquire:
    return Acquire(resource, client, "exclusive", 10, wait, owner=owner, max_locks=quota)


def test_an_owner_over_its_quota_is_refused_and_nothing_changes() -> None:
    table = LockTable()
    table.apply(1, acquire("c1", "r1"))
    table.apply(2, acquire("c2", "r2"))
    before = table.snapshot()
    refused = table.apply(3, acquire("c3", "r3"))
    assert isinstance(refused, Refused) and refused.code == "quota" and "max_locks" in refused.detail
    assert table.snapshot() == before
    assert table.apply(4, acquire("c1", "r1")).again  # its own hold again: not a new entry
    assert table.apply(5, acquire("b1", "r3", owner="B")).client_id == "b1"  # another owner's quota
    table.apply(6, Release("r1", "c1", owner="A"))
    assert table.apply(7, acquire("c3", "r3", wait=5)).__class__ is Waiting  # room again (it waits)


def test_the_counts_follow_every_way_a_hold_or_wait_ends_and_survive_a_restore() -> None:
    rng = random.Random(7)
    table, index = LockTable(), 0
    for _ in range(3000):
        index += 1
        client, resource = f"c{rng.randrange(6)}", f"r{rng.randrange(4)}"
        owner = rng.choice(["A", "B"])
        kind = rng.random()
        if kind < 0.5:
            table.apply(
                index,
                Acquire(resource, client, rng.choice(["exclusive", "shared"]), 10, rng.choice([0, 5]), owner=owner),
            )
        elif kind < 0.75:
            table.apply(index, Release(resource, client, owner=owner))
        elif kind < 0.9:
            table.apply(index, CancelWait(resource, client))
        else:
            holds = list(table.holds())
            if holds:
                r, c, _, lease = rng.choice(holds)
                table.apply(index, Expire(r, c, lease))
        view = table.table(100)
        for who in ("A", "B"):
            counted = sum(1 for r in view["resources"] for h in r["holders"] + r["waiters"] if h["owner"] == who)
            assert table.entries_of(who) == counted
    restored = LockTable()
    restored.restore(table.snapshot())
    assert [restored.entries_of(w) for w in "AB"] == [table.entries_of(w) for w in "AB"]
