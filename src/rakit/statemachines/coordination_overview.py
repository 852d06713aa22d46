"""Whole-table reads of the coordination machine, for the dashboard and the metrics.

Rules
-----
1.  Reads change nothing and return plain data (no live record escapes).
2.  ``overview`` lists at most ``limit`` of each kind in name order (sessions
    by client then id) and says per kind whether more exist; free records
    (no holder, no waiter) are not listed.
3.  A session id is a bearer capability (whoever knows it can revoke the
    session or attach to it), so the overview shows only its first 8
    characters; the holds attached to it are counted, not named.
4.  ``totals`` counts over the whole machine, whatever ``limit``: sessions,
    semaphores in use, permits held, their limits, waiters, elections in use,
    elections with a leader, and waiting candidates.
"""

from __future__ import annotations

from typing import Any

from rakit.statemachines.coordination import CoordinationMachine
from rakit.statemachines.holds import Book, Record

SESSION_ID_SHOWN = 8


def _in_use(book: Book) -> list[Record]:
    return sorted((r for r in book.records.values() if not r.free), key=lambda r: r.name)


def overview(machine: CoordinationMachine, limit: int) -> dict[str, Any]:
    """Rules 1–3."""
    sessions = sorted(machine.sessions.sessions.values(), key=lambda s: (s.client_id, s.session_id))
    semaphores = _in_use(machine.semaphores.book)
    elections = _in_use(machine.elections.book)
    return {
        "sessions": [
            {
                "session_id": s.session_id[:SESSION_ID_SHOWN] + "…",
                "client_id": s.client_id,
                "ttl": s.ttl,
                "lock_delay": s.lock_delay,
                "holds": _attached_count(machine, s.session_id),
            }
            for s in sessions[:limit]
        ],
        "semaphores": [
            {
                "name": r.name,
                "limit": r.capacity,
                "available": r.available,
                "holders": [{"client_id": h.holder, "permits": h.amount, "fencing_token": h.token} for h in r.holders],
                "waiters": [{"client_id": w.holder, "permits": w.amount} for w in r.waiters],
            }
            for r in semaphores[:limit]
        ],
        "elections": [
            {
                "name": r.name,
                "leader": r.holders[0].holder if r.holders else None,
                "term": r.holders[0].token if r.holders else None,
                "candidates": [w.holder for w in r.waiters],
            }
            for r in elections[:limit]
        ],
        "truncated": {
            "sessions": len(sessions) > limit,
            "semaphores": len(semaphores) > limit,
            "elections": len(elections) > limit,
        },
        "totals": totals(machine),
    }


def _attached_count(machine: CoordinationMachine, session_id: str) -> int:
    view = machine.session_view(session_id)
    if view is None:
        return 0
    return sum(len(v) for k, v in view.items() if isinstance(v, list) and k != "session_id")


def totals(machine: CoordinationMachine) -> dict[str, int]:
    """Rule 4."""
    semaphores = _in_use(machine.semaphores.book)
    elections = _in_use(machine.elections.book)
    return {
        "sessions": len(machine.sessions.sessions),
        "semaphores": len(semaphores),
        "permits_held": sum(r.held for r in semaphores),
        "permits_limit": sum(r.capacity for r in semaphores),
        "semaphore_waiters": sum(len(r.waiters) for r in semaphores),
        "elections": len(elections),
        "elections_led": sum(1 for r in elections if r.holders),
        "candidates_waiting": sum(len(r.waiters) for r in elections),
    }
