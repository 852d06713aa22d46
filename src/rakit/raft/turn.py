"""One turn of a node: a Ready as an ordered list of effects.

The asyncio driver (``rakit.node.driver``) and the deterministic simulation
(``tests/sim/harness.py``) both run exactly these effects, in this order, so
the order that is simulated is the order that runs.  Nothing here does I/O.

Rules
-----
1. ``Send(ready.messages, after_persist=False)`` comes first: the core puts
   there only a leader's replication at a term and vote already on disk
   (``rakit.raft.core`` rule 18).
2. ``Persist`` follows when the Ready has entries, a snapshot, or a hard
   state whose term or vote differs from the durable one.  A hard state that
   only moves the commit index is not written by itself: it is carried
   (``Turn.carried``) and written with the next ``Persist`` (a restarted node
   learns its commit index again from the leader).
3. ``Send(ready.persisted_messages, after_persist=True)`` comes after
   ``Persist``: votes, acks and everything else that asserts what this Ready
   makes durable.
4. ``Restore`` (a received snapshot), then ``Apply`` (committed entries, in
   order), then ``ConfirmReads``, then ``Advance``.
5. Effects with nothing to do are left out; ``Advance`` is always last.
"""

from __future__ import annotations

from dataclasses import dataclass

from rakit.raft.messages import AnyMessage, Entry, HardState, ReadState, Snapshot
from rakit.raft.ready import Ready


@dataclass(frozen=True, slots=True)
class Send:
    messages: list[AnyMessage]
    after_persist: bool


@dataclass(frozen=True, slots=True)
class Persist:
    hard_state: HardState | None
    entries: list[Entry]
    snapshot: Snapshot | None


@dataclass(frozen=True, slots=True)
class Restore:
    snapshot: Snapshot


@dataclass(frozen=True, slots=True)
class Apply:
    entries: list[Entry]


@dataclass(frozen=True, slots=True)
class ConfirmReads:
    read_states: list[ReadState]


@dataclass(frozen=True, slots=True)
class Advance:
    ready: Ready


Effect = Send | Persist | Restore | Apply | ConfirmReads | Advance


@dataclass(frozen=True, slots=True)
class Turn:
    effects: list[Effect]
    # The hard state on disk once the effects ran (rule 2).
    durable: HardState
    # A commit-only hard state not yet written (rule 2), for the next plan.
    carried: HardState | None


def plan(ready: Ready, durable: HardState, carried: HardState | None = None) -> Turn:
    """The effects of ``ready`` for a node whose disk holds ``durable`` (rules 1-5)."""
    hard_state = ready.hard_state or carried
    effects: list[Effect] = []
    if ready.messages:
        effects.append(Send(ready.messages, after_persist=False))
    new_term_or_vote = hard_state is not None and (hard_state.term, hard_state.vote) != (durable.term, durable.vote)
    if ready.entries or ready.snapshot is not None or new_term_or_vote:
        effects.append(Persist(hard_state, ready.entries, ready.snapshot))
        durable, carried = hard_state or durable, None
    else:
        carried = hard_state
    if ready.persisted_messages:
        effects.append(Send(ready.persisted_messages, after_persist=True))
    if ready.snapshot is not None:
        effects.append(Restore(ready.snapshot))
    if ready.committed_entries:
        effects.append(Apply(ready.committed_entries))
    if ready.read_states:
        effects.append(ConfirmReads(ready.read_states))
    effects.append(Advance(ready))
    return Turn(effects, durable, carried)


__all__ = ["Advance", "Apply", "ConfirmReads", "Effect", "Persist", "Restore", "Send", "Turn", "plan"]
