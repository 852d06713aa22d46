"""``rakit session | semaphore | election | elect`` and ``rakit lock run``: API v2 from the command line.

Same conventions as ``rakit.cli_client`` (``--nodes``, ``--token``, ``--json``;
a refusal prints one ``rakit: error: <code>: <detail>`` line and exits 1; bad
usage exits 2).  The one-shot commands keep nothing alive: ``session grant``
opens a session that ends at its ttl unless ``session keepalive`` is run,
``semaphore acquire`` and ``election campaign`` take a lease that ends at its
ttl unless renewed, exactly as ``rakit lock acquire``.  ``lock run``,
``semaphore run`` and ``elect`` hold while a program runs (``rakit.cli_run``).
"""

from __future__ import annotations

import contextlib
import json
from typing import Annotated, Any

import typer
from rich.table import Table

from rakit.cli_client import (
    ApiToken,
    AsJson,
    Nodes,
    connected,
    console,
    emit,
    err_console,
    kv_table,
    lock_app,
    parse_json,
)
from rakit.cli_run import Hold, Supervisor
from rakit.client import coord_calls
from rakit.client.errors import LockConflict, LockTimeout, RakitError

__all__ = ["register"]

session_app = typer.Typer(help="Sessions: grant, keepalive, revoke, show.", no_args_is_help=True)
semaphore_app = typer.Typer(help="Counting semaphores: acquire, release, renew, status, run.", no_args_is_help=True)
election_app = typer.Typer(
    help="Leader election: campaign, renew, proclaim, resign, leader, observe.", no_args_is_help=True
)

ClientId = Annotated[str, typer.Option("--client-id", "-c", help="The holder's id.")]
CandidateId = Annotated[str, typer.Option("--candidate-id", "-c", help="The candidate's id.")]
SessionId = Annotated[str, typer.Argument(help="The session id `session grant` printed.")]
Wait = Annotated[float, typer.Option("--timeout", help="Seconds to wait in line, ≤ 300 (0: fail at once).")]
RunClientId = Annotated[
    str | None, typer.Option("--client-id", "-c", help="The holder's id (default: this host and process).")
]
RunWait = Annotated[
    float | None,
    typer.Option("--timeout", help="Seconds to wait for the grant (default: without end; 0: fail at once)."),
]
Grace = Annotated[
    float, typer.Option("--grace", help="Seconds between SIGTERM and SIGKILL when the program must stop.")
]
Command = Annotated[list[str] | None, typer.Argument(help="The program and its arguments, after --.")]

RUN_HELP = (
    "The program gets the fencing token in $RAKIT_FENCING_TOKEN (and $RAKIT_RESOURCE, $RAKIT_CLIENT_ID). "
    "rakit exits with its status (128+N if signal N ended it). If the hold is lost the program gets "
    "SIGTERM, then SIGKILL after --grace seconds, and rakit exits 1 after a 'rakit: error: lost ...' line. "
    "Ctrl-C or SIGTERM to rakit is forwarded to the program; rakit waits for it (at most --grace s) and "
    "releases. On Linux the program is SIGKILLed if rakit itself is SIGKILLed; elsewhere it is not, "
    "and should check its fencing token where it writes. The program runs in its own process group."
)


def _command(cmd: list[str] | None) -> list[str]:
    if not cmd:
        err_console.print("rakit: error: no command to run: put it after --, e.g. -- ./job.sh", markup=False)
        raise typer.Exit(2)
    return cmd


def _check_grace(grace: float) -> None:
    if grace < 0:
        err_console.print("rakit: error: --grace must be >= 0", markup=False)
        raise typer.Exit(2)


# -- sessions ---------------------------------------------------------------------


@session_app.command("grant")
def session_grant(
    client_id: ClientId,
    ttl: Annotated[float, typer.Option(help="Lease in seconds (not kept alive: this command exits).")] = 10.0,
    lock_delay: Annotated[float | None, typer.Option(help="Seconds its locks stay ungranted after it expires.")] = None,
    nodes: Nodes = None,
    token: ApiToken = None,
    as_json: AsJson = False,
) -> None:
    """Open a session for CLIENT_ID; prints its session id (keep it with `session keepalive`)."""
    with connected(nodes, token) as client:
        emit(client._run(coord_calls.session_grant(client_id, ttl, lock_delay)), as_json, kv_table("session"))


@session_app.command("keepalive")
def session_keepalive(
    session_id: SessionId, nodes: Nodes = None, token: ApiToken = None, as_json: AsJson = False
) -> None:
    """Restart the session's lease at its full ttl."""
    with connected(nodes, token) as client:
        emit(client._run(coord_calls.session_keepalive(session_id)), as_json, kv_table("kept alive"))


