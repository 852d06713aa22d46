"""``rakit up``: Redis and a local cluster in the foreground, with a live status table."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from rakit.local.cluster import LocalCluster, pick_leader
from rakit.local.node import NodeProcess
from rakit.local.procs import LaunchError, port_is_free
from rakit.local.redis import find_redis_server, redis_ping

_OWN_ENTRY = re.compile(r"^(node\d+|redis|logs)$")


def _wipe(data_root: Path) -> None:
    """``--fresh``: remove ``data_root``, refusing anything that does not look like ours."""
    if not data_root.exists():
        return
    if not data_root.is_dir():
        raise LaunchError(f"--data-root {data_root} is not a folder")
    cwd, home = Path.cwd().resolve(), Path.home().resolve()
    real = data_root.resolve()
    if real == Path(real.anchor) or real == home or real == cwd or real in cwd.parents:
        raise LaunchError(f"refusing to wipe {data_root}: choose a dedicated --data-root")
    strangers = sorted(p.name for p in real.iterdir() if not _OWN_ENTRY.match(p.name))
    if strangers:
        raise LaunchError(f"refusing to wipe {data_root}: it holds {strangers[0]!r}, which rakit up did not create")
    shutil.rmtree(real)


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _status_cells(node: NodeProcess, s: Mapping[str, Any] | None) -> tuple[str, str, str, str, str, str]:
    """(role, term, leader, commit, applied, health) for one node."""
    if s:
        return (
            str(s.get("role", "?")),
            str(s.get("term", "?")),
            str(s.get("leader_id") or "-"),
            str(s.get("commit_index", "?")),
            str(s.get("last_applied", "?")),
            "up",
        )
    if not node.alive:
        health = "down"
    elif node.paused:
        health = "paused"
    else:
        health = "no answer"
    return ("-", "-", "-", "-", "-", health)


def _render(cluster: LocalCluster, statuses: Mapping[str, Mapping[str, Any] | None]) -> Any:
    from rich import box
    from rich.console import Group
    from rich.spinner import Spinner
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title="rakit cluster",
        title_justify="left",
        expand=False,
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1, 0, 0),
    )
    for col in ("node", "url", "role", "term", "leader", "commit", "applied", "health"):
        justify: Literal["right", "left"] = "right" if col in ("term", "commit", "applied") else "left"
        table.add_column(col, justify=justify, no_wrap=col in ("node", "url"))
    styles = {"leader": "bold green", "follower": "cyan", "candidate": "yellow"}
    for node_id, node in cluster.nodes.items():
        role, term, leader, commit, applied, health = _status_cells(node, statuses.get(node_id))
        health_style = "green" if health == "up" else ("yellow" if health in ("no answer", "paused") else "bold red")
        table.add_row(
            node_id,
            node.url,
            Text(role, style=styles.get(role, "dim")),
            term,
            leader,
            commit,
            applied,
            Text(health, style=health_style),
        )
    dead = [
        f"{i} {_exit_text(n.returncode)} (log: {n.log_path})"
        for i, n in cluster.nodes.items()
        if n.proc is not None and n.returncode is not None
    ]
    if dead:
        table.caption = "\n".join(dead)
        table.caption_justify = "left"
    picked = pick_leader(statuses)
    if picked is None:
        footer: Any = Spinner("dots", text=Text(" waiting for a leader…", style="yellow"))
    else:
        term = (statuses.get(picked) or {}).get("term", "?")
        footer = Text(f"leader: {picked} (term {term})   Ctrl-C stops everything", style="green")
    return Group(table, footer)


def _plain_line(cluster: LocalCluster, statuses: Mapping[str, Mapping[str, Any] | None]) -> str:
    leader = pick_leader(statuses)
    parts = [time.strftime("%H:%M:%S"), f"leader={leader or 'none'}"]
    for node_id, node in cluster.nodes.items():
        role, term, _, commit, applied, health = _status_cells(node, statuses.get(node_id))
        if health == "up":
            parts.append(f"{node_id}={role} term={term} commit={commit} applied={applied}")
        elif health == "down" and node.returncode is not None:
            parts.append(f"{node_id}=down ({_exit_text(node.returncode)})")
        else:
            parts.append(f"{node_id}={health}")
    return " | ".join(parts)


def run_up(
    nodes: int,
    host: str,
    base_port: int,
    redis_url: str | None,
    redis_port: int,
    data_root: str,
    fresh: bool,
) -> int:
    """The ``rakit up`` command: start Redis (unless ``redis_url``) and ``nodes`` nodes,
    show their status until Ctrl-C / SIGTERM, then stop the nodes and Redis; returns 0.

    Raises ``LaunchError`` (one-line message) when something cannot start.
    """
    from rich.console import Console

    console = Console(highlight=False)
    root = Path(data_root).absolute()
    node_ports = [base_port + i for i in range(nodes)]
    if not all(1 <= p <= 65535 for p in node_ports):
        raise LaunchError(f"--base-port {base_port} leaves no room for {nodes} nodes below 65536")

    if redis_url is not None:
        if not redis_ping(redis_url, timeout=3.0):
            raise LaunchError(f"Redis at {redis_url} does not answer PING within 3 s")
    elif redis_port in node_ports:
        raise LaunchError(f"--redis-port {redis_port} collides with a node port ({node_ports[0]}..{node_ports[-1]})")
    wanted = [(f"node{k + 1}", p) for k, p in enumerate(node_ports)]
    if redis_url is None:
        wanted.append(("Redis", redis_port))
    for what, port in wanted:
        bind_host = host if what != "Redis" else "127.0.0.1"
        if not port_is_free(port, bind_host):
            flag = "--redis-port" if what == "Redis" else "--base-port"
            raise LaunchError(f"port {port} ({what}) on {bind_host} is already in use: choose another {flag}")

    if fresh:
        _wipe(root)
    root.mkdir(parents=True, exist_ok=True)

    cluster = LocalCluster(nodes, root, host=host, base_port=base_port, redis_url=redis_url, redis_port=redis_port)

    stop_requested = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop_requested.set()

    handled = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
    previous = {sig: signal.signal(sig, on_signal) for sig in handled}
    try:
        try:
            if cluster.redis is not None:
                console.print(f"starting Redis on port {cluster.redis.port} ({find_redis_server()}) …")
            cluster.start(wait=False)
        except OSError as exc:
            raise LaunchError(f"could not start the cluster: {exc}") from exc
        _print_endpoints(console, cluster, owned_redis=redis_url is None)
        try:
            _watch(console, cluster, stop_requested)
        finally:
            console.print("stopping nodes …")
            cluster.stop()
            if cluster.redis is not None:
                console.print("Redis stopped.")
            console.print("all stopped.")
    finally:
        cluster._pool.shutdown(wait=False, cancel_futures=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _print_endpoints(console: Any, cluster: LocalCluster, owned_redis: bool) -> None:
    first = next(iter(cluster.nodes.values())).url
    console.print(f"[bold]rakit[/bold]: {cluster.size} node(s)")
    for node_id, node in cluster.nodes.items():
        console.print(f"  {node_id:<7} {node.url}")
    how = f"started here, files in {cluster.redis.data_dir}" if cluster.redis is not None else "external"
    console.print(f"  {'redis':<7} {cluster.redis_url} ({how})")
    console.print(f"  {'logs':<7} {cluster.log_dir}{os.sep}")
    if cluster.secret_generated:
        console.print(
            f"  {'secret':<7} node-to-node calls are signed with a random secret made for this run "
            "(set CLUSTER_SECRET to choose one)",
            soft_wrap=True,
        )
    elif cluster.cluster_secret is not None:
        console.print(f"  {'secret':<7} node-to-node calls are signed with the given cluster secret")
    console.print(f"  {'ui':<7} {first}/ui  (live dashboard)   {first}/docs  (API reference)")
    console.print("try:")
    console.print(f"  curl -s {first}/status")
    console.print(
        f"  curl -s -X POST {first}/lock/acquire -H 'content-type: application/json' "
        '-d \'{"resource": "r1", "client_id": "me"}\'',
        soft_wrap=True,
    )
    console.print(
        f"  curl -s {first}/lock/status/r1",
        soft_wrap=True,
    )
    nodes = ",".join(n.url for n in cluster.nodes.values())
    console.print(f"  RAKIT_NODES={nodes} .venv/bin/rakit status", soft_wrap=True)
    console.print("Ctrl-C stops everything.")
    console.file.flush()


def _watch(console: Any, cluster: LocalCluster, stop_requested: threading.Event) -> None:
    """Show the status until a stop is requested (live table on a terminal, lines otherwise)."""
    if console.is_terminal:
        from rich.live import Live

        with Live(_render(cluster, {}), console=console, refresh_per_second=8, transient=False) as live:
            while not stop_requested.is_set():
                live.update(_render(cluster, cluster.statuses(timeout=0.4)))
                stop_requested.wait(0.5)
        return
    last_print = 0.0
    last_leader: str | None = None
    while not stop_requested.is_set():
        statuses = cluster.statuses(timeout=0.4)
        leader = pick_leader(statuses)
        now = time.monotonic()
        if now - last_print >= 3.0 or leader != last_leader:
            print(_plain_line(cluster, statuses), flush=True)
            last_print, last_leader = now, leader
        stop_requested.wait(0.5)
