"""Node configuration: the parsed, validated form of ``rakit node``'s flags.

Every problem is a ``ConfigError`` with a one-line message naming it; the
command line prints that line and exits non-zero (no traceback).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # matched whole: fullmatch


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
    # Security; off by default on loopback, for the local quick start (see config.build_config).
    cluster_secret: str | None = None  # every node-to-node call carries proof of it
    auth_tokens: Path | None = None  # client API tokens and their grants
    tls_cert: Path | None = None  # this node's certificate (HTTPS for the API and peers)
    tls_key: Path | None = None
    tls_ca: Path | None = None  # verify peers with this CA; nodes then present their certificate too
    # Host names clients may reach this node under (rakit.http.origin); None: its own and its peers'.
    allowed_hosts: tuple[str, ...] | None = None
    # ``--repair``: open a Raft log damaged in the middle by dropping the damage and what follows.
    repair_log: bool = False
    extra: dict[str, str] = field(default_factory=dict)
    # Joining a running cluster (``--join``): the member asked, and the voters it reported.
    join: str | None = None
    voters: tuple[str, ...] | None = None  # None: every peer (the --peers start)

    @property
    def peer_ids(self) -> list[str]:
        return sorted(self.peers)

    @property
    def initial_voters(self) -> tuple[str, ...]:
        """The configuration before any membership entry: every ``--peers`` member, or what a join reported."""
        return self.voters if self.voters is not None else tuple(self.peer_ids)

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
        if not ID_RE.fullmatch(node_id):
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


PLACEHOLDER_MARK = "insecure-placeholder"  # in a secret, it is the public one of an example file


def is_loopback(host: str) -> bool:
    """Is ``host`` reachable from this machine only (127.0.0.0/8, ::1, localhost)?"""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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
    join = rest.pop("join", None)
    advertise_url = rest.pop("advertise_url", None)
    insecure = bool(rest.pop("insecure", False))
    repair_log = bool(rest.pop("repair_log", False))
    allowed = rest.pop("allowed_hosts", None)
    allowed_hosts = tuple(h.strip().lower() for h in str(allowed).split(",") if h.strip()) if allowed else None
    if join is not None:
        join = str(join).rstrip("/")
        if not parse_peers(f"x={join}"):  # pragma: no cover - parse_peers raises on a bad URL
            raise ConfigError(f"malformed --join URL {join!r}")
        if not peers:
            if advertise_url is None:
                if port is None:
                    raise ConfigError("--join needs --port or --advertise-url (where this node serves)")
                advertise_url = f"http://{'127.0.0.1' if host in ('', '0.0.0.0') else host}:{port}"
            peers = f"{node_id}={advertise_url}"
    if not peers:
        raise ConfigError(
            "--peers (or PEERS) is required: list every member as id=url, comma-separated "
            "(or --join <url of a member> to join a running cluster)"
        )
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
    for name in (
        "cache_capacity",
        "cache_max_bytes",
        "max_deliveries",
        "tick_ms",
        "election_ticks",
        "heartbeat_ticks",
        "snapshot_entries",
    ):
        if name in numbers and int(numbers[name]) < 1:  # type: ignore[call-overload]
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
    if "dedup_window" in numbers and float(numbers["dedup_window"]) < 0:  # type: ignore[arg-type]
        raise ConfigError("--dedup-window must not be negative")
    security = _security(numbers)
    if "cluster_secret" not in security and not insecure and not is_loopback(host):
        raise ConfigError(
            f"--host {host or '(all addresses)'} is reachable from the network: a node there needs "
            f"--cluster-secret (or --cluster-secret-file), or anyone who reaches it can speak Raft "
            f"and change the membership; pass --insecure to run without one anyway"
        )
    return NodeConfig(
        join=join,
        node_id=node_id,
        host=host,
        port=port,
        peers=peer_map,
        redis_url=redis_url,
        data_dir=Path(data_dir or f"./data/{node_id}"),
        allowed_hosts=allowed_hosts,
        repair_log=repair_log,
        **security,  # type: ignore[arg-type]
        **numbers,  # type: ignore[arg-type]
    )


def _security(options: dict[str, object]) -> dict[str, object]:
    """Take the security options out of ``options``, checked: the secret, token file, TLS files."""
    out: dict[str, object] = {}
    secret = options.pop("cluster_secret", None)
    secret_file = options.pop("cluster_secret_file", None)
    if secret is not None and secret_file is not None:
        raise ConfigError("give --cluster-secret or --cluster-secret-file, not both")
    if secret_file is not None:
        try:
            secret = Path(str(secret_file)).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read --cluster-secret-file {secret_file}: {exc.strerror}") from None
    if secret is not None:
        if len(str(secret)) < 16:
            raise ConfigError("the cluster secret must be at least 16 characters")
        if PLACEHOLDER_MARK in str(secret):
            raise ConfigError(
                "the cluster secret is the public placeholder: set your own "
                "(e.g. RAKIT_CLUSTER_SECRET=$(openssl rand -base64 32))"
            )
        out["cluster_secret"] = str(secret)
    for name in ("auth_tokens", "tls_cert", "tls_key", "tls_ca"):
        value = options.pop(name, None)
        if value is None:
            continue
        path = Path(str(value))
        if not path.is_file():
            raise ConfigError(f"--{name.replace('_', '-')} {path}: no such file")
        out[name] = path
    if ("tls_cert" in out) != ("tls_key" in out):
        raise ConfigError("--tls-cert and --tls-key go together")
    if "tls_ca" in out and "tls_cert" not in out:
        raise ConfigError("--tls-ca needs --tls-cert and --tls-key (mutual TLS between nodes)")
    if "tls_ca" in out and "cluster_secret" not in out:
        raise ConfigError(
            "--tls-ca needs --cluster-secret (or --cluster-secret-file): node-to-node calls are "
            "authenticated by the secret; mutual TLS only encrypts them and checks the peers' "
            "certificates"
        )
    if "auth_tokens" in out:
        if "cluster_secret" not in out:
            raise ConfigError(
                "--auth-tokens needs --cluster-secret (or --cluster-secret-file): nodes relay a "
                "client's identity to the leader and trust it only from a peer proving the secret"
            )
    return out
