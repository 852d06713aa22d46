"""``rakit status | lock | queue | cache``: the cluster from the command line, through ``rakit.Client``.

``rakit session | semaphore | election | elect`` and ``rakit lock run`` live in
``rakit.cli_coord`` (registered by ``rakit.cli`` after this module's ``register``).

Every command takes ``--nodes`` (or ``$RAKIT_NODES``; default: the local
cluster of ``rakit up``), ``--token`` (or ``$RAKIT_TOKEN``: the API token, when
the cluster runs with ``--auth-tokens``) and ``--json``.  Output is a coloured table when a
terminal is attached, plain text otherwise, JSON with ``--json``.  An error
answered by the cluster prints one ``rakit: error: <code>: <detail>`` line
and exits 1.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from rakit.client import Client, RakitError, calls

Nodes = Annotated[
    str | None,
    typer.Option("--nodes", envvar="RAKIT_NODES", help="Node URLs, comma-separated (default: the local cluster)."),
]
ApiToken = Annotated[
    str | None,
    typer.Option("--token", envvar="RAKIT_TOKEN", help="API token, when the cluster runs with --auth-tokens."),
]
Secret = Annotated[
    str | None,
    typer.Option(
        "--cluster-secret",
        envvar="CLUSTER_SECRET",
        show_default=False,
        help="The cluster secret (or CLUSTER_SECRET_FILE): membership changes and leader transfer are signed with it.",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ClientId = Annotated[str, typer.Option("--client-id", "-c", help="The lock holder's id.")]
ConsumerId = Annotated[str, typer.Option("--consumer-id", "-c", help="The consumer's id.")]

console = Console()
err_console = Console(stderr=True)

lock_app = typer.Typer(help="Distributed locks: acquire, release, renew, status, watch, run.", no_args_is_help=True)
queue_app = typer.Typer(help="Queues: push, pop, ack, nack, stats, dead, redrive.", no_args_is_help=True)
cache_app = typer.Typer(help="The cache: get, set, delete, stats.", no_args_is_help=True)


@contextmanager
def connected(nodes: str | None, token: str | None = None, secret: str | None = None) -> Iterator[Client]:
    try:
        client = Client(nodes, attempts=4, retry_deadline=10.0, token=token, cluster_secret=secret)
    except (ValueError, OSError) as exc:
        err_console.print(f"rakit: error: {exc}", markup=False)
        raise typer.Exit(2) from None
    try:
        yield client
    except (RakitError, ValueError) as exc:
        err_console.print(f"rakit: error: {exc}", markup=False)
        raise typer.Exit(1) from None
    finally:
        client.close()


def emit(data: Any, as_json: bool, table: Callable[[Any], Table | str] | None = None) -> None:
    if as_json or table is None:
        print(json.dumps(data, indent=None if not sys.stdout.isatty() else 2, default=_default))
        return
    rendered = table(data)
    if isinstance(rendered, str):
        print(rendered)
    else:
        console.print(rendered)


def _default(obj: Any) -> Any:
    if hasattr(obj, "__dataclass_fields__"):
        return {k: getattr(obj, k) for k in obj.__dataclass_fields__}
    raise TypeError(f"cannot encode {type(obj).__name__}")


def parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text  # a bare word is a string value


def kv_table(title: str) -> Callable[[dict[str, Any]], Table]:
    def render(data: dict[str, Any]) -> Table:
        table = Table(title=title, show_header=False)
        table.add_column(style="bold")
        table.add_column()
        for key, value in data.items():
            table.add_row(str(key), json.dumps(value) if isinstance(value, (dict, list)) else str(value))
        return table

    return render


# -- status -----------------------------------------------------------------------


def status_table(nodes: list[dict[str, Any]]) -> Table:
    table = Table(title="rakit cluster")
    for column in ("node", "url", "role", "term", "leader", "commit", "applied", "health"):
        table.add_column(column, justify="right" if column in ("term", "commit", "applied") else "left")
    for n in nodes:
        role = n.get("role", "-")
        style = {"leader": "bold green", "follower": "cyan"}.get(role, "yellow")
        table.add_row(
            n.get("node_id", "?"),
            n["url"],
            f"[{style}]{role}[/]",
            str(n.get("term", "-")),
            str(n.get("leader_id") or "-"),
            str(n.get("commit_index", "-")),
            str(n.get("last_applied", "-")),
            "[green]ok[/]" if n["ok"] else f"[red]down[/] {n.get('error', '')[:60]}",
        )
    return table


def status(
    nodes: Nodes = None,
    token: ApiToken = None,
    as_json: AsJson = False,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh every second until Ctrl-C.")] = False,
    wait_leader: Annotated[float, typer.Option(help="Wait up to this many seconds for a leader first.")] = 0.0,
) -> None:
    """A table of every node: role, term, leader, commit/applied index, health."""
    with connected(nodes, token) as client:
        if wait_leader > 0:
            deadline = time.monotonic() + wait_leader
            with console.status("waiting for a leader ...", spinner="dots"):
                while not any(n.get("role") == "leader" for n in client.status()):
                    if time.monotonic() >= deadline:
                        err_console.print(f"rakit: error: no leader within {wait_leader:g} s")
                        raise typer.Exit(1)
                    time.sleep(0.2)
        if watch and not as_json:
            with Live(status_table(client.status()), console=console, refresh_per_second=2) as live:
                try:
                    while True:
                        time.sleep(1.0)
                        live.update(status_table(client.status()))
                except KeyboardInterrupt:
                    return
        emit(client.status(), as_json, status_table)


# -- locks --------------------------------------------------------------------------


@lock_app.command("acquire")
def lock_acquire(
    resource: str,
    client_id: ClientId,
    mode: Annotated[str, typer.Option(help="exclusive or shared.")] = "exclusive",
    ttl: Annotated[float, typer.Option(help="Lease in seconds (not renewed: this command exits).")] = 30.0,
    timeout: Annotated[float, typer.Option(help="Seconds to wait in line (0: fail at once).")] = 0.0,
    nodes: Nodes = None,
    token: ApiToken = None,
    as_json: AsJson = False,
) -> None:
    """Acquire a lock for CLIENT_ID; prints the grant and its fencing token."""
    if mode not in ("exclusive", "shared"):
        err_console.print("rakit: error: --mode must be exclusive or shared")
        raise typer.Exit(2)
    with connected(nodes, token) as client:
        with (
            console.status(f"waiting for {resource} ...", spinner="dots")
            if timeout > 0 and console.is_terminal
            else _nothing()
        ):
            grant = client.acquire(resource, client_id, mode=mode, ttl=ttl, timeout=timeout)  # type: ignore[arg-type]
        emit(grant, as_json, kv_table(f"granted {resource}"))


@contextmanager
def _nothing() -> Iterator[None]:
    yield


@lock_app.command("release")
def lock_release(
    resource: str,
    client_id: ClientId,
    fencing_token: Annotated[
        int | None, typer.Option("--fencing-token", help="Only if this is the current fencing token.")
    ] = None,
    nodes: Nodes = None,
    token: ApiToken = None,
    as_json: AsJson = False,
) -> None:
    """Release CLIENT_ID's hold on RESOURCE."""
    with connected(nodes, token) as client:
        client.release(resource, client_id, fencing_token)
        emit({"released": True, "resource": resource}, as_json, lambda d: f"released {resource}")


