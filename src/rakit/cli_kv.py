"""``rakit kv get | put | del | range | incr | txn | watch``: the KV map from the command line (``client.kv``).

Same conventions as ``rakit.cli_client`` (``--nodes``, ``--token``, ``--json``;
a refusal prints one ``rakit: error: <code>: <detail>`` line and exits 1, a
failed ``--if-revision`` with the key's current revision; bad usage exits 2).
Values are JSON; a bare word is a string.

>>> rakit kv put config:mode blue
>>> rakit kv get config:mode --json | jq .mod_revision
>>> rakit kv put config:mode green --if-revision 17
>>> rakit kv range --prefix config:
>>> echo '{"compare": [{"key": "a", "target": "value", "op": "==", "value": 1}],
...        "success": [{"put": {"key": "a", "value": 2}}]}' | rakit kv txn
>>> rakit kv watch --prefix config: --count 10
"""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.table import Table

from rakit.cli_client import ApiToken, AsJson, Nodes, connected, emit, err_console, kv_table, parse_json
from rakit.client.kv_calls import KvRecord, TxnResult
from rakit.client.kv_txn import Compare, Op
from rakit.client.kv_watch import KvEvent

__all__ = ["register", "txn_from_json"]

kv_app = typer.Typer(help="The KV map: get, put, del, range, incr, txn, watch.", no_args_is_help=True)

Serializable = Annotated[
    bool, typer.Option("--serializable", help="Read the node's own state (faster, possibly stale).")
]
IfRevision = Annotated[
    int | None, typer.Option("--if-revision", help="Only if the key's mod_revision is this (0: only if absent).")
]


def usage(message: str) -> None:
    err_console.print(f"rakit: error: {message}", markup=False)
    raise typer.Exit(2)


def records_table(title: str, records: list[KvRecord]) -> Table:
    table = Table(title=title)
    for column in ("key", "value", "mod_revision", "version"):
        table.add_column(column, justify="right" if column in ("mod_revision", "version") else "left")
    for r in records:
        table.add_row(r.key, json.dumps(r.value)[:100], str(r.mod_revision), str(r.version))
    return table


@kv_app.command("get")
def kv_get(
    key: str,
    serializable: Serializable = False,
    nodes: Nodes = None,
    token: ApiToken = None,
    as_json: AsJson = False,
) -> None:
    """KEY's value and revisions (exit 1 when absent)."""
    with connected(nodes, token) as client:
        record = client.kv.get(key, serializable=serializable)
        if record is None:
            err_console.print(f"rakit: error: not_found: no key {key!r}", markup=False)
            raise typer.Exit(1)
        emit(asdict(record), as_json, kv_table(key))


@kv_app.command("put")
def kv_put(
    key: str,
    value: Annotated[str, typer.Argument(help="JSON (a bare word is a string).")],
    if_revision: IfRevision = None,
    if_absent: Annotated[bool, typer.Option("--if-absent", help="Only if KEY does not exist.")] = False,
    ttl: Annotated[float | None, typer.Option(help="Delete KEY after this many seconds.")] = None,
    session: Annotated[str | None, typer.Option(help="Delete KEY when this session ends.")] = None,
    nodes: Nodes = None,
    token: ApiToken = None,
    as_json: AsJson = False,
) -> None:
    """Set KEY to VALUE; prints the revision of the change."""
    with connected(nodes, token) as client:
        put = client.kv.put(
            key, parse_json(value, "value"), if_revision=if_revision, if_absent=if_absent, ttl=ttl, session=session
        )
        emit(asdict(put), as_json, lambda d: f"revision {put.revision}")


@kv_app.command("del")
def kv_delete(
    key: Annotated[str | None, typer.Argument(help="The key (or --prefix).")] = None,
    prefix: Annotated[str | None, typer.Option(help="Delete every key starting with this.")] = None,
    if_revision: IfRevision = None,
    nodes: Nodes = None,
    token: ApiToken = None,
    as_json: AsJson = False,
) -> None:
    """Delete KEY, or every key under --prefix; prints how many were deleted."""
    if (key is None) == (prefix is None):
        usage("give a KEY or --prefix (--prefix '' deletes every key)")
    if prefix is not None and if_revision is not None:
        usage("--if-revision goes with a KEY, not --prefix")
    with connected(nodes, token) as client:
        if key is not None:
            deleted = client.kv.delete(key, if_revision=if_revision)
        else:
            deleted = client.kv.delete_prefix(prefix or "")
        emit({"deleted": deleted}, as_json, lambda d: f"deleted {deleted}")


