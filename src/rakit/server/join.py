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
import time
from collections.abc import Callable
from typing import Any

from rakit.client import Client, RakitError, calls
from rakit.config import NodeConfig

RETRY_PAUSE = 0.5
REFUSALS = (401, 403, 409, 422)  # final answers, but conf_change_in_progress (the gate; it passes)


class JoinError(Exception):
    """The cluster could not be joined, with a one-line reason."""


def _until(deadline: float, what: str, call: Callable[[], Any], done_codes: tuple[str, ...] = ()) -> Any:
    """``call()`` until it answers, an error code in ``done_codes`` (None then) or a refusal."""
    last = "none"
    while True:
        try:
            return call()
        except RakitError as exc:
            if exc.error in done_codes:
                return None
            if exc.status in REFUSALS and exc.error != "conf_change_in_progress":
                raise JoinError(f"{what} was refused: {exc}") from None
            last = str(exc)
        if time.monotonic() >= deadline:
            raise JoinError(f"{what} got no answer in time (last: {last})")
        time.sleep(RETRY_PAUSE)


def join_cluster(config: NodeConfig, timeout: float = 30.0) -> NodeConfig:
    """``config`` with the cluster's members and voters, once this node is a member."""
    assert config.join is not None
    own_url = config.peers[config.node_id]
    deadline = time.monotonic() + timeout
    verify = str(config.tls_ca) if config.tls_ca else True
    with Client(
        config.join, timeout=7.0, retry_deadline=timeout, verify=verify, cluster_secret=config.cluster_secret
    ) as client:
        # Signed as this node, not as an operator: with client tokens on, a node may add only
        # itself without a token (rakit.http.security).
        client._runner.signer = client._runner.signer.as_caller(config.node_id)
        # "member_exists": a restart, checked against the member list below.
        _until(
            deadline,
            f"asking {config.join} to add {config.node_id}",
            lambda: client.add_member(config.node_id, own_url),
            ("member_exists",),
        )
        listing = dataclasses.replace(calls.members(), signed=True)  # with tokens on, no token is needed
        view = _until(deadline, f"listing the members at {config.join}", lambda: client._run(listing))
    members = {m["id"]: m.get("url") for m in [*view.get("voters", []), *view.get("learners", [])]}
    if config.node_id not in members:
        raise JoinError(f"{config.node_id} is not in the configuration {config.join} reports")
    if members[config.node_id] not in (None, own_url):
        raise JoinError(f"{config.node_id} is already a member at {members[config.node_id]}, not {own_url}")
    peers = {node: url for node, url in members.items() if url}
    peers[config.node_id] = own_url
    voters = tuple(sorted(m["id"] for m in view.get("voters", [])))
    return dataclasses.replace(config, peers=peers, voters=voters)