@lock_app.command("renew")
def lock_renew(
    resource: str,
    client_id: ClientId,
    ttl: Annotated[float | None, typer.Option(help="New lease in seconds (default: the hold's own).")] = None,
    nodes: Nodes = None,
    token: ApiToken = None,
    as_json: AsJson = False,
) -> None:
    """Restart CLIENT_ID's lease on RESOURCE."""
    with connected(nodes, token) as client:
        emit(client.renew(resource, client_id, ttl), as_json, kv_table(f"renewed {resource}"))


@lock_app.command("status")
def lock_status(resource: str, nodes: Nodes = None, token: ApiToken = None, as_json: AsJson = False) -> None:
    """Holders, waiters, mode and highest fencing token of RESOURCE (linearizable)."""
    with connected(nodes, token) as client:
        emit(client.lock_status(resource), as_json, kv_table(resource))


@lock_app.command("watch")
def lock_watch(
    resource: str,
    client_id: ClientId,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds (≤ 300).")] = 30.0,
    nodes: Nodes = None,
    token: ApiToken = None,
    as_json: AsJson = False,
) -> None:
    """Wait until CLIENT_ID's hold on RESOURCE ends."""
    with connected(nodes, token) as client:
        with console.status(f"watching {resource} ...", spinner="dots") if console.is_terminal else _nothing():
            answer = client.watch(resource, client_id, timeout)
        emit(answer, as_json, kv_table(f"watch {resource}"))


