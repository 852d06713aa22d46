"""The ``rakit`` command line: ``rakit node`` runs one node, ``rakit up`` a local cluster;
``rakit status|lock|queue|cache`` talk to a running cluster (``rakit.cli_client``), ``rakit kv`` to its
KV map (``rakit.cli_kv``).

Every flag of ``rakit node`` has an environment variable used when the flag
is absent (docs/api.md).  Configuration problems print one line on stderr and
exit 2; nothing here prints a traceback for a user error.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from rakit.config import ConfigError, build_config

app = typer.Typer(
    name="rakit",
    help="rakit: distributed locks (Raft), queue (Redis) and cache (write-invalidate).",
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(message: str, code: int = 2) -> None:
    print(f"rakit: error: {message}", file=sys.stderr)
    raise typer.Exit(code)


@app.command()
def node(
    node_id: Annotated[
        str | None, typer.Option("--id", envvar="NODE_ID", help="This node's id; must be in --peers.")
    ] = None,
    host: Annotated[str, typer.Option(envvar="NODE_HOST", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int | None, typer.Option(envvar="NODE_PORT", help="Port to listen on (default: from --peers).")
    ] = None,
    peers: Annotated[
        str | None, typer.Option(envvar="PEERS", help="Every member as id=url, comma-separated, this node included.")
    ] = None,
    redis_url: Annotated[
        str, typer.Option(envvar="REDIS_URL", help="Redis for the queue.")
    ] = "redis://127.0.0.1:6379/0",
    data_dir: Annotated[
        str | None, typer.Option(envvar="DATA_DIR", help="Where Raft state is kept (default ./data/<id>).")
    ] = None,
    cache_capacity: Annotated[int | None, typer.Option(envvar="CACHE_CAPACITY", help="Cache entries per node.")] = None,
    cache_max_bytes: Annotated[int | None, typer.Option(envvar="CACHE_MAX_BYTES", help="Cache bytes per node.")] = None,
    max_deliveries: Annotated[
        int | None, typer.Option(envvar="MAX_DELIVERIES", help="Deliveries before a message is dead-lettered.")
    ] = None,
    dedup_window: Annotated[
        float | None, typer.Option(envvar="DEDUP_WINDOW", help="Seconds a queue message_id is remembered.")
    ] = None,
    tick_ms: Annotated[int | None, typer.Option(envvar="RAFT_TICK_MS", help="Raft tick in milliseconds.")] = None,
    election_ticks: Annotated[
        int | None,
        typer.Option(envvar="RAFT_ELECTION_TICKS", help="Election timeout in ticks (randomized up to 2x)."),
    ] = None,
    heartbeat_ticks: Annotated[
        int | None, typer.Option(envvar="RAFT_HEARTBEAT_TICKS", help="Heartbeat interval in ticks.")
    ] = None,
    snapshot_entries: Annotated[
        int | None, typer.Option(envvar="RAFT_SNAPSHOT_ENTRIES", help="Snapshot after this many applied entries.")
    ] = None,
    log_level: Annotated[str, typer.Option(envvar="LOG_LEVEL", help="debug, info, warning or error.")] = "warning",
    cluster_secret: Annotated[
        str | None,
        typer.Option(envvar="CLUSTER_SECRET", help="Shared secret every node-to-node call proves (>= 16 chars)."),
    ] = None,
    cluster_secret_file: Annotated[
        str | None, typer.Option(envvar="CLUSTER_SECRET_FILE", help="A file holding the cluster secret.")
    ] = None,
    auth_tokens: Annotated[
        str | None,
        typer.Option(envvar="AUTH_TOKENS", help="Client API tokens file (JSON); requests then need a token."),
    ] = None,
    tls_cert: Annotated[
        str | None, typer.Option(envvar="TLS_CERT", help="PEM certificate: serve HTTPS and present it to peers.")
    ] = None,
    tls_key: Annotated[str | None, typer.Option(envvar="TLS_KEY", help="PEM private key of --tls-cert.")] = None,
    tls_ca: Annotated[
        str | None, typer.Option(envvar="TLS_CA", help="PEM CA: verify peers (mutual TLS between nodes).")
    ] = None,
    join: Annotated[
        str | None,
        typer.Option(
            envvar="JOIN", help="URL of any member of a running cluster: join it as a learner (then promote)."
        ),
    ] = None,
    allowed_hosts: Annotated[
        str | None,
        typer.Option(
            envvar="ALLOWED_HOSTS",
            help="Host names clients reach this node under, comma-separated "
            "(default: its own, its peers', localhost; * for any).",
        ),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            envvar="RAKIT_INSECURE",
            help="Serve a non-loopback --host without a cluster secret "
            "(anyone who reaches the node can then change the cluster).",
        ),
    ] = False,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Start although the Raft log is damaged in the middle: drop the damaged record and everything "
            "after it, keep the latest term and vote (safe only while the other members hold those entries; "
            "see SECURITY.md).",
        ),
    ] = False,
    advertise_url: Annotated[
        str | None,
        typer.Option(
            envvar="ADVERTISE_URL",
            help="With --join: the URL the others reach this node at (default http://host:port).",
        ),
    ] = None,
) -> None:
    """Run one rakit node (see docs/api.md, "Starting a node")."""
    try:
        config = build_config(
            node_id=node_id,
            host=host,
            port=port,
            peers=peers,
            redis_url=redis_url,
            data_dir=data_dir,
            cache_capacity=cache_capacity,
            cache_max_bytes=cache_max_bytes,
            max_deliveries=max_deliveries,
            dedup_window=dedup_window,
            tick_ms=tick_ms,
            election_ticks=election_ticks,
            heartbeat_ticks=heartbeat_ticks,
            snapshot_entries=snapshot_entries,
            log_level=log_level.lower(),
            cluster_secret=cluster_secret,
            cluster_secret_file=cluster_secret_file,
            auth_tokens=auth_tokens,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_ca=tls_ca,
            join=join,
            advertise_url=advertise_url,
            insecure=insecure,
            allowed_hosts=allowed_hosts,
            repair_log=repair,
        )
    except ConfigError as exc:
        fail(str(exc))
        return
    from rakit.server.serve import ServeError, serve

    try:
        serve(config)  # reads the tokens file (rakit.security.tokens): a malformed one is a ConfigError
    except ConfigError as exc:
        fail(str(exc))
    except ServeError as exc:
        fail(str(exc), code=1)


@app.command()
def recover(
    node_id: Annotated[str, typer.Option("--id", help="This node's id (it becomes the only member).")],
    data_dir: Annotated[str, typer.Option(help="The node's data dir (the node must be stopped).")],
    url: Annotated[str, typer.Option(help="The URL this node will serve at, e.g. http://10.0.0.5:8001.")],
) -> None:
    """Offline: turn one stopped node's data dir into a new one-member cluster keeping all its state."""
    from rakit.config import ConfigError, parse_peers
    from rakit.node.recover import RecoverError
    from rakit.node.recover import recover as run_recover

    try:
        parse_peers(f"{node_id}={url}")
        done = run_recover(data_dir, node_id, url.rstrip("/"))
    except (ConfigError, RecoverError) as exc:
        fail(str(exc), code=1)
        return
    print(
        f"recovered {node_id} at log index {done.index} (term {done.term}) as a one-member cluster; "
        f"kept {done.past_commit} entries past the saved commit index; the old log is kept as {done.backup}"
    )
    print(
        f"next: rakit node --id {node_id} --peers {node_id}={url.rstrip('/')} --data-dir {data_dir} "
        f"(with the cluster secret), then bring the others back with empty data dirs: "
        f"rakit node --join {url.rstrip('/')} ..., rakit member promote <id>"
    )


