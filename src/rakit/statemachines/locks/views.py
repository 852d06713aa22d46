"""Rule 11 of ``rakit.statemachines.locks.table``: the read API of the lock table (changes nothing).

``status`` is what ``GET /lock/status`` answers; ``table`` the dashboard's
whole-table view with the wait-for edges.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from rakit.statemachines.locks.records import Resource


def status(resources: Mapping[str, Resource], resource: str, fencing_floor: int | None) -> dict[str, Any]:
    r = resources.get(resource) or Resource(resource, max_token=fencing_floor)  # rule 17
    return {
        "resource": resource,
        "mode": r.holders[0].mode if r.holders else None,
        "holders": [h.client_id for h in r.holders],
        "waiters": [{"client_id": w.client_id, "mode": w.mode} for w in r.waiters],
        "fencing_token": r.max_token,
    }


def table(records: Mapping[str, Resource], limit: int) -> dict[str, Any]:
    """The whole table for dashboards: at most ``limit`` resources, busy ones first.

    ``resources``: the resources of ``records`` with holders or waiters (table order), then
    the free ones that keep a record (a past fencing token, a lock_delay),
    cut to ``limit``; each with its mode, holders (grant order, with token,
    ttl, lease stamp and owner), waiters (wait-list order, with owner), highest token,
    lock_delay and delay state.  ``edges``: rule 8's wait-for graph as
    ``{"from": waiting client, "to": client it waits for, "resource",
    "kind": "holder"|"queued"}`` ("queued": an incompatible waiter ahead),
    for the resources listed.  ``count``/``active``: resources in the whole
    table / with holders or waiters; ``truncated``: some were left out.
    """
    busy = [r for r in records.values() if r.holders or r.waiters]
    free = (r for r in records.values() if not (r.holders or r.waiters))
    shown = list(itertools.islice(itertools.chain(busy, free), max(0, limit)))
    resources: list[dict[str, Any]] = []
    edges: list[dict[str, str]] = []
    for r in shown:
        resources.append(
            {
                "resource": r.name,
                "mode": r.holders[0].mode if r.holders else None,
                "holders": [
                    {
                        "client_id": h.client_id,
                        "mode": h.mode,
                        "fencing_token": h.token,
                        "ttl": h.ttl,
                        "lease": h.lease,
                        "owner": h.owner,
                    }
                    for h in r.holders
                ],
                "waiters": [
                    {
                        "client_id": w.client_id,
                        "mode": w.mode,
                        "upgrade": w.upgrade,
                        "wait": w.wait,
                        "owner": w.owner,
                    }
                    for w in r.waiters
                ],
                "fencing_token": r.max_token,
                "lock_delay": r.lock_delay,
                "delayed": r.delayed,
            }
        )
        holders = {h.party for h in r.holders}
        for position, w in enumerate(r.waiters):
            for blocker in dict.fromkeys(r.blockers(w, position)):  # once each, in order
                edges.append(
                    {
                        "from": w.client_id,
                        "to": blocker.rpartition("\x00")[2],
                        "resource": r.name,
                        "kind": "holder" if blocker in holders else "queued",
                    }
                )
    return {
        "resources": resources,
        "edges": edges,
        "count": len(records),
        "active": len(busy),
        "truncated": len(shown) < len(records),
    }
