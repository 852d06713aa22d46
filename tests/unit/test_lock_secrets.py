"""The lock table's holder secrets (rule 15) and owners in the wait-for graph (rule 8 with rule 13)."""

from __future__ import annotations

from typing import Any

from rakit.statemachines.locks import (
    Acquire,
    Granted,
    LockTable,
    NotHolder,
    Refused,
    Release,
    Released,
    Renew,
    Renewed,
    Waiting,
)

X, S = "exclusive", "shared"
SECRET, OTHER = "s" * 24, "o" * 24


class Log:
    def __init__(self) -> None:
        self.table = LockTable()
        self.index = 0

    def __call__(self, command: Any) -> Any:
        self.index += 1
        return self.table.apply(self.index, command)

    def acquire(
        self,
        client: str,
        *,
        r: str = "r",
        mode: str = X,
        wait: float = 0,
        owner: str | None = None,
        secret: str | None = None,
    ) -> Any:
        return self(Acquire(r, client, mode, 10, wait, owner=owner, secret=secret))


def test_a_hold_with_a_secret_is_released_and_renewed_only_with_it() -> None:
    log = Log()
    assert isinstance(log.acquire("c", secret=SECRET), Granted)
    before = log.table.snapshot()
    assert log(Release("r", "c")) == NotHolder("r", "c")  # the public client id alone
    assert log(Release("r", "c", secret=OTHER)) == NotHolder("r", "c")
    assert log(Renew("r", "c", 30)) == NotHolder("r", "c")
    assert log(Renew("r", "c", 30, secret=OTHER)) == NotHolder("r", "c")
    assert log.table.snapshot() == before  # nothing changed
    assert isinstance(log(Renew("r", "c", 30, secret=SECRET)), Renewed)
    assert isinstance(log(Release("r", "c", secret=SECRET)), Released)


def test_a_reacquire_with_another_secret_is_a_conflict_and_changes_nothing() -> None:
    log = Log()
    log.acquire("c", secret=SECRET)
    before = log.table.snapshot()
    for secret in (None, OTHER):
        refused = log.acquire("c", secret=secret)
        assert isinstance(refused, Refused) and refused.code == "conflict" and "secret" in refused.detail
    assert log.table.snapshot() == before
    assert log.acquire("c", secret=SECRET).again  # rule 4 with the right secret


def test_a_waiter_keeps_its_secret_into_its_grant_and_cannot_be_asked_again_without_it() -> None:
    log = Log()
    log.acquire("h")
    assert isinstance(log.acquire("w", wait=30, secret=SECRET), Waiting)
    assert log.acquire("w", wait=30, secret=OTHER).code == "conflict"
    released = log(Release("r", "h"))
    assert [g.client_id for g in released.grants] == ["w"]
    assert log(Release("r", "w")) == NotHolder("r", "w")
    assert isinstance(log(Release("r", "w", secret=SECRET)), Released)


def test_an_upgrade_keeps_the_secret() -> None:
    log = Log()
    log.acquire("a", mode=S, secret=SECRET)
    log.acquire("b", mode=S)
    assert isinstance(log.acquire("a", mode=X, wait=30, secret=SECRET), Waiting)
    log(Release("r", "b"))
    assert log.table.status("r")["mode"] == X
    assert log(Release("r", "a")) == NotHolder("r", "a")
    assert isinstance(log(Release("r", "a", secret=SECRET)), Released)


def test_a_hold_without_a_secret_works_as_before() -> None:
    log = Log()
    log.acquire("c")
    assert isinstance(log(Renew("r", "c", 30, secret=OTHER)), Renewed)
    assert isinstance(log(Release("r", "c")), Released)


def test_no_read_shows_a_secret() -> None:
    log = Log()
    log.acquire("c", secret=SECRET)
    log.acquire("w", wait=30, secret=OTHER)
    assert SECRET not in repr(log.table.status("r")) and OTHER not in repr(log.table.status("r"))
    assert SECRET not in repr(log.table.table(10)) and OTHER not in repr(log.table.table(10))


# -- rule 8 with rule 13: a client is (owner, client id) -------------------------------------------


def test_two_owners_clients_of_one_name_are_no_deadlock() -> None:
    log = Log()
    log.acquire("worker-1", r="r1", owner="A")
    log.acquire("worker-1", r="r2", owner="B")
    log.acquire("z", r="r3", owner="B")
    assert isinstance(log.acquire("worker-1", r="r3", wait=30, owner="A"), Waiting)  # A's worker-1 -> B's z
    # B's z waits for B's worker-1, who waits for nothing: keyed by client id alone, the two
    # worker-1s were one client and this was a false deadlock (z -> worker-1 -> z).
    assert isinstance(log.acquire("z", r="r2", wait=30, owner="B"), Waiting)


def test_a_real_cycle_across_owners_hides_the_other_owners_ids() -> None:
    log = Log()
    log.acquire("a", r="r1", owner="A")
    log.acquire("b", r="r2", owner="B")
    assert isinstance(log.acquire("a", r="r2", wait=30, owner="A"), Waiting)
    refused = log.acquire("b", r="r1", wait=30, owner="B")
    assert isinstance(refused, Refused) and refused.code == "deadlock"
    assert refused.cycle == ["b", "(another owner's client)"]


def test_without_owners_a_cycle_names_every_client() -> None:
    log = Log()
    log.acquire("a", r="r1")
    log.acquire("b", r="r2")
    log.acquire("a", r="r2", wait=30)
    refused = log.acquire("b", r="r1", wait=30)
    assert refused.code == "deadlock" and refused.cycle == ["b", "a"]
