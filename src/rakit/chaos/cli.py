"""``rakit chaos``: the command line of one chaos run, and its printed report."""

from __future__ import annotations

import random
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rakit.chaos.nemesis import NemesisError, parse_nemeses
from rakit.chaos.workloads_coordination import ALL_WORKLOADS


def report(summary: dict[str, Any], console: Console) -> None:
    """The run's tables: per workload operations, outcomes, faults and violations; then the figures."""
    faults = summary["faults"]
    table = Table(
        title=f"chaos run, seed {summary['seed']}: faults injected "
        + (", ".join(f"{k} ×{v}" for k, v in sorted(faults.items())) or "none")
    )
    for column in ("workload", "operations", "ok", "fail", "info", "violations"):
        table.add_column(column, justify="left" if column == "workload" else "right")
    for name, w in summary["workloads"].items():
        style = "bold red" if w["violations"] else "green"
        table.add_row(
            name,
            str(w["operations"]),
            str(w["ok"]),
            str(w["fail"]),
            str(w["info"]),
            f"[{style}]{w['violations']}[/{style}]",
        )
    console.print(table)
    for name, w in summary["workloads"].items():
        stats = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(w["stats"].items()) if not isinstance(v, dict | list))
        console.print(f"[bold]{name}[/bold]: {stats}")
        for line in w["first_violations"]:
            console.print(f"  [red]violation[/red] {line}")


def _fmt(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def register(app: typer.Typer) -> None:
    @app.command()
    def chaos(
        duration: Annotated[float, typer.Option(help="Seconds of workload under faults.")] = 60.0,
        nemesis: Annotated[
            str,
            typer.Option(
                help="Faults, comma-separated: partition, isolate-leader, asymmetric, bridge, kill, pause, "
                "redis-kill, member (remove, wipe, rejoin, promote a node), corrupt (flip bytes mid-log in a "
                "stopped node: it must refuse to start); or all, none."
            ),
        ] = "partition,bridge,kill,pause",
        seed: Annotated[
            int | None, typer.Option(help="Seed of the fault plan and the clients (default: random).")
        ] = None,
        nodes: Annotated[int, typer.Option(help="Cluster size: 3 or 5.")] = 3,
        workload: Annotated[
            str,
            typer.Option(
                help="Workloads, comma-separated: locks, queue, cache, semaphores, elections, "
                "kv (registers and CAS counters, through random nodes)."
            ),
        ] = ",".join(ALL_WORKLOADS),
        out: Annotated[str | None, typer.Option(help="Folder for the history, logs, summary and plot.")] = None,
        plot: Annotated[
            bool | None,
            typer.Option(
                help="Draw the timeline PNG; needs matplotlib (pip install 'rakit\\[chaos]'). "
                "Default: drawn when matplotlib is installed, else skipped with one line; "
                "--plot without matplotlib is an error before the run.",
                show_default=False,
            ),
        ] = None,
    ) -> None:
        """Run the cluster in network namespaces under faults and check the recorded histories (root)."""
        from rakit.chaos.run import ChaosError, RunConfig, run

        if nodes not in (3, 5):
            _fail("--nodes must be 3 or 5")
        if duration < 5:
            _fail("--duration must be at least 5 seconds")
        try:
            kinds = parse_nemeses(nemesis)
        except NemesisError as exc:
            _fail(str(exc))
        chosen = tuple(w.strip() for w in workload.split(",") if w.strip())
        unknown = [w for w in chosen if w not in ALL_WORKLOADS]
        if unknown or not chosen:
            _fail(f"unknown workload {', '.join(unknown) or '(none)'}: choose from {', '.join(ALL_WORKLOADS)}")
        draw = plot_wanted(plot)  # before anything runs: a missing matplotlib never costs a run
        seed = random.randrange(1 << 31) if seed is None else seed
        folder = Path(out) if out else Path("chaos-runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-seed{seed}"
        console = Console(stderr=False)
        console.print(
            f"rakit chaos: seed {seed}, {duration:.0f} s, nemesis {','.join(kinds) or 'none'}, "
            f"{nodes} nodes, workloads {','.join(chosen)}; output in {folder}"
        )
        # SIGTERM (a CI timeout, kill) unwinds like Ctrl-C: nodes stopped, test hosts removed.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            result = run(
                RunConfig(duration=duration, nemeses=kinds, seed=seed, nodes=nodes, workloads=chosen, out=folder),
                log=lambda m: console.print(f"[dim]{m}[/dim]"),
            )
        except ChaosError as exc:
            _fail(str(exc), code=1)
            return
        raise typer.Exit(finish(result, console, draw=draw))


def plot_wanted(plot: bool | None) -> bool:
    """Whether to draw the timeline, decided before the run (``plot``: the ``--plot/--no-plot`` flag).

    Without matplotlib (the ``chaos`` extra), an explicit ``--plot`` is a usage
    error (one ``rakit: error:`` line, exit 2, nothing run); by default the run
    goes ahead without the picture, after one line saying so and how to get it.
    """
    if plot is False:
        return False
    from rakit.chaos.plot import INSTALL_HINT, missing_dependency

    reason = missing_dependency()
    if reason is None:
        return True
    if plot:
        _fail(f"--plot needs matplotlib, but {reason}: {INSTALL_HINT}, or run with --no-plot")
    print(
        f"rakit chaos: {reason}, so the timeline picture will be skipped ({INSTALL_HINT} to draw it)",
        file=sys.stderr,
        flush=True,
    )
    return False


def finish(result: Any, console: Console, *, draw: bool) -> int:
    """Print the verdicts, then (``draw``) draw the timeline; return the exit status of the verdicts.

    The picture comes after the tables, and a failure while drawing it is one
    line on stderr, never a traceback: it changes neither what was printed nor
    the exit status (0 when every checker found nothing, 1 on a violation).
    """
    from rakit.chaos.run import draw_timeline, summary

    report(summary(result), console)
    if draw:
        console.file.flush()
        try:
            draw_timeline(result)
        except Exception as exc:
            text = " ".join(str(exc).split()) or type(exc).__name__
            print(f"rakit chaos: the timeline picture was not drawn: {text}", file=sys.stderr, flush=True)
    console.print(
        f"history {result.out / 'history.jsonl'}"
        + (f", timeline {result.plot}" if result.plot else "")
        + f", seed {result.history.meta.get('seed')}"
    )
    return 0 if result.valid else 1


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _fail(message: str, code: int = 2) -> None:
    print(f"rakit: error: {message}", file=sys.stderr)
    raise typer.Exit(code)