# -- queue --------------------------------------------------------------------------


def message_table(data: Any) -> Table | str:
    if data is None:
        return "(nothing ready)"
    return kv_table(f"message on {data['topic']}")(data)


@queue_app.command("push")
def queue_push(
    topic: str,
    message: Annotated[str, typer.Argument(help="JSON (a bare word is a string).")],
    message_id: Annotated[str | None, typer.Option(help="Idempotency key (default: random).")] = None,
    nodes: Nodes = None,
    token: ApiToken = None,
    as_json: AsJson = False,
) -> None:
    """Push MESSAGE to TOPIC; prints its message id."""
    with connected(nodes, token) as client:
        mid = client.queue(topic).push(parse_json(message, "message"), message_id=message_id)
        emit({"topic": topic, "message_id": mid}, as_json, lambda d: mid)


@queue_app.command("pop")
def queue_pop(
    topic: str,
    consumer_id: ConsumerId,
    visibility_timeout: Annotated[float, typer.Option(help="Seconds before an un-acked message returns.")] = 30.0,
    wait: Annotated[float, typer.Option(help="Long-poll up to this many seconds (≤ 20).")] = 0.0,
    nodes: Nodes = None,
    token: ApiToken = None,
    as_json: AsJson = False,
) -> None:
    """Pop the next message of TOPIC for CONSUMER_ID (then ack it)."""
    with connected(nodes, token) as client:
        m = client.queue(topic).pop(consumer_id, visibility_timeout=visibility_timeout, wait=wait)
        data = (
            None
            if m is None
            else {
                "topic": m.topic,
                "message_id": m.message_id,
                "message": m.message,
                "delivery_count": m.delivery_count,
            }
        )
        emit(data, as_json, message_table)


@queue_app.command("ack")
def queue_ack(
    topic: str,
    message_id: str,
    consumer_id: ConsumerId,
    nodes: Nodes = None,
    token: ApiToken = None,
    as_json: AsJson = False,
) -> None:
    """Acknowledge MESSAGE_ID, popped by CONSUMER_ID."""
    with connected(nodes, token) as client:
        client.queue(topic).ack(message_id, consumer_id)
        emit({"acked": True}, as_json, lambda d: f"acked {message_id}")


@queue_app.command("nack")
def queue_nack(
    topic: str,
    message_id: str,
    consumer_id: ConsumerId,
    nodes: Nodes = None,
    token: ApiToken = None,
    as_json: AsJson = False,
) -> None:
    """Give MESSAGE_ID back at once (redelivered)."""
    with connected(nodes, token) as client:
        client.queue(topic).nack(message_id, consumer_id)
        emit({"nacked": True}, as_json, lambda d: f"nacked {message_id}")


