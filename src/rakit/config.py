"""Node configuration: the parsed, validated form of ``rakit node``'s flags.

Every problem is a ``ConfigError`` with a one-line message naming it; the
command line prints that line and exits non-zero (no traceback).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class ConfigError(ValueError):
    """Bad configuration, with a one-line message for the operator."""


@dataclass(frozen=True, slots=True)
class NodeConfig:
    node_id: str
    host: str
    port: int
    peers: dict[str, str]  # id -> base URL, the node itself included
    redis_url: str
    data_dir: Path
    cache_capacity: int = 10_000
    cache_max_bytes: int = 64 * 1024 * 1024
    max_deliveries: int = 5
    dedup_window: float = 300.0
    # Raft timing: one tick every tick_ms; elections after election_ticks..2x.
    tick_ms: int = 50
    election_ticks: int = 10
    heartbeat_ticks: int = 2
    # Take a snapshot (and truncate the log) every this many applied entries.
    snapshot_entries: int = 10_000
    log_level: str = "warning"
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def peer_ids(self) -> list[str]:
        return sorted(self.peers)

    @property
    def others(self) -> dict[str, str]:
        return {i: u for i, u in self.peers.items() if i != self.node_id}

    @property
    def url(self) -> str:
        return self.peers[self.node_id]


def parse_peers(text: str) -> dict[str, str]:
    """``"node1=http://h:8001,node2=http://h:8002"`` -> ``{"node1": ..., ...}``."""
    peers: dict[str, str] = {}
    if not text or not text.strip():
        raise ConfigError("--peers is empty: list every member as id=url, comma-separated")
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        node_id, sep, url = part.partition("=")
        node_id, url = node_id.strip(), url.strip().rstrip("/")
        if not sep or not node_id or not url:
            raise ConfigError(f"malformed --peers entry {part!r}: expected id=http://host:port")
        if not ID_RE.match(node_id):
            raise ConfigError(f"malformed node id {node_id!r} in --peers: use 1-64 of [A-Za-z0-9_.-]")
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
            raise ConfigError(f"malformed URL {url!r} for {node_id} in --peers: expected http://host:port")
        if node_id in peers:
            raise ConfigError(f"node id {node_id!r} appears twice in --peers")
        peers[node_id] = url
    if not peers:
        raise ConfigError("--peers is empty: list every member as id=url, comma-separated")
    if len(set(peers.values())) != len(peers):
        raise ConfigError("two --peers entries share one URL")
    return peers


def build_config(
    *,
    node_id: str | None,
    host: str,
    port: int | None,
    peers: str | None,
    redis_url: str,
    data_dir: str | None,
    **rest: object,
) -> NodeConfig:
    if not node_id:
        raise ConfigError("--id (or NODE_ID) is required")
    if not peers:
        raise ConfigError("--peers (or PEERS) is required: list every member as id=url, comma-separated")
    peer_map = parse_peers(peers)
    if node_id not in peer_map:
        raise ConfigError(f"unknown node id {node_id!r}: --peers lists {', '.join(sorted(peer_map))}")
    if port is None:
        port = urlsplit(peer_map[node_id]).port
    assert port is not None
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port {port} is out of range 1..65535")
    if not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"malformed --redis-url {redis_url!r}: expected redis://host:port/db")
    numbers = {k: v for k, v in rest.items() if v is not None}
    for name in ("cache_capacity", "cache_max_bytes", "max_deliveries", "tick_ms", "election_ticks",
                 "heartbeat_ticks", "snapshot_entries"):
        if name in numbers and int(numbers[name]) < 1:  # type: ignore[call-overload]
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
    if "dedup_window" in numbers and float(numbers["dedup_window"]) < 0:  # type: ignore[arg-type]
        raise ConfigError("--dedup-window must not be negative")
    return NodeConfig(
        node_id=node_id,
        host=host,
        port=port,
        peers=peer_map,
        redis_url=redis_url,
        data_dir=Path(data_dir or f"./data/{node_id}"),
        **numbers,  # type: ignore[arg-type]
    )
