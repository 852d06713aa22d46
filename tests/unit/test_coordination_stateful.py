"""The coordination machine against a deliberately simple reference model (Hypothesis, stateful).

Random session, semaphore and election commands (session-attached or not,
expiries alone or batched) are applied at increasing indexes to a
``CoordinationMachine`` and to ``Model`` below: plain dicts, granting phrased
as "the longest prefix of the queue whose permits fit".  After every step
the machine's reads must equal the model's, and the service's guarantees
hold: never more than ``limit`` permits held, tokens strictly increasing per
name, never two leaders of one election, terms strictly increasing.  A twin
restored from a snapshot mid-run must behave identically from then on.
Locks (plain or attached to a session through the lock table's hook) are not
modelled; they are checked to end with their session, and in the twin.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from rakit.statemachines.coordination import CoordinationMachine, ExpireBatch, SessionLockAcquire
from rakit.statemachines.elections import Campaign, ElectionExpire, ElectionRenew, Proclaim, Resign, Withdraw
from rakit.statemachines.locks import Acquire, LockTable, Release
from rakit.statemachines.semaphores import SemAcquire, SemCancelWait, SemExpire, SemRelease, SemRenew
from rakit.statemachines.sessions import SessionExpire, SessionGrant, SessionKeepalive, SessionRevoke

NAMES = ["n1", "n2"]
LIMITS = {"n1": 3, "n2": 2}  # each name keeps one limit but for the odd limit_mismatch
CLIENTS = ["a", "b", "c"]
SESSIONS = ["s1", "s2"]
RESOURCES = ["r1", "r2"]

Rec = dict[str, Any]


class Model:
    def __init__(self) -> None:
        self.sessions: dict[str, Rec] = {}
        self.sems: dict[str, Rec] = {}
        self.elections: dict[str, Rec] = {}

    @staticmethod
    def _grant(i: int, rec: Rec) -> None:
        queue = rec["waiters"]
        free = rec["limit"] - sum(h["n"] for h in rec["holders"])
        fits, total = 0, 0
        while fits < len(queue) and total + queue[fits]["n"] <= free:
            total += queue[fits]["n"]
            fits += 1
        for w in queue[:fits]:
            rec["holders"].append({**w, "token": i, "lease": i})
            rec["changed"] = i
        del queue[:fits]

    def _acquire(
        self,
        i: int,
        book: dict[str, Rec],
        name: str,
        c: str,
        limit: int,
        n: int,
        wait: float,
        sid: Any,
        value: Any = None,
    ) -> None:
        ttl = 10.0
        if sid is not None:
            s = self.sessions.get(sid)
            if s is None or s["client"] != c:
                return
            ttl = s["ttl"]
        if not 1 <= n <= limit:
            return
        rec = book.get(name)
        if rec is not None and rec["limit"] != limit:
            if rec["holders"] or rec["waiters"]:
                return
            rec["limit"] = limit
        rec = book.setdefault(name, {"limit": limit, "holders": [], "waiters": [], "changed": None})
        mine = [e for e in rec["holders"] + rec["waiters"] if e["c"] == c]
        if mine:
            e = mine[0]
            if e["n"] == n and e["sid"] == sid:
                if "token" in e:
                    e["lease"], e["ttl"] = i, ttl
                else:
                    e["wait"], e["ttl"], e["value"] = wait, ttl, value
            return
        if not rec["waiters"] and sum(h["n"] for h in rec["holders"]) + n <= rec["limit"]:
            rec["holders"].append({"c": c, "n": n, "ttl": ttl, "sid": sid, "value": value, "token": i, "lease": i})
            rec["changed"] = i
        elif wait > 0:
            rec["waiters"].append({"c": c, "n": n, "ttl": ttl, "wait": wait, "sid": sid, "value": value})

    def sem_acquire(self, i: int, cmd: SemAcquire) -> None:
        self._acquire(i, self.sems, cmd.name, cmd.client_id, cmd.limit, cmd.permits, cmd.wait, cmd.session_id)

    def campaign(self, i: int, cmd: Campaign) -> None:
        self._acquire(i, self.elections, cmd.name, cmd.candidate_id, 1, 1, cmd.wait, cmd.session_id, cmd.value)

    def hold(self, book: dict[str, Rec], name: str, c: str) -> Rec | None:
        return next((h for h in book.get(name, {"holders": []})["holders"] if h["c"] == c), None)

    def end(self, i: int, book: dict[str, Rec], name: str, c: str) -> None:
        rec = book[name]
        rec["holders"] = [h for h in rec["holders"] if h["c"] != c]
        rec["changed"] = i
        self._grant(i, rec)

    def leave(self, i: int, book: dict[str, Rec], name: str, c: str) -> None:
        rec = book.get(name)
        if rec is not None and any(w["c"] == c for w in rec["waiters"]):
            rec["waiters"] = [w for w in rec["waiters"] if w["c"] != c]
            self._grant(i, rec)

    def renew(self, i: int, book: dict[str, Rec], name: str, c: str) -> None:
        h = self.hold(book, name, c)
        if h is not None:
            h["lease"], h["ttl"] = i, 5.0

    def expire(self, i: int, book: dict[str, Rec], name: str, c: str, lease: int) -> None:
        h = self.hold(book, name, c)
        if h is not None and h["lease"] == lease and h["sid"] is None:
            self.end(i, book, name, c)

    def end_session(self, i: int, sid: str) -> None:
        del self.sessions[sid]
        for book in (self.sems, self.elections):
            for rec in book.values():
                before = len(rec["holders"])
                rec["waiters"] = [w for w in rec["waiters"] if w["sid"] != sid]
                rec["holders"] = [h for h in rec["holders"] if h["sid"] != sid]
                if len(rec["holders"]) != before:
                    rec["changed"] = i
                self._grant(i, rec)

    def sem_status(self, name: str) -> dict[str, Any]:
        rec = self.sems.get(name)
        if rec is None or not (rec["holders"] or rec["waiters"]):
            return {"name": name, "limit": None, "available": None, "holders": [], "waiters": []}
        return {
            "name": name,
            "limit": rec["limit"],
            "available": rec["limit"] - sum(h["n"] for h in rec["holders"]),
            "holders": [{"client_id": h["c"], "permits": h["n"], "fencing_token": h["token"]} for h in rec["holders"]],
            "waiters": [{"client_id": w["c"], "permits": w["n"]} for w in rec["waiters"]],
        }

    def leader(self, name: str) -> dict[str, Any]:
        rec = self.elections.get(name)
        if rec is None:
            return {"name": name, "leader": None, "value": None, "term": None, "candidates": []}
        h = rec["holders"][0] if rec["holders"] else None
        return {
            "name": name,
            "leader": h and h["c"],
            "value": h and h["value"],
            "term": h["token"] if h else rec["changed"],
            "candidates": [w["c"] for w in rec["waiters"]],
        }


clients = st.sampled_from(CLIENTS)
names = st.sampled_from(NAMES)
sessions = st.sampled_from(SESSIONS)
waits = st.sampled_from([0.0, 5.0, 5.0])
maybe_session = st.none() | sessions


class CoordinationComparison(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.locks = LockTable()
        self.machine = CoordinationMachine([self.locks])
        self.model = Model()
        self.twin: CoordinationMachine | None = None
        self.twin_locks = LockTable()
        self.index = 0
        self.max_token: dict[tuple[str, str], int] = {}  # (kind, name) -> highest token of earlier steps
        self.last_leader: dict[str, tuple[str, int]] = {}

    def step(self, command: Any) -> Any:
        self.index += 1
        if isinstance(command, Acquire | Release):  # the lock table's own commands (the registry routes them)
            result = self.locks.apply(self.index, command)
            if self.twin is not None:
                assert self.twin_locks.apply(self.index, command) == result
            return result
        result = self.machine.apply(self.index, command)
        if self.twin is not None:
            assert self.twin.apply(self.index, command) == result
        return result

    def client_for(self, sid: str | None, client: str) -> str:
        s = self.model.sessions.get(sid) if sid is not None else None
        return s["client"] if s is not None else client

    def lease_of(self, book: dict[str, Rec], name: str, c: str, current: bool) -> int:
        h = self.model.hold(book, name, c)
        return h["lease"] if h is not None and current else 0

    # --- the operations on what exists, one rule per kind (so acquires are not drowned out) ---

    def target(self, book: dict[str, Rec], name: str, pick: int, client: str) -> str:
        """Mostly a client on ``name`` (a holder or waiter), else ``client``."""
        rec = book.get(name)
        entries = rec["holders"] + rec["waiters"] if rec is not None else []
        return entries[pick]["c"] if pick < len(entries) else client

    @rule(op=st.sampled_from(["keepalive", "revoke", "expire", "expire_stale"]), sid=sessions)
    def session_op(self, op: str, sid: str) -> None:
        if op == "keepalive":
            self.session_keepalive(sid)
        elif op == "revoke":
            self.session_revoke(sid)
        else:
            self.session_expire(sid, op == "expire")

    @rule(
        op=st.sampled_from(["release", "renew", "expire", "expire_stale", "cancel_wait"]),
        name=names,
        pick=st.integers(0, 3),
        client=clients,
    )
    def sem_op(self, op: str, name: str, pick: int, client: str) -> None:
        c = self.target(self.model.sems, name, pick, client)
        if op == "release":
            self.sem_release(name, c)
        elif op == "renew":
            self.sem_renew(name, c)
        elif op == "cancel_wait":
            self.sem_cancel_wait(name, c)
        else:
            self.sem_expire(name, c, op == "expire")

    @rule(
        op=st.sampled_from(["renew", "proclaim", "proclaim_wrong", "resign", "withdraw", "expire", "expire_stale"]),
        name=names,
        pick=st.integers(0, 3),
        client=clients,
        value=st.sampled_from([b"3", b"4"]),
    )
    def election_op(self, op: str, name: str, pick: int, client: str, value: bytes) -> None:
        c = self.target(self.model.elections, name, pick, client)
        if op == "renew":
            self.election_renew(name, c)
        elif op.startswith("proclaim"):
            self.proclaim(name, c, op == "proclaim", value)
        elif op == "resign":
            self.resign(name, c)
        elif op == "withdraw":
            self.withdraw(name, c)
        else:
            self.election_expire(name, c, op == "expire")

    # --- locks, attached to a session or not ---

    @rule(resource=st.sampled_from(RESOURCES), client=clients, wait=waits, sid=maybe_session)
    def lock_acquire(self, resource: str, client: str, wait: float, sid: str | None) -> None:
        acquire = Acquire(resource, self.client_for(sid, client), "exclusive", 10.0, wait, session_id=sid)
        self.step(acquire if sid is None else SessionLockAcquire(acquire))

    @rule(resource=st.sampled_from(RESOURCES), client=clients)
    def lock_release(self, resource: str, client: str) -> None:
        self.step(Release(resource, client))

    # --- sessions ---

    @rule(sid=sessions, client=clients)
    def session_grant(self, sid: str, client: str) -> None:
        self.step(SessionGrant(sid, client, 5.0))
        s = self.model.sessions.get(sid)
        if s is None:
            self.model.sessions[sid] = {"client": client, "ttl": 5.0, "lease": self.index}
        elif s["client"] == client:
            s["lease"] = self.index

    def session_keepalive(self, sid: str) -> None:
        self.step(SessionKeepalive(sid))
        if sid in self.model.sessions:
            self.model.sessions[sid]["lease"] = self.index

    def session_revoke(self, sid: str) -> None:
        self.step(SessionRevoke(sid))
        if sid in self.model.sessions:
            self.model.end_session(self.index, sid)

    def session_expire(self, sid: str, current: bool) -> None:
        s = self.model.sessions.get(sid)
        lease = s["lease"] if s is not None and current else 0
        self.step(SessionExpire(sid, lease))
        if s is not None and current:
            self.model.end_session(self.index, sid)

    # --- semaphores ---

    @rule(name=names, client=clients, odd_limit=st.integers(0, 9), n=st.integers(1, 3), wait=waits, sid=maybe_session)
    def sem_acquire(self, name: str, client: str, odd_limit: int, n: int, wait: float, sid: str | None) -> None:
        limit = LIMITS[name] + (odd_limit == 0)
        cmd = SemAcquire(name, self.client_for(sid, client), limit, n, 10.0, wait, sid)
        self.step(cmd)
        self.model.sem_acquire(self.index, cmd)

    def sem_release(self, name: str, client: str) -> None:
        self.step(SemRelease(name, client))
        if self.model.hold(self.model.sems, name, client) is not None:
            self.model.end(self.index, self.model.sems, name, client)

    def sem_renew(self, name: str, client: str) -> None:
        self.step(SemRenew(name, client, 5.0))
        self.model.renew(self.index, self.model.sems, name, client)

    def sem_expire(self, name: str, client: str, current: bool) -> None:
        lease = self.lease_of(self.model.sems, name, client, current)
        self.step(SemExpire(name, client, lease))
        self.model.expire(self.index, self.model.sems, name, client, lease)

    def sem_cancel_wait(self, name: str, client: str) -> None:
        self.step(SemCancelWait(name, client))
        self.model.leave(self.index, self.model.sems, name, client)

    # --- elections ---

    @rule(name=names, client=clients, value=st.sampled_from([b"1", b"2"]), wait=waits, sid=maybe_session)
    def campaign(self, name: str, client: str, value: bytes, wait: float, sid: str | None) -> None:
        cmd = Campaign(name, self.client_for(sid, client), value, 10.0, wait, sid)
        self.step(cmd)
        self.model.campaign(self.index, cmd)

    def election_renew(self, name: str, client: str) -> None:
        self.step(ElectionRenew(name, client, 5.0))
        self.model.renew(self.index, self.model.elections, name, client)

    def proclaim(self, name: str, client: str, right_term: bool, value: bytes) -> None:
        h = self.model.hold(self.model.elections, name, client)
        term = h["token"] if h is not None and right_term else -1
        self.step(Proclaim(name, client, term, value))
        if h is not None and right_term:
            h["value"] = value

    def resign(self, name: str, client: str) -> None:
        self.step(Resign(name, client))
        if self.model.hold(self.model.elections, name, client) is not None:
            self.model.end(self.index, self.model.elections, name, client)
        else:
            self.model.leave(self.index, self.model.elections, name, client)

    def withdraw(self, name: str, client: str) -> None:
        self.step(Withdraw(name, client))
        self.model.leave(self.index, self.model.elections, name, client)

    def election_expire(self, name: str, client: str, current: bool) -> None:
        lease = self.lease_of(self.model.elections, name, client, current)
        self.step(ElectionExpire(name, client, lease))
        self.model.expire(self.index, self.model.elections, name, client, lease)

    @rule(go=st.integers(0, 9))
    def expire_everything_due(self, go: int) -> None:
        """What a leader proposes when every lease ran out at once: one entry, every expiry (now and then)."""
        if go:
            return
        items = [cmd for _, cmd in self.machine.leases()]
        self.step(ExpireBatch(items))
        for item in items:
            match item:
                case SessionExpire():
                    if item.session_id in self.model.sessions:
                        self.model.end_session(self.index, item.session_id)
                case SemExpire():
                    self.model.expire(self.index, self.model.sems, item.name, item.client_id, item.lease)
                case ElectionExpire():
                    self.model.expire(self.index, self.model.elections, item.name, item.candidate_id, item.lease)

    @precondition(lambda self: self.twin is None)
    @rule()
    def snapshot_twin(self) -> None:
        self.twin_locks.restore(self.locks.snapshot())
        self.twin = CoordinationMachine([self.twin_locks])
        self.twin.restore(self.machine.snapshot())
        assert self.twin.snapshot() == self.machine.snapshot()

    # --- invariants ---

    @invariant()
    def reads_match_the_model(self) -> None:
        for name in NAMES:
            assert self.machine.semaphores.status(name) == self.model.sem_status(name)
            assert self.machine.elections.leader(name) == self.model.leader(name)
        assert {s: (r["client"], r["lease"]) for s, r in self.model.sessions.items()} == {
            s.session_id: (s.client_id, s.lease) for s in self.machine.sessions.sessions.values()
        }

    @invariant()
    def never_more_than_limit_and_tokens_increase(self) -> None:
        for kind, book in (("semaphore", self.machine.semaphores.book), ("election", self.machine.elections.book)):
            for r in book.records.values():
                assert r.held <= r.capacity
                before = self.max_token.get((kind, r.name), 0)
                if r.max_token is not None and r.max_token != before:  # a step granted: above every earlier grant
                    assert r.max_token > before and all(h.token <= r.max_token for h in r.holders)
                    self.max_token[(kind, r.name)] = r.max_token

    @invariant()
    def one_leader_and_terms_increase(self) -> None:
        for r in self.machine.elections.book.records.values():
            assert len(r.holders) <= 1
            if r.holders:
                now = (r.holders[0].holder, r.holders[0].token)
                last = self.last_leader.get(r.name)
                assert last is None or now == last or now[1] > last[1]  # a new leader: a greater term
                self.last_leader[r.name] = now

    @invariant()
    def twin_matches(self) -> None:
        if self.twin is not None:
            assert self.twin.snapshot() == self.machine.snapshot()
            assert self.twin_locks.snapshot() == self.locks.snapshot()

    @invariant()
    def session_locks_live_only_as_long_as_their_session(self) -> None:
        for sid in SESSIONS:
            if sid not in self.model.sessions:
                assert self.locks.attached(sid) == []
        for resource in RESOURCES:
            status = self.locks.status(resource)
            assert len(status["holders"]) <= 1  # exclusive only


CoordinationComparison.TestCase.settings = settings(
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "150")), stateful_step_count=50, deadline=None
)
test_coordination_against_model = CoordinationComparison.TestCase
