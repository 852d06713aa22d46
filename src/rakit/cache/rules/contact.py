"""The cache's failure detector: leases between nodes, serving rights and fences.

Pure: time is a number the caller passes (``now``, monotonic seconds).  The
cache service (``rakit.cache.service``) feeds it every exchange with a peer
and asks it two questions: *may this node serve its cache now?* and *may a
writer go on without peer P?*  Rule 8 of ``rakit.cache.rules.coherence`` rests on
the answers; this module is where "cut off" becomes one fact both sides
agree on.

Rules
-----
1.  Lease.  Every message this node sends a peer (a batch of invalidations,
    fetches, or an empty one every ``PING`` seconds) is answered with an
    *ack*, unless the peer fences this node (rule 5).  An ack to a message
    sent at ``s`` gives this node a lease on that peer until ``s + lease``.
    The peer records when it acked (``last_ack``): the lease it granted ends
    by ``last_ack + lease`` on its own clock, since the message was sent
    before the ack.
2.  Serving.  A node may serve its cache (answer hits, keep copies, serve
    fetches, take writes) only while it holds leases on a majority of the
    cluster counting itself.  ``serving_until`` is the time the current
    leases keep that true.
3.  Lapse.  If a check finds ``now >= serving_until`` the node stopped
    serving at some moment, maybe while nobody was looking (a SIGSTOP, a
    slow event loop); it must drop everything before it serves again: it
    may have missed invalidations meanwhile (rule 6).  ``check`` reports the
    lapse once; leases are only ever extended by ``on_ack``, which checks
    for a lapse first, so no lapse can be hidden by a later renewal.
4.  Expiry as the peer sees it.  ``lease_expired(P, now)`` is true when this
    node has not acked P for ``skip_age = lease * (1 + drift) + margin``: P
    holds no lease on this node any more, whatever the two clocks' drift.
5.  Fence.  To go on without P, a writer needs P not to be serving, for
    longer than its write can take.  It asks for a *fence* on P from every
    node it reaches; a node grants one only if P's lease on it has expired
    (rule 4), and then refuses to ack P for ``fence`` seconds (renewals
    extend).  With grants (its own included) from ``ceil(n / 2)`` nodes, P
    holds leases on at most ``n - ceil(n / 2) - 1`` peers: fewer than a
    majority with itself, so P does not serve (rule 2) until the fences end,
    and when it serves again it has dropped everything (rule 3).
6.  Skip.  ``skippable(P, until)`` is true while this node holds enough
    grants on P, all lasting past ``until`` (the deadline of the writer's
    round).  The writer then answers without P: P holds nothing and will
    hold nothing until after the answer.  A node that stays in contact
    (acks flowing both ways) is never skipped; a node that is cut off on one
    side only, but still serves through others, cannot be fenced: writes
    that need it fail with ``503 unavailable`` rather than skip it.

7.  Generations.  The cache's membership changes with the cluster's
    (``rakit.cache.service``, "Membership"); each configuration has a
    *generation*.  The service acks, and counts acks from, only peers of its
    own generation.  ``reconfigure`` adopts a new one: every lease this node
    held is void (it serves again only on acks of the new generation), and
    it *mutes* for ``skip_age``: it acks nobody and does not serve, so the
    leases it lent under the old generation have run out before it lends or
    serves under the new one.  So every node lends and serves under one
    generation at a time, and since consecutive configurations differ by one
    node, a majority of the old and one of the new always share a node:
    nodes of two consecutive generations never serve at the same moment.
    Fences on peers that stay are kept (they are promises not to ack);
    skips are dropped (their grants counted the old majority).

Costs: a node that stops answering delays writes by ``skip_age`` (about
1.2 s by default) before they go on without it, once per ``fence`` period;
a node that was cut off answers ``503`` until the fences on it run out (up to
``fence`` seconds after it is back) and comes back empty; an asymmetric cut
between two nodes that both keep a majority makes writes at those two fail
until it heals.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ContactTable", "LapseCheck"]

NEVER = -math.inf


@dataclass(frozen=True, slots=True)
class LapseCheck:
    serving: bool
    lapsed: bool  # a lapse was found now: the caller must drop everything


class ContactTable:
    def __init__(
        self,
        node_id: str,
        peer_ids: Iterable[str],
        now: float,
        *,
        lease: float = 1.0,
        drift: float = 0.05,
        margin: float = 0.05,
        fence: float = 6.0,
        muted: bool = False,
    ) -> None:
        self.node_id = node_id
        self.lease = lease
        self.drift = drift
        self.fence = fence
        self.skip_age = lease * (1 + drift) + margin
        self._set_peers(peer_ids)
        # Before this incarnation started it had granted nothing (rule 1):
        # counting its start as an ack is conservative.
        self._last_ack = dict.fromkeys(self.peers, now)
        self._fenced_until = dict.fromkeys(self.peers, NEVER)  # we refuse to ack them
        self._skip_until = dict.fromkeys(self.peers, NEVER)  # we may go on without them
        # ``muted``: a restart may follow a run that lent leases under an older generation.
        self._mute_until = now + self.skip_age if muted else NEVER
        self._void_leases()

    def _set_peers(self, peer_ids: Iterable[str]) -> None:
        self.peers = tuple(p for p in peer_ids if p != self.node_id)
        size = len(self.peers) + 1
        self.needed_leases = size // 2  # peers besides itself for a majority
        self.needed_grants = (size + 1) // 2  # ceil(n / 2), itself included

    def _void_leases(self) -> None:
        self._lease_until = dict.fromkeys(self.peers, NEVER)
        self._serving_until = math.inf if self.needed_leases == 0 else NEVER
        self._lapsed = self.needed_leases > 0  # starting is a lapse: nothing is held yet

    def reconfigure(self, peer_ids: Iterable[str], now: float, mute: float | None = None) -> None:
        """Rule 7: adopt a new generation's peers, mute for ``mute`` (at least ``skip_age``);
        the caller drops everything held."""
        last_ack, fenced = self._last_ack, self._fenced_until
        self._set_peers(peer_ids)
        self._last_ack = {p: last_ack.get(p, now) for p in self.peers}
        self._fenced_until = {p: fenced.get(p, NEVER) for p in self.peers}
        self._skip_until = dict.fromkeys(self.peers, NEVER)
        self._mute_until = now + max(self.skip_age, mute or 0.0)
        self._void_leases()

    def muted(self, now: float) -> bool:
        return now < self._mute_until

    # -- this node's serving right (rules 2, 3) -------------------------

    def check(self, now: float) -> LapseCheck:
        if now < self._mute_until:
            return LapseCheck(False, False)  # rule 7 (what was held was dropped on reconfigure)
        if now < self._serving_until:
            self._lapsed = False  # after a mute: serving on acks that came during it
            return LapseCheck(True, False)
        lapsed = not self._lapsed
        self._lapsed = True
        self._serving_until = self._compute()
        if now < self._serving_until:
            self._lapsed = False
            return LapseCheck(True, lapsed)
        return LapseCheck(False, lapsed)

    def serving(self, now: float) -> bool:
        """Whether a check now would find this node serving (no side effects)."""
        return self._mute_until <= now < self._serving_until

    def on_ack(self, peer: str, sent_at: float, now: float) -> LapseCheck:
        """``peer`` acked a message sent at ``sent_at``: check for a lapse, then extend."""
        result = self.check(now)
        if peer not in self._lease_until:  # no longer a peer (a reply from before a reconfiguration)
            return result
        until = sent_at + self.lease
        self._lease_until[peer] = max(self._lease_until[peer], until)
        self._serving_until = self._compute()
        if now < self._mute_until:
            return LapseCheck(False, result.lapsed)
        if self._lapsed and now < self._serving_until:
            self._lapsed = False
        return LapseCheck(now < self._serving_until, result.lapsed)

    def ever_in_contact(self, peer: str) -> bool:
        return self._lease_until.get(peer, NEVER) > NEVER

    def in_contact(self, peer: str, now: float) -> bool:
        return now < self._lease_until.get(peer, NEVER)

    def contacts(self, now: float) -> list[str]:
        return [p for p in self.peers if now < self._lease_until[p]]

    def _compute(self) -> float:
        if self.needed_leases == 0:
            return math.inf
        ends = sorted(self._lease_until.values(), reverse=True)
        return ends[self.needed_leases - 1]

    # -- what we grant peers (rules 1, 4, 5) -----------------------------

    def accept(self, peer: str, now: float) -> bool:
        """A message from ``peer`` arrived: ack it (and record the ack) unless fenced or muted."""
        if peer not in self._fenced_until or now < self._fenced_until[peer] or now < self._mute_until:
            return False
        self._last_ack[peer] = now
        return True

    def lease_expired(self, peer: str, now: float) -> bool:
        return now - self._last_ack.get(peer, now) >= self.skip_age

    def grant_fence(self, peer: str, now: float) -> bool:
        """Rule 5, asked by a writer (or by ourselves): fence ``peer`` if its lease here ended."""
        if peer not in self._fenced_until or not self.lease_expired(peer, now):
            return False
        until = now + self.fence
        self._fenced_until[peer] = max(self._fenced_until[peer], until)
        return True

    def fenced(self, peer: str, now: float) -> bool:
        return now < self._fenced_until.get(peer, NEVER)

    # -- going on without a peer (rule 6) --------------------------------

    def record_grants(self, peer: str, asked_at: float, granted: int, now: float) -> bool:
        """``granted`` nodes (ourselves included) fenced ``peer`` on a request sent at ``asked_at``."""
        if granted < self.needed_grants or peer not in self._skip_until:
            return False
        # Their fences run at least ``fence`` from when they got the request,
        # which was after ``asked_at``; allow for drift between the clocks.
        until = asked_at + self.fence * (1 - self.drift)
        self._skip_until[peer] = max(self._skip_until[peer], until)
        return True

    def skippable(self, peer: str, until: float) -> bool:
        return until < self._skip_until.get(peer, NEVER)

    def skip_remaining(self, peer: str, now: float) -> float:
        return max(0.0, self._skip_until.get(peer, NEVER) - now)

    def describe(self, now: float) -> dict[str, dict[str, float | bool | None]]:
        def left(t: float) -> float | None:
            return round(t - now, 3) if t > now else None

        return {
            p: {
                "in_contact": now < self._lease_until[p],
                "lease_left": left(self._lease_until[p]),
                "acked_ago": round(now - self._last_ack[p], 3),
                "fenced_left": left(self._fenced_until[p]),
                "skip_left": left(self._skip_until[p]),
            }
            for p in self.peers
        }