@session_app.command("revoke")
def session_revoke(session_id: SessionId, nodes: Nodes = None, token: ApiToken = None, as_json: AsJson = False) -> None:
    """End the session and everything attached to it (one Raft entry)."""
    with connected(nodes, token) as client:
        emit(client._run(coord_calls.session_revoke(session_id)), as_json, lambda d: f"revoked {session_id}")


@session_app.command("show")
def session_show(session_id: SessionId, nodes: Nodes = None, token: ApiToken = None, as_json: AsJson = False) -> None:
    """The session's holder, ttl, remaining lease and what is attached to it (linearizable)."""
    with connected(nodes, token) as client:
        emit(client._run(coord_calls.session_info(session_id)), as_json, kv_table(f"session {session_id}"))


# -- semaphores -------------------------------------------------------------------


def semaphore_table(data: dict[str, Any]) -> Table | str:
    limit = data.get("limit")
    title = f"semaphore {data['name']}: " + ("unused" if limit is None else f"{data['available']}/{limit} available")
    if not data.get("holders") and not data.get("waiters"):
        return title
    table = Table(title=title, title_justify="left")
    for column in ("", "client_id", "permits", "fencing_token"):
        table.add_column(column, justify="right" if column in ("permits", "fencing_token") else "left")
    for h in data.get("holders", []):
        table.add_row("[green]holder[/]", h["client_id"], str(h["permits"]), str(h["fencing_token"]))
    for position, w in enumerate(data.get("waiters", []), 1):
        table.add_row(f"[yellow]waiter {position}[/]", w["client_id"], str(w["permits"]), "-")
    return table


@semaphore_app.command("acquire")
def semaphore_acquire(
    name: str,
    client_id: ClientId,
    limit: Annotated[int, typer.Option("--limit", help="The semaphore's number of permits.")],
    permits: Annotated[int, typer.Option(help="How many permits to take at once.")] = 1,
    ttl: Annotated[float, typer.Option(help="Lease in seconds (not renewed: this command exits).")] = 30.0,
    timeout: Wait = 0.0,
    nodes: Nodes = None,
    token: ApiToken = None,
    as_json: AsJson = False,
) -> None:
    """Take PERMITS of semaphore NAME for CLIENT_ID; prints the grant and its fencing token."""
    with connected(nodes, token) as client:
        call = coord_calls.semaphore_acquire(name, client_id, limit, permits, ttl, timeout, None)
        emit(client._run(call), as_json, kv_table(f"granted {name}"))


@semaphore_app.command("release")
def semaphore_release(
    name: str, client_id: ClientId, nodes: Nodes = None, token: ApiToken = None, as_json: AsJson = False
) -> None:
    """Give CLIENT_ID's permits of NAME back."""
    with connected(nodes, token) as client:
        answer = client._run(coord_calls.semaphore_release(name, client_id))
        emit({"name": name, **answer}, as_json, lambda d: f"released {name}")


@semaphore_app.command("renew")
def semaphore_renew(
    name: str,
    client_id: ClientId,
    ttl: Annotated[float | None, typer.Option(help="New lease in seconds (default: the hold's own).")] = None,
    nodes: Nodes = None,
    token: ApiToken = None,
    as_json: AsJson = False,
) -> None:
    """Restart CLIENT_ID's lease on its permits of NAME."""
    with connected(nodes, token) as client:
        emit(client._run(coord_calls.semaphore_renew(name, client_id, ttl)), as_json, kv_table(f"renewed {name}"))


@semaphore_app.command("status")
def semaphore_status(name: str, nodes: Nodes = None, token: ApiToken = None, as_json: AsJson = False) -> None:
    """Limit, available permits, holders and waiters (arrival order) of NAME (linearizable)."""
    with connected(nodes, token) as client:
        emit(client.semaphore_status(name), as_json, semaphore_table)


# -- elections ----------------------------------------------------------------------


def leader_table(data: dict[str, Any]) -> Table | str:
    leader = data.get("leader")
    title = f"election {data['name']}: " + (f"{leader} leads (term {data.get('term')})" if leader else "no leader")
    if not leader and not data.get("candidates"):
        return title
    table = Table(title=title, title_justify="left")
    table.add_column("")
    table.add_column("candidate")
    table.add_column("value")
    if leader:
        table.add_row("[bold green]leader[/]", leader, json.dumps(data.get("value")))
    for position, candidate in enumerate(c for c in data.get("candidates", []) if c != leader):
        table.add_row(f"[yellow]waiting {position + 1}[/]", candidate, "")
    return table