@queue_app.command("stats")
def queue_stats(topic: str, nodes: Nodes = None, token: ApiToken = None, as_json: AsJson = False) -> None:
    """Ready, in-flight and dead counts of TOPIC, and the node serving it."""
    with connected(nodes, token) as client:
        emit(client.queue(topic).stats(), as_json, kv_table(topic))


@queue_app.command("dead")
def queue_dead(
    topic: str,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    nodes: Nodes = None,
    token: ApiToken = None,
    as_json: AsJson = False,
) -> None:
    """List TOPIC's dead letters."""
    with connected(nodes, token) as client:
        dead = [
            {"message_id": m.message_id, "message": m.message, "delivery_count": m.delivery_count}
            for m in client.queue(topic).dead(limit)
        ]

        def render(rows: list[dict[str, Any]]) -> Table:
            table = Table(title=f"dead letters of {topic}")
            for column in ("message_id", "delivery_count", "message"):
                table.add_column(column)
            for r in rows:
                table.add_row(r["message_id"], str(r["delivery_count"]), json.dumps(r["message"])[:80])
            return table

        emit(dead, as_json, render)


@queue_app.command("redrive")
def queue_redrive(
    topic: str,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    nodes: Nodes = None,
    token: ApiToken = None,
    as_json: AsJson = False,
) -> None:
    """Move TOPIC's dead letters back to the queue."""
    with connected(nodes, token) as client:
        moved = client.queue(topic).redrive(limit)
        emit({"redriven": moved}, as_json, lambda d: f"redrove {moved} message(s)")


# -- cache --------------------------------------------------------------------------


@cache_app.command("get")
def cache_get(key: str, nodes: Nodes = None, token: ApiToken = None, as_json: AsJson = False) -> None:
    """The value of KEY (exit 1 when no node holds it)."""
    with connected(nodes, token) as client:
        entry = client.cache.get_entry(key)
        if entry is None:
            err_console.print(f"rakit: error: not_found: no node holds {key!r}", markup=False)
            raise typer.Exit(1)
        emit(entry, as_json, lambda e: json.dumps(e["value"]))


@cache_app.command("set")
def cache_set(
    key: str,
    value: Annotated[str, typer.Argument(help="JSON (a bare word is a string).")],
    ttl: Annotated[float | None, typer.Option(help="Expire after this many seconds.")] = None,
    nodes: Nodes = None,
    token: ApiToken = None,
    as_json: AsJson = False,
) -> None:
    """Set KEY to VALUE on every node (peers drop older copies first)."""
    with connected(nodes, token) as client:
        version = client.cache.set(key, parse_json(value, "value"), ttl)
        emit({"key": key, "version": version}, as_json, lambda d: version)


@cache_app.command("delete")
def cache_delete(key: str, nodes: Nodes = None, token: ApiToken = None, as_json: AsJson = False) -> None:
    """Delete KEY everywhere."""
    with connected(nodes, token) as client:
        deleted = client.cache.delete(key)
        emit({"deleted": deleted}, as_json, lambda d: "deleted" if deleted else "(no node held it)")


@cache_app.command("stats")
def cache_stats(nodes: Nodes = None, token: ApiToken = None, as_json: AsJson = False) -> None:
    """Cache statistics of every node."""
    with connected(nodes, token) as client:
        rows = []
        for url in client.nodes:
            try:
                rows.append({"url": url, "ok": True, **client.cache.stats(url)})
            except RakitError as exc:
                rows.append({"url": url, "ok": False, "error": str(exc)})

        def render(data: list[dict[str, Any]]) -> Table:
            table = Table(title="rakit cache")
            columns = (
                "node",
                "serving",
                "size",
                "hits",
                "misses",
                "peer_fetches",
                "evictions",
                "invalidations_sent",
                "invalidations_received",
            )
            for column in columns:
                table.add_column(column, justify="left" if column in ("node", "serving") else "right")
            for r in data:
                if not r["ok"]:
                    table.add_row(r["url"], f"[red]down[/] {r['error'][:40]}", *[""] * (len(columns) - 2))
                    continue
                table.add_row(
                    r["node"], "[green]yes[/]" if r["serving"] else "[yellow]no[/]", *(str(r[c]) for c in columns[2:])
                )
            return table

        emit(rows, as_json, render)