@kv_app.command("range")
def kv_range(
    prefix: Annotated[str, typer.Option(help="Keys starting with this (default: all).")] = "",
    limit: Annotated[int, typer.Option(help="At most this many keys (1..10000).")] = 1000,
    after: Annotated[str | None, typer.Option(help="Only keys after this one (the next page).")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every key, page after page (ignores --limit).")] = False,
    serializable: Serializable = False,
    nodes: Nodes = None,
    token: ApiToken = None,
    as_json: AsJson = False,
) -> None:
    """The keys under --prefix in key order, with values and revisions."""
    with connected(nodes, token) as client:
        if every:
            items = list(client.kv.scan(prefix, serializable=serializable))
            data: dict[str, Any] = {"items": items, "more": False}
        else:
            page = client.kv.range(prefix, limit=limit, after=after, serializable=serializable)
            items = page.items
            data = {"items": items, "more": page.more, "revision": page.revision}
        more = " (more: --after " + items[-1].key + ")" if data["more"] and items else ""
        emit(data, as_json, lambda d: records_table(f"keys under {prefix!r}{more}", items))


@kv_app.command("incr")
def kv_incr(
    key: str,
    delta: Annotated[int, typer.Option(help="Add this (may be negative).")] = 1,
    nodes: Nodes = None,
    token: ApiToken = None,
    as_json: AsJson = False,
) -> None:
    """Add --delta to the integer at KEY (absent: 0); prints the new value."""
    with connected(nodes, token) as client:
        value = client.kv.incr(key, delta)
        emit({"key": key, "value": value}, as_json, lambda d: str(value))


def txn_from_json(doc: Any) -> tuple[list[Compare], list[Op], list[Op]]:
    """The compares and branches of a txn document in the API's form (``ValueError`` naming what is wrong)."""
    if not isinstance(doc, dict) or set(doc) - {"compare", "success", "failure"}:
        raise ValueError('a txn is {"compare": [...], "success": [...], "failure": [...]}')
    compares: list[Compare] = []
    for i, c in enumerate(doc.get("compare", [])):
        if not isinstance(c, dict) or not {"key", "target", "op"} <= set(c):
            raise ValueError(f'compare {i} must be {{"key", "target", "op", "value"}}')
        compares.append(Compare(c["key"], c["target"], c["op"], c.get("value")))

    def ops(branch: str) -> list[Op]:
        out: list[Op] = []
        for i, o in enumerate(doc.get(branch, [])):
            if not (isinstance(o, dict) and len(o) == 1 and next(iter(o)) in ("put", "delete", "get")):
                raise ValueError(
                    f'{branch} op {i} must be {{"put": {{...}}}}, {{"delete": {{...}}}} or {{"get": {{...}}}}'
                )
            kind, args = next(iter(o.items()))
            if not isinstance(args, dict) or "key" not in args:
                raise ValueError(f"{branch} op {i} must name a key")
            out.append(Op(kind, args["key"], args.get("value")))
        return out

    return compares, ops("success"), ops("failure")


def txn_table(result: TxnResult) -> Table:
    table = Table(title=f"{'succeeded' if result.succeeded else 'failed'} at revision {result.revision}")
    table.add_column("op")
    table.add_column("result")
    for i, r in enumerate(result.results):
        shown = asdict(r) if isinstance(r, KvRecord) else r
        table.add_row(str(i), json.dumps(shown)[:120])
    return table


@kv_app.command("txn")
def kv_txn(
    doc: Annotated[str | None, typer.Argument(help="The txn as JSON; '-' or nothing: read it from stdin.")] = None,
    nodes: Nodes = None,
    token: ApiToken = None,
    as_json: AsJson = False,
) -> None:
    """If every compare holds run the success ops, else the failure ops: one atomic step.

    DOC: {"compare": [COMPARE...], "success": [OP...], "failure": [OP...]}

    COMPARE: {"key", "target": "value|version|mod_revision|create_revision|exists", "op": "==|!=|<|>", "value"}

    OP: {"put": {"key", "value"}}, {"delete": {"key"}} or {"get": {"key"}}
    """
    text = sys.stdin.read() if doc in (None, "-") else doc
    try:
        compares, success, failure = txn_from_json(json.loads(text or ""))
    except ValueError as exc:
        usage(f"txn: {exc}")
        return
    with connected(nodes, token) as client:
        emit(client.kv.txn(compares, success, failure), as_json, txn_table)


def event_line(event: KvEvent) -> str:
    if event.type == "compacted":
        return f"{event.revision} compacted (history from {event.compact_revision}): {len(event.snapshot)} keys now"
    value = f" {json.dumps(event.value)}" if event.type == "put" else ""
    return f"{event.revision} {event.type} {event.key}{value}"


@kv_app.command("watch")
def kv_watch(
    key: Annotated[str | None, typer.Argument(help="The key (or --prefix).")] = None,
    prefix: Annotated[str | None, typer.Option(help="Every key starting with this ('' : all).")] = None,
    from_revision: Annotated[
        int | None, typer.Option("--from-revision", help="Start at this revision (default: from now).")
    ] = None,
    count: Annotated[int | None, typer.Option(help="Stop after this many events.")] = None,
    nodes: Nodes = None,
    token: ApiToken = None,
    as_json: AsJson = False,
) -> None:
    """Print each change of KEY (or under --prefix), one line each, until Ctrl-C (or --count events).

    A 'compacted' line: changes were lost from the history; the keys were read again (--json: "snapshot").

    The changes after the compacted line's revision follow it.
    """
    if (key is None) == (prefix is None):
        usage("give a KEY or --prefix (--prefix '' watches every key)")
    if count is not None and count < 1:
        usage("--count must be at least 1")
    with connected(nodes, token) as client, contextlib.suppress(KeyboardInterrupt):
        seen = 0
        for event in client.kv.watch(key, prefix=prefix, start_revision=from_revision):
            if as_json:
                print(json.dumps(asdict(event)), flush=True)
            else:
                print(event_line(event), flush=True)
            seen += 1
            if count is not None and seen >= count:
                return


def register(app: typer.Typer) -> None:
    app.add_typer(kv_app, name="kv")
