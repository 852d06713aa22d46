"""Tunables of the Raft core, counted in ticks and entries (never seconds)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RaftConfig:
    # A follower that hears no leader for a random number of ticks in
    # [election_ticks, 2 * election_ticks) starts a (pre-)election.
    election_ticks: int = 10
    # A leader sends heartbeats every heartbeat_ticks ticks.
    heartbeat_ticks: int = 1
    pre_vote: bool = True
    # A leader that has not heard from a majority within election_ticks steps
    # down, and voters ignore vote requests while they hear from a leader.
    check_quorum: bool = True
    # Pipelining window: AppendEntries messages in flight to one follower.
    max_inflight: int = 256
    # Bounds on one AppendEntries message.
    max_entries_per_msg: int = 4096
    max_bytes_per_msg: int = 4 * 1024 * 1024
    # Bound on committed entries handed out in one Ready.
    max_committed_per_ready: int = 8192