@election_app.command("campaign")
def election_campaign(
    name: str,
    candidate_id: CandidateId,
    value: Annotated[str, typer.Option(help="The leader's value: JSON (a bare word is a string).")] = "null",
    ttl: Annotated[float, typer.Option(help="Lease in seconds (not renewed: this command exits).")] = 10.0,
    timeout: Wait = 0.0,
    nodes: Nodes = None,
    token: ApiToken = None,
    as_json: AsJson = False,
) -> None:
    """Run CANDIDATE_ID for leader of NAME; prints the term once elected (conflict if another leads)."""
    with connected(nodes, token) as client:
        call = coord_calls.campaign(name, candidate_id, parse_json(value, "value"), ttl, timeout, None)
        emit(client._run(call), as_json, kv_table(f"elected {name}"))


@election_app.command("renew")
def election_renew(
    name: str,
    candidate_id: CandidateId,
    ttl: Annotated[float | None, typer.Option(help="New lease in seconds (default: the leader's own).")] = None,
    nodes: Nodes = None,
    token: ApiToken = None,
    as_json: AsJson = False,
) -> None:
    """Restart the leader CANDIDATE_ID's lease on NAME."""
    with connected(nodes, token) as client:
        emit(client._run(coord_calls.election_renew(name, candidate_id, ttl)), as_json, kv_table(f"renewed {name}"))


@election_app.command("proclaim")
def election_proclaim(
    name: str,
    value: Annotated[str, typer.Argument(help="JSON (a bare word is a string).")],
    candidate_id: CandidateId,
    term: Annotated[int, typer.Option("--term", help="The term CANDIDATE_ID leads in.")],
    nodes: Nodes = None,
    token: ApiToken = None,
    as_json: AsJson = False,
) -> None:
    """Set the value of NAME, keeping the term (not_leader unless CANDIDATE_ID leads in TERM)."""
    with connected(nodes, token) as client:
        call = coord_calls.proclaim(name, candidate_id, term, parse_json(value, "value"))
        emit(client._run(call), as_json, kv_table(f"proclaimed {name}"))


@election_app.command("resign")
def election_resign(
    name: str, candidate_id: CandidateId, nodes: Nodes = None, token: ApiToken = None, as_json: AsJson = False
) -> None:
    """Step down as leader (or withdraw a candidacy) of NAME: the next candidate is elected at once."""
    with connected(nodes, token) as client:
        answer = client._run(coord_calls.resign(name, candidate_id))
        emit({"name": name, **answer}, as_json, lambda d: f"resigned {name}")


@election_app.command("leader")
def election_leader(name: str, nodes: Nodes = None, token: ApiToken = None, as_json: AsJson = False) -> None:
    """The leader of NAME, its value, term and the waiting candidates (linearizable)."""
    with connected(nodes, token) as client:
        emit(client.election_leader(name), as_json, leader_table)


@election_app.command("observe")
def election_observe(
    name: str,
    after_term: Annotated[int, typer.Option(help="Answer once the election changes after this term.")] = 0,
    timeout: Annotated[float, typer.Option(help="Long-poll up to this many seconds (≤ 300).")] = 30.0,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Print every change until Ctrl-C.")] = False,
    nodes: Nodes = None,
    token: ApiToken = None,
    as_json: AsJson = False,
) -> None:
    """Wait for a change of NAME after AFTER_TERM (a new leader, or a vacancy) and print it."""
    with connected(nodes, token) as client:
        if follow:
            with contextlib.suppress(KeyboardInterrupt):
                for change in client.observe(name, after_term=after_term, poll=timeout):
                    row = {"name": change.name, "leader": change.leader, "value": change.value, "term": change.term}
                    if as_json:
                        print(json.dumps(row), flush=True)
                    else:
                        console.print(f"term {change.term}: {change.leader or '(vacant)'} {json.dumps(change.value)}")
            return
        change, changed = client._run(coord_calls.observe(name, after_term, timeout))
        data = {"name": change.name, "leader": change.leader, "value": change.value, "term": change.term}
        emit({**data, "changed": changed}, as_json, kv_table(f"observe {name}"))


# -- run a program under a hold -------------------------------------------------------