# -- membership ---------------------------------------------------------------------

member_app = typer.Typer(help="Cluster membership: list, add (as a learner), promote, remove.", no_args_is_help=True)


def members_table(view: dict[str, Any]) -> Table:
    table = Table(title=f"members (leader: {view.get('leader') or 'none'})", title_justify="left")
    for column in ("id", "role", "url", "caught up"):
        table.add_column(column)
    for m in view.get("voters", []):
        table.add_row(
            m["id"], "[bold green]leader[/]" if m["id"] == view.get("leader") else "voter", m.get("url") or "-", ""
        )
    for m in view.get("learners", []):
        caught = m.get("caught_up")
        table.add_row(
            m["id"],
            "[yellow]learner[/]",
            m.get("url") or "-",
            "-" if caught is None else ("[green]yes[/]" if caught else "[red]no[/]"),
        )
    return table


@member_app.command("list")
def member_list(nodes: Nodes = None, token: ApiToken = None, as_json: AsJson = False) -> None:
    """Voters and learners with their URLs (learners: caught up, as the leader sees it)."""
    with connected(nodes, token) as client:
        view = client.members()
        leader_url = next((m["url"] for m in view.get("voters", []) if m["id"] == view.get("leader")), None)
        if leader_url and view.get("node_id") != view.get("leader"):
            with contextlib.suppress(RakitError):  # the leader's view says which learners are caught up
                view = client._run(calls.members(), leader_url)
        emit(view, as_json, members_table)


@member_app.command("add")
def member_add(
    node_id: Annotated[str, typer.Argument(help="The new node's --id.")],
    url: Annotated[str, typer.Argument(help="Where it serves, e.g. http://10.0.0.4:8001.")],
    nodes: Nodes = None,
    token: ApiToken = None,
    secret: Secret = None,
    as_json: AsJson = False,
) -> None:
    """Add a node as a learner (``rakit node --join`` does this itself)."""
    with connected(nodes, token, secret) as client:
        emit(client.add_member(node_id, url), as_json, kv_table("added as a learner"))


@member_app.command("promote")
def member_promote(
    node_id: Annotated[str, typer.Argument(help="A caught-up learner.")],
    nodes: Nodes = None,
    token: ApiToken = None,
    secret: Secret = None,
    as_json: AsJson = False,
) -> None:
    """Make a caught-up learner a voter."""
    with connected(nodes, token, secret) as client:
        emit(client.promote(node_id), as_json, kv_table("promoted"))


@member_app.command("remove")
def member_remove(
    node_id: Annotated[str, typer.Argument(help="A voter or learner.")],
    nodes: Nodes = None,
    token: ApiToken = None,
    secret: Secret = None,
    as_json: AsJson = False,
) -> None:
    """Remove a member (then stop its process)."""
    with connected(nodes, token, secret) as client:
        emit(client.remove_member(node_id), as_json, kv_table("removed"))


def transfer_leader(
    to: Annotated[str | None, typer.Option(help="The voter to hand leadership to.")] = None,
    nodes: Nodes = None,
    token: ApiToken = None,
    secret: Secret = None,
    as_json: AsJson = False,
) -> None:
    """Hand Raft leadership to another voter (default: the most caught-up one)."""
    with connected(nodes, token, secret) as client:
        emit(client.transfer_leader(to), as_json, kv_table("leadership transferred"))


def register(app: typer.Typer) -> None:
    app.command("status")(status)
    app.add_typer(member_app, name="member")
    app.command("transfer-leader")(transfer_leader)
    app.add_typer(lock_app, name="lock")
    app.add_typer(queue_app, name="queue")
    app.add_typer(cache_app, name="cache")