@app.command()
def up(
    nodes: Annotated[int, typer.Option(help="Cluster size: 1, 3 or 5.")] = 3,
    host: Annotated[str, typer.Option(help="Address the nodes listen on.")] = "127.0.0.1",
    base_port: Annotated[int, typer.Option(help="node1 listens here, node2 on the next port, ...")] = 8001,
    redis_url: Annotated[
        str | None, typer.Option(envvar="REDIS_URL", help="Use this Redis instead of starting one.")
    ] = None,
    redis_port: Annotated[int, typer.Option(help="Port for the Redis that rakit up starts.")] = 6390,
    data_root: Annotated[
        str, typer.Option(envvar="RAKIT_DATA", help="Folder for every node's data dir.")
    ] = "./rakit-data",
    fresh: Annotated[bool, typer.Option("--fresh", help="Wipe the data folder first.")] = False,
) -> None:
    """Start a local cluster and the Redis it needs; Ctrl-C stops everything."""
    from rakit.launcher import LaunchError, run_up

    if nodes not in (1, 3, 5):
        fail("--nodes must be 1, 3 or 5")
    try:
        code = run_up(
            nodes=nodes,
            host=host,
            base_port=base_port,
            redis_url=redis_url,
            redis_port=redis_port,
            data_root=data_root,
            fresh=fresh,
        )
    except LaunchError as exc:
        fail(str(exc), code=1)
        return
    raise typer.Exit(code)


def _register_client_commands() -> None:
    from rakit.cli_client import register
    from rakit.cli_coord import register as register_coordination
    from rakit.cli_kv import register as register_kv

    register(app)
    register_coordination(app)
    register_kv(app)
    from rakit.chaos.cli import register as register_chaos

    register_chaos(app)


_register_client_commands()


def main(argv: list[str] | None = None) -> None:
    """Entry point; usage errors become one ``rakit: error: ...`` line (exit 2)."""
    args = sys.argv[1:] if argv is None else argv
    command = typer.main.get_command(app)
    try:
        result = command.main(args or ["--help"], prog_name="rakit", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: bad option, bad value, missing value
        message = " ".join(str(getattr(exc, "format_message", exc.__str__)()).split())
        print(f"rakit: error: {message} (see 'rakit --help')", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