def lock_run(
    resource: str,
    cmd: Command = None,
    client_id: RunClientId = None,
    mode: Annotated[str, typer.Option(help="exclusive or shared.")] = "exclusive",
    ttl: Annotated[float, typer.Option(help="Lease in seconds, renewed every ttl/3 while the program runs.")] = 30.0,
    timeout: RunWait = None,
    grace: Grace = 10.0,
    nodes: Nodes = None,
    token: ApiToken = None,
) -> None:
    """Run a program while holding the lock on RESOURCE: rakit lock run RESOURCE -- cmd args..."""
    argv = _command(cmd)
    _check_grace(grace)
    if mode not in ("exclusive", "shared"):
        err_console.print("rakit: error: --mode must be exclusive or shared", markup=False)
        raise typer.Exit(2)
    with connected(nodes, token) as client:
        lock = client.lock(resource, ttl=ttl, timeout=timeout, mode=mode, client_id=client_id)  # type: ignore[arg-type]

        def acquire() -> Hold:
            lock.acquire()
            assert lock.fencing_token is not None
            env = {"RAKIT_RESOURCE": resource, "RAKIT_CLIENT_ID": lock.client_id}
            return Hold(f"the lock on {resource!r}", lock.fencing_token, lock.lost, lock.release, env)

        code = Supervisor(argv, grace=grace).run(acquire)
    raise typer.Exit(code)


def semaphore_run(
    name: str,
    limit: Annotated[int, typer.Option("--limit", help="The semaphore's number of permits.")],
    cmd: Command = None,
    permits: Annotated[int, typer.Option(help="How many permits to take at once.")] = 1,
    client_id: RunClientId = None,
    ttl: Annotated[float, typer.Option(help="Lease in seconds, renewed every ttl/3 while the program runs.")] = 30.0,
    timeout: RunWait = None,
    grace: Grace = 10.0,
    nodes: Nodes = None,
    token: ApiToken = None,
) -> None:
    """Run a program while holding PERMITS of semaphore NAME: rakit semaphore run NAME --limit N -- cmd..."""
    argv = _command(cmd)
    _check_grace(grace)
    with connected(nodes, token) as client:
        semaphore = client.semaphore(name, limit, permits=permits, ttl=ttl, client_id=client_id)

        def acquire() -> Hold:
            if not semaphore.acquire(timeout=timeout):
                error = LockConflict if timeout == 0 else LockTimeout
                raise error(f"{permits} permit(s) of semaphore {name!r} not granted in time")
            assert semaphore.fencing_token is not None
            env = {"RAKIT_RESOURCE": name, "RAKIT_CLIENT_ID": semaphore.client_id}
            what = f"the permits of semaphore {name!r}"
            return Hold(what, semaphore.fencing_token, semaphore.lost, semaphore.release, env)

        code = Supervisor(argv, grace=grace).run(acquire)
    raise typer.Exit(code)


def elect(
    name: str,
    cmd: Command = None,
    value: Annotated[str, typer.Option(help="The leader's value: JSON (a bare word is a string).")] = "null",
    candidate_id: Annotated[
        str | None, typer.Option("--candidate-id", "-c", help="The candidate's id (default: this host and process).")
    ] = None,
    ttl: Annotated[float, typer.Option(help="Lease in seconds, renewed every ttl/3 while the program runs.")] = 10.0,
    timeout: RunWait = None,
    grace: Grace = 10.0,
    nodes: Nodes = None,
    token: ApiToken = None,
) -> None:
    """Campaign for leader of NAME, then run a program while leader: rakit elect NAME -- cmd args...

    The term (the election's fencing token) is in $RAKIT_FENCING_TOKEN and $RAKIT_TERM.
    """
    argv = _command(cmd)
    _check_grace(grace)
    with connected(nodes, token) as client:
        leadership = client.campaign(
            name, value=parse_json(value, "value"), ttl=ttl, timeout=timeout, candidate_id=candidate_id
        )

        def acquire() -> Hold:
            try:
                leadership.elect()
            except RakitError:
                raise  # answered: nothing left waiting
            except BaseException:  # interrupted while waiting in line: withdraw the candidacy
                with contextlib.suppress(RakitError):
                    client._run(coord_calls.resign(name, leadership.candidate_id, leadership.secret))
                raise
            assert leadership.term is not None
            env = {
                "RAKIT_RESOURCE": name,
                "RAKIT_CLIENT_ID": leadership.candidate_id,
                "RAKIT_TERM": str(leadership.term),
            }
            return Hold(f"the leadership of {name!r}", leadership.term, leadership.lost, leadership.resign, env)

        code = Supervisor(argv, grace=grace).run(acquire)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    lock_app.command("run", epilog=RUN_HELP)(lock_run)
    semaphore_app.command("run", epilog=RUN_HELP)(semaphore_run)
    app.add_typer(session_app, name="session")
    app.add_typer(semaphore_app, name="semaphore")
    app.add_typer(election_app, name="election")
    app.command("elect", epilog=RUN_HELP)(elect)
