"""``rakit node --join <url>``: ask a running cluster to add this node, then start as a learner.

The member asked relays the request to the leader, which appends the
``add_learner`` configuration entry (with this node's URL) and answers once
it is committed.  This node then reads the configuration from that member
(``GET /cluster/members``) and starts with those voters and their URLs: not
a voter itself, it never campaigns; the leader sends it the log (or a
snapshot) and it serves reads and forwards writes like any member.  Promote
it (``rakit member promote <id>``) once ``caught_up``.

Restarting a joined node with the same flags is fine: "already a member
with this URL" counts as joined.  Every call is bounded; after ``timeout``
seconds without an answer the node refuses to start.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import urllib.error
import urllib.request
from typing import Any

from rakit.config import NodeConfig


class JoinError(Exception):
    """The cluster could not be joined, with a one-line reason."""


def _call(method: str, url: str, body: Any = None, timeout: float = 7.0) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    token = os.environ.get("RAKIT_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # our own cluster's URL
            payload, status = resp.read(), resp.status
    except urllib.error.HTTPError as err:
        payload, status = err.read(), err.code
    except (urllib.error.URLError, OSError, TimeoutError):
        return 0, None
    try:
        return status, json.loads(payload) if payload else None
    except ValueError:
        return status, None


def join_cluster(config: NodeConfig, timeout: float = 30.0) -> NodeConfig:
    """``config`` with the cluster's members and voters, once this node is a member."""
    assert config.join is not None
    own_url = config.peers[config.node_id]
    deadline = time.monotonic() + timeout
    while True:
        status, answer = _call("POST", config.join + "/cluster/members", {"id": config.node_id, "url": own_url})
        if status == 200:
            break
        error = answer.get("error") if isinstance(answer, dict) else None
        if status == 409 and error == "member_exists":
            break  # a restart: checked against the member list below
        if status in (401, 403, 409, 422) and error != "conf_change_in_progress":
            detail = answer.get("detail") if isinstance(answer, dict) else answer
            raise JoinError(f"{config.join} refused to add {config.node_id}: {error or status}: {detail}")
        if time.monotonic() >= deadline:
            raise JoinError(f"no member at {config.join} added {config.node_id} within {timeout:g} s "
                            f"(last answer: {status or 'none'})")
        time.sleep(0.5)
    while True:
        status, view = _call("GET", config.join + "/cluster/members")
        if status == 200 and isinstance(view, dict):
            break
        if time.monotonic() >= deadline:
            raise JoinError(f"{config.join} did not list the members within {timeout:g} s")
        time.sleep(0.5)
    members = {m["id"]: m.get("url") for m in [*view.get("voters", []), *view.get("learners", [])]}
    if config.node_id not in members:
        raise JoinError(f"{config.node_id} is not in the configuration {config.join} reports")
    if members[config.node_id] not in (None, own_url):
        raise JoinError(f"{config.node_id} is already a member at {members[config.node_id]}, not {own_url}")
    peers = {node: url for node, url in members.items() if url}
    peers[config.node_id] = own_url
    voters = tuple(sorted(m["id"] for m in view.get("voters", [])))
    return dataclasses.replace(config, peers=peers, voters=voters)
