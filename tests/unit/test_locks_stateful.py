"""The lock table against a deliberately simple reference model (Hypothesis, stateful).

Random acquire/release/renew/expire/cancel-wait/delay-end/set-options commands
are applied at increasing indexes to a ``LockTable`` and to ``Model`` below,
written for obviousness rather than speed: plain dicts, the wait-for graph
rebuilt from scratch, deadlock by plain reachability, and granting phrased
differently ("walk the queue, grant each waiter compatible with the holders
so far, stop at the first that is not").  After every step the invariants of
the lock service are checked.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from rakit.statemachines.locks import (
    Acquire,
    Cancelled,
    CancelWait,
    DelayEnd,
    DelayEnded,
    EndedHold,
    Expire,
    Expired,
    Grant,
    Granted,
    LockTable,
    NotHolder,
    OptionsSet,
    Refused,
    Release,
    Released,
    Renew,
    Renewed,
    SetOptions,
    Stale,
    TokenMismatch,
    Waiting,
)

X, S = "exclusive", "shared"
RESOURCES = ["r1", "r2"]
CLIENTS = ["a", "b", "c", "d"]


def reaches(graph: dict[str, set[str]], src: str, dst: str) -> bool:
    seen: set[str] = set()
    todo = list(graph.get(src, ()))
    while todo:
        node = todo.pop()
        if node == dst:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return False


class Model:
    """Per resource: holders and queue as lists of dicts, max token, lock_delay, delay stamp."""

    def __init__(self) -> None:
        self.res: dict[str, dict[str, Any]] = {}

    def r(self, name: str) -> dict[str, Any]:
        return self.res.setdefault(name, {"holders": [], "queue": [], "max": None, "delay": 0.0, "since": None})

    def hold(self, name: str, client: str) -> dict[str, Any] | None:
        return next((h for h in self.r(name)["holders"] if h["c"] == client), None)

    def waiter(self, name: str, client: str) -> dict[str, Any] | None:
        return next((w for w in self.r(name)["queue"] if w["c"] == client), None)

    def graph(self) -> dict[str, set[str]]:
        g: dict[str, set[str]] = {}
        for r in self.res.values():
            for pos, w in enumerate(r["queue"]):
                edges = g.setdefault(w["c"], set())
                edges |= {h["c"] for h in r["holders"] if h["c"] != w["c"]}
                edges |= {v["c"] for v in r["queue"][:pos] if not (v["mode"] == S and w["mode"] == S)}
        return g

    def settle(self, i: int, name: str) -> list[Grant]:
        r = self.r(name)
        grants = []
        while r["since"] is None and r["queue"]:
            w = r["queue"][0]
            others = [h for h in r["holders"] if h["c"] != w["c"]]
            if w["up"]:
                ok = not others
            elif w["mode"] == X:
                ok = not r["holders"]
            else:
                ok = all(h["mode"] == S for h in r["holders"])
            if not ok:
                break
            r["queue"].pop(0)
            r["holders"] = others + [{"c": w["c"], "mode": w["mode"], "token": i, "ttl": w["ttl"], "lease": i}]
            r["max"] = i
            grants.append(Grant(name, w["c"], w["mode"], i, w["ttl"], i))
            if w["mode"] == X:
                break
        return grants

    def acquire(self, i: int, cmd: Acquire) -> Any:
        if cmd.mode not in (X, S) or cmd.ttl <= 0 or cmd.wait < 0:
            return Refused("invalid")
        r = self.r(cmd.resource)
        if cmd.lock_delay is not None:
            r["delay"] = cmd.lock_delay
        h, w = self.hold(cmd.resource, cmd.client_id), self.waiter(cmd.resource, cmd.client_id)
        if h and (h["mode"] == X or cmd.mode == S):
            h["ttl"], h["lease"] = cmd.ttl, i
            return Granted(cmd.resource, h["c"], h["mode"], h["token"], cmd.ttl, i, again=True)
        if w:
            w["wait"], w["ttl"] = cmd.wait, cmd.ttl
            return Waiting(cmd.resource, w["c"], w["mode"], r["queue"].index(w))
        free = r["since"] is None and not r["queue"]
        if h and r["since"] is None and len(r["holders"]) == 1:  # ordinary waiters do not block an upgrade
            h.update(mode=X, token=i, ttl=cmd.ttl, lease=i)
            r["max"] = i
            return Granted(cmd.resource, h["c"], X, i, cmd.ttl, i, upgraded=True)
        if not h and free and all(cmd.mode == S and o["mode"] == S for o in r["holders"]):
            r["holders"].append({"c": cmd.client_id, "mode": cmd.mode, "token": i, "ttl": cmd.ttl, "lease": i})
            r["max"] = i
            return Granted(cmd.resource, cmd.client_id, cmd.mode, i, cmd.ttl, i)
        if cmd.wait == 0:
            return Refused("conflict")
        new = {"c": cmd.client_id, "mode": X if h else cmd.mode, "ttl": cmd.ttl, "wait": cmd.wait, "up": bool(h)}
        pos = sum(1 for v in r["queue"] if v["up"]) if h else len(r["queue"])
        r["queue"].insert(pos, new)
        graph = self.graph()
        r["queue"].remove(new)
        if reaches(graph, cmd.client_id, cmd.client_id):
            return Refused("deadlock", cycle=["?"]), graph
        r["queue"].insert(pos, new)
        return Waiting(cmd.resource, cmd.client_id, new["mode"], pos)

    def end(self, i: int, name: str, h: dict[str, Any], reason: str) -> tuple[list[Grant], list[EndedHold]]:
        r = self.r(name)
        r["holders"].remove(h)
        w = self.waiter(name, h["c"])
        if w and w["up"]:
            r["queue"].remove(w)
            w["up"] = False
            r["queue"].insert(sum(1 for v in r["queue"] if v["up"]), w)
        return self.settle(i, name), [EndedHold(name, h["c"], h["mode"], h["token"], h["lease"], reason)]

    def release(self, i: int, cmd: Release) -> Any:
        h = self.hold(cmd.resource, cmd.client_id)
        if not h:
            return NotHolder(cmd.resource, cmd.client_id)
        if cmd.fencing_token is not None and cmd.fencing_token != h["token"]:
            return TokenMismatch(cmd.resource, cmd.client_id, cmd.fencing_token, h["token"])
        return Released(cmd.resource, cmd.client_id, h["token"], *self.end(i, cmd.resource, h, "released"))

    def renew(self, i: int, cmd: Renew) -> Any:
        h = self.hold(cmd.resource, cmd.client_id)
        if not h:
            return NotHolder(cmd.resource, cmd.client_id)
        h["ttl"], h["lease"] = cmd.ttl, i
        return Renewed(cmd.resource, cmd.client_id, h["token"], cmd.ttl, i)

    def expire(self, i: int, cmd: Expire) -> Any:
        h = self.hold(cmd.resource, cmd.client_id)
        if not h or h["lease"] != cmd.lease:
            return Stale(cmd.resource, cmd.client_id)
        r = self.r(cmd.resource)
        if r["delay"] > 0:
            r["since"] = i
        grants, ended = self.end(i, cmd.resource, h, "expired")
        return Expired(cmd.resource, cmd.client_id, h["token"], r["since"], grants, ended)

    def cancel_wait(self, i: int, cmd: CancelWait) -> Any:
        r, w = self.r(cmd.resource), self.waiter(cmd.resource, cmd.client_id)
        grants = []
        if w:
            r["queue"].remove(w)
            grants = self.settle(i, cmd.resource)
        h = self.hold(cmd.resource, cmd.client_id)
        if h:
            return Cancelled(cmd.resource, cmd.client_id, bool(w), True, h["token"], h["mode"], grants)
        return Cancelled(cmd.resource, cmd.client_id, bool(w), grants=grants)

    def delay_end(self, i: int, cmd: DelayEnd) -> Any:
        r = self.r(cmd.resource)
        if r["since"] is None or (cmd.since is not None and cmd.since != r["since"]):
            return Stale(cmd.resource)
        r["since"] = None
        return DelayEnded(cmd.resource, self.settle(i, cmd.resource))

    def set_options(self, cmd: SetOptions) -> Any:
        self.r(cmd.resource)["delay"] = cmd.lock_delay
        return OptionsSet(cmd.resource, cmd.lock_delay)

    def status(self, name: str) -> dict[str, Any]:
        r = self.r(name)
        return {
            "resource": name,
            "mode": r["holders"][0]["mode"] if r["holders"] else None,
            "holders": [h["c"] for h in r["holders"]],
            "waiters": [{"client_id": w["c"], "mode": w["mode"]} for w in r["queue"]],
            "fencing_token": r["max"],
        }


def new_grants(result: Any) -> list[tuple[str, int]]:
    """(resource, token) of every grant a result reports."""
    out = [(g.resource, g.token) for g in getattr(result, "grants", [])]
    if isinstance(result, Granted) and not result.again:
        out.append((result.resource, result.token))
    return out


def restored(table: LockTable) -> LockTable:
    copy = LockTable()
    copy.restore(table.snapshot())
    return copy


resources = st.sampled_from(RESOURCES)
clients = st.sampled_from(CLIENTS)
ttls = st.sampled_from([1.0, 2.5, 10.0])


class LockTableMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.table = LockTable()
        self.twin: LockTable | None = None  # restored from a snapshot at some step, then fed alike
        self.model = Model()
        self.index = 0
        self.last_token: dict[str, int] = {}

    def step(self, gap: int, command: Any, expected: Any) -> None:
        self.index += gap
        result = self.table.apply(self.index, command)
        if self.twin is not None:
            assert self.twin.apply(self.index, command) == result
            assert self.twin.snapshot() == self.table.snapshot()
        graph = None
        if isinstance(expected, tuple):
            expected, graph = expected
        if isinstance(expected, Refused):
            assert isinstance(result, Refused) and result.code == expected.code, (command, result, expected)
            if graph is not None:  # a real cycle through the requester, each client once
                cycle = result.cycle
                assert cycle[0] == command.client_id and len(set(cycle)) == len(cycle), cycle
                graph.setdefault(cycle[-1], set())
                assert all(b in graph[a] for a, b in zip(cycle, cycle[1:] + cycle[:1])), (cycle, graph)
        else:
            assert result == expected, (command, result, expected)
        for resource, token in sorted(set(new_grants(result))):  # one token per command and resource
            assert token == self.index and token > self.last_token.get(resource, 0), (resource, token)
            self.last_token[resource] = token

    def pick(self, which: str, n: int, r: str, c: str) -> tuple[str, str]:
        """Mostly an existing holder (which="holders") or waiter ("queue"); anyone when n == 0."""
        pool = [(name, e["c"]) for name, v in sorted(self.model.res.items()) for e in v[which]]
        return pool[n % len(pool)] if pool and n else (r, c)

    @rule(
        gap=st.integers(1, 3),
        r=resources,
        c=clients,
        mode=st.sampled_from([X, S]),
        ttl=ttls,
        wait=st.sampled_from([0.0, 0.0, 1.0, 5.0]),
        lock_delay=st.sampled_from([None, None, None, 0.0, 2.0]),
        bad=st.integers(0, 19),
    )
    def acquire(
        self, gap: int, r: str, c: str, mode: str, ttl: float, wait: float, lock_delay: float | None, bad: int
    ) -> None:
        """Any acquire; now and then a malformed one (rule 12)."""
        mode, ttl, wait = (
            [("bogus", ttl, wait), (mode, 0.0, wait), (mode, ttl, -1.0)][bad] if bad < 3 else (mode, ttl, wait)
        )
        cmd = Acquire(r, c, mode, ttl, wait, lock_delay)
        self.step(gap, cmd, self.model.acquire(self.index + gap, cmd))

    @rule(
        gap=st.integers(1, 3),
        n=st.integers(0, 7),
        r=resources,
        c=clients,
        mode=st.sampled_from([X, S]),
        wait=st.sampled_from([1.0, 5.0]),
    )
    def acquire_and_wait(self, gap: int, n: int, r: str, c: str, mode: str, wait: float) -> None:
        """An acquire that may wait; half the time by a current holder (re-acquire, upgrade)."""
        cmd = Acquire(*self.pick("holders", max(n - 3, 0), r, c), mode, 10.0, wait)
        self.step(gap, cmd, self.model.acquire(self.index + gap, cmd))

    @rule(
        gap=st.integers(1, 3),
        n=st.integers(0, 7),
        r=resources,
        c=clients,
        token=st.sampled_from(["none", "right", "wrong"]),
    )
    def release(self, gap: int, n: int, r: str, c: str, token: str) -> None:
        r, c = self.pick("holders", n, r, c)
        h = self.model.hold(r, c)
        fencing = None if token == "none" or not h else h["token"] + (token == "wrong")
        cmd = Release(r, c, fencing)
        self.step(gap, cmd, self.model.release(self.index + gap, cmd))

    @rule(gap=st.integers(1, 3), n=st.integers(0, 7), r=resources, c=clients, ttl=ttls)
    def renew(self, gap: int, n: int, r: str, c: str, ttl: float) -> None:
        cmd = Renew(*self.pick("holders", n, r, c), ttl)
        self.step(gap, cmd, self.model.renew(self.index + gap, cmd))

    @rule(gap=st.integers(1, 3), n=st.integers(0, 7), r=resources, c=clients, stale=st.booleans())
    def expire(self, gap: int, n: int, r: str, c: str, stale: bool) -> None:
        r, c = self.pick("holders", n, r, c)
        h = self.model.hold(r, c)
        lease = h["lease"] if h else self.index
        cmd = Expire(r, c, lease - 1 if stale else lease)
        self.step(gap, cmd, self.model.expire(self.index + gap, cmd))

    @rule(gap=st.integers(1, 3), n=st.integers(0, 7), r=resources, c=clients)
    def cancel_wait(self, gap: int, n: int, r: str, c: str) -> None:
        cmd = CancelWait(*self.pick("queue", max(n - 5, 0), r, c))  # waiters should mostly be granted
        self.step(gap, cmd, self.model.cancel_wait(self.index + gap, cmd))

    @rule(gap=st.integers(1, 3), n=st.integers(0, 7), r=resources, since=st.sampled_from(["none", "right", "wrong"]))
    def delay_end(self, gap: int, n: int, r: str, since: str) -> None:
        delayed = [name for name, v in sorted(self.model.res.items()) if v["since"] is not None]
        r = delayed[n % len(delayed)] if delayed and n else r
        current = self.model.r(r)["since"]
        stamp = None if since == "none" else (current or 0) + (since == "wrong")
        cmd = DelayEnd(r, stamp)
        self.step(gap, cmd, self.model.delay_end(self.index + gap, cmd))

    @rule(r=resources, lock_delay=st.sampled_from([0.0, 2.0]))
    def set_options(self, r: str, lock_delay: float) -> None:
        cmd = SetOptions(r, lock_delay)
        self.step(1, cmd, self.model.set_options(cmd))

    @rule(fork=st.booleans())
    def restart_from_snapshot(self, fork: bool) -> None:
        """Either the table restarts from its snapshot, or a twin does and is fed alike from now on."""
        if fork and self.twin is None:
            self.twin = restored(self.table)
        else:
            self.table = restored(self.table)

    # --- invariants ---

    @invariant()
    def agrees_with_model(self) -> None:
        for r in RESOURCES:
            assert self.table.status(r) == self.model.status(r)
        assert sorted(self.table.holds()) == sorted(
            (r, h["c"], h["ttl"], h["lease"]) for r, v in self.model.res.items() for h in v["holders"]
        )
        assert sorted(self.table.waiters()) == sorted(
            (r, w["c"], w["wait"]) for r, v in self.model.res.items() for w in v["queue"]
        )

    @invariant()
    def never_exclusive_beside_another(self) -> None:
        for r in RESOURCES:
            holders = self.table.status(r)["holders"]
            modes = [self.table.holding(r, c).mode for c in holders]  # type: ignore[union-attr]
            assert len(set(holders)) == len(holders)
            assert X not in modes or len(modes) == 1, (r, holders, modes)

    @invariant()
    def fencing_token_is_the_highest_granted(self) -> None:
        for r in RESOURCES:
            assert self.table.status(r)["fencing_token"] == self.last_token.get(r)

    @invariant()
    def no_cycle_in_wait_for_graph(self) -> None:
        graph: dict[str, set[str]] = {}
        for r in RESOURCES:
            status = self.table.status(r)
            for pos, w in enumerate(status["waiters"]):
                edges = graph.setdefault(w["client_id"], set())
                edges |= set(status["holders"]) - {w["client_id"]}
                ahead = status["waiters"][:pos]
                edges |= {v["client_id"] for v in ahead if not (v["mode"] == S and w["mode"] == S)}
        for client in graph:
            assert not reaches(graph, client, client), graph

    @invariant()
    def no_waiter_left_on_a_grantable_head(self) -> None:
        delayed = {r for r, _ in self.table.delayed()}
        for r in RESOURCES:
            status = self.table.status(r)
            if r in delayed or not status["waiters"]:
                continue
            head, holders = status["waiters"][0], status["holders"]
            if head["client_id"] in holders:  # upgrade waiter
                assert holders != [head["client_id"]], status
            elif head["mode"] == X:
                assert holders, status
            else:
                assert status["mode"] == X, status

    @invariant()
    def snapshot_round_trips(self) -> None:
        data = self.table.snapshot()
        copy = restored(self.table)
        assert copy.snapshot() == data
        assert list(copy.holds()) == list(self.table.holds())
        assert list(copy.waiters()) == list(self.table.waiters())
        assert list(copy.delayed()) == list(self.table.delayed())


# Same examples every run (as tests/sim does); RAKIT_STATEFUL_RANDOM=1 explores afresh.
LockTableMachine.TestCase.settings = settings(
    max_examples=400,
    stateful_step_count=50,
    deadline=None,
    derandomize=os.environ.get("RAKIT_STATEFUL_RANDOM") is None,
)
TestLockTable = LockTableMachine.TestCase
