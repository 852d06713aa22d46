"""The timeline of a chaos run: throughput and latency over time, faults shaded.

``plot_timeline`` draws a history the way Jepsen draws its perf graphs, as one
PNG with one row per workload (locks, queue, cache — the ones present):

- left, **throughput**: completed operations per second in bins of
  ``bin_seconds``, one line per (f, outcome): colour is the outcome
  (ok green, fail orange, info red), line style the operation ``f``;
- right, **latency**: every operation's latency (ms, log scale) at its
  invoke time, coloured by outcome (deterministically subsampled above
  ``MAX_POINTS`` per panel, keeping the rarer outcomes whole);
- on every panel, each fault's interval shaded in its nemesis' colour, its
  name written at the top of the span where it fits.

It is a picture for a human reading a run, not a checker: nothing here
decides whether the run was valid.  matplotlib (the ``chaos`` extra) is
imported only when a plot is drawn, and only through its object API
(``Figure`` + the Agg canvas): no pyplot, no global backend state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rakit.chaos.history import OP_TYPES, Fault, History, Op

WORKLOAD_ORDER: tuple[str, ...] = ("locks", "queue", "cache")

WIDTH_IN = 14.0  # figure width, inches
ROW_HEIGHT_IN = 3.2  # height of one workload row, inches
HEADER_IN = 0.8  # title and figure legend, inches
DPI = 110
MAX_POINTS = 30_000  # latency points drawn per panel before subsampling
MIN_LATENCY_S = 1e-6  # latencies are clamped to this for the log scale

OUTCOME_COLOURS: dict[str, str] = {"ok": "#2e9e44", "fail": "#f08a0c", "info": "#d62728"}
OUTCOME_SIZES: dict[str, float] = {"ok": 2.0, "fail": 4.0, "info": 6.0}  # marker area, pt^2
OUTCOME_ALPHAS: dict[str, float] = {"ok": 0.3, "fail": 0.55, "info": 0.7}
NEMESIS_COLOURS: dict[str, str] = {
    "partition": "#1f77b4",
    "isolate-leader": "#9467bd",
    "asymmetric": "#17becf",
    "bridge": "#8c564b",
    "kill": "#555555",
    "pause": "#bcbd22",
    "redis-kill": "#e377c2",
}
_SPARE_COLOURS: tuple[str, ...] = ("#393b79", "#637939", "#843c39", "#7b4173", "#3182bd", "#e6550d")
FAULT_ALPHA = 0.16
_LEFT_IN, _RIGHT_IN = 0.7, 0.2  # margins: y tick labels and label on the left
_COLUMN_GAP_IN = 1.55  # between the panels: the f legend, then the latency axis' labels
_ROW_TITLE_IN, _ROW_GAP_IN, _BOTTOM_IN = 0.3, 0.45, 0.55
LINESTYLES: tuple[Any, ...] = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (8, 2)))

INSTALL_HINT = "pip install 'rakit[chaos]'"
_NO_MATPLOTLIB = f"the timeline plot needs matplotlib: {INSTALL_HINT}"


def missing_dependency() -> str | None:
    """Why the timeline cannot be drawn here, in a few words, or None when it can.

    It imports what ``plot_timeline`` imports (numpy and the parts of
    matplotlib it uses), so ``rakit chaos`` can find out before its run, not
    after it: ``"matplotlib is not installed"`` without the ``chaos`` extra,
    ``"matplotlib cannot be imported (...)"`` for a broken install.
    """
    try:
        import matplotlib.backends.backend_agg
        import matplotlib.colors
        import matplotlib.figure
        import matplotlib.lines
        import matplotlib.patches  # noqa: F401
        import numpy  # noqa: F401
    except ModuleNotFoundError as exc:
        return f"{(exc.name or 'matplotlib').partition('.')[0]} is not installed"
    except Exception as exc:  # a broken install: report it now rather than after the run
        return f"matplotlib cannot be imported ({_one_line(exc)})"
    return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def plot_timeline(
    history: History,
    path: str | Path,
    *,
    title: str | None = None,
    bin_seconds: float = 1.0,
) -> Path:
    """Write the timeline of ``history`` as a PNG at ``path`` and return the path.

    The figure is ``WIDTH_IN`` x ``HEADER_IN + ROW_HEIGHT_IN * rows`` inches at
    ``DPI`` (one row per workload present, one row saying "no operations"
    when there are none).
    """
    if not bin_seconds > 0:
        raise ValueError(f"bin_seconds must be positive, not {bin_seconds!r}")
    try:
        import numpy as np
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch
    except ImportError as exc:
        raise RuntimeError(_NO_MATPLOTLIB) from exc

    path = Path(path)
    by_workload: dict[str, list[Op]] = {}
    for op in history.ops:
        by_workload.setdefault(op.workload, []).append(op)
    workloads = [w for w in WORKLOAD_ORDER if w in by_workload]
    workloads += sorted(w for w in by_workload if w not in WORKLOAD_ORDER)
    t0, t1 = _time_range(history)
    fault_colours = _fault_colours(history.faults)

    rows = max(1, len(workloads))
    height = HEADER_IN + ROW_HEIGHT_IN * rows
    # A fixed layout, in inches (constrained layout costs a second or more per figure):
    # header, then per row the panel titles and the panels, tick labels at the bottom.
    fig = Figure(figsize=(WIDTH_IN, height), dpi=DPI)
    FigureCanvasAgg(fig)
    fig.suptitle(title if title is not None else _default_title(history), fontsize=12, y=1 - 0.12 / height, va="top")
    box = {
        "left": _LEFT_IN / WIDTH_IN,
        "right": 1 - _RIGHT_IN / WIDTH_IN,
        "top": 1 - (HEADER_IN + _ROW_TITLE_IN) / height,
        "bottom": _BOTTOM_IN / height,
    }

    name_texts: list[tuple[Any, Any, float, float]] = []  # (axes, text, start, end)
    if not workloads:
        ax = fig.add_subplot(fig.add_gridspec(1, 1, **box)[0, 0])
        ax.set_xlim(t0, t1)
        ax.set_yticks([])
        ax.set_xlabel("time (s)")
        ax.text(
            0.5, 0.5, "no operations", transform=ax.transAxes, ha="center", va="center", fontsize=16, color="#444444"
        )
        name_texts += _shade_faults(ax, history.faults, fault_colours, names=True)
    else:
        panel_w = (WIDTH_IN - _LEFT_IN - _RIGHT_IN - _COLUMN_GAP_IN) / 2
        panel_h = (height - HEADER_IN - _ROW_TITLE_IN - _BOTTOM_IN - _ROW_GAP_IN * (rows - 1)) / rows
        axes = fig.subplots(
            rows,
            2,
            sharex=True,
            squeeze=False,
            gridspec_kw={**box, "wspace": _COLUMN_GAP_IN / panel_w, "hspace": _ROW_GAP_IN / panel_h},
        )
        edges = _bin_edges(np, t0, t1, bin_seconds)
        for row, workload in enumerate(workloads):
            ax_rate, ax_lat = axes[row]
            ops = by_workload[workload]
            _draw_throughput(np, Line2D, ax_rate, workload, ops, edges, bin_seconds, headroom=bool(history.faults))
            _draw_latency(np, ax_lat, workload, ops)
            name_texts += _shade_faults(ax_rate, history.faults, fault_colours, names=True)
            _shade_faults(ax_lat, history.faults, fault_colours, names=False)
        axes[0][0].set_xlim(t0, t1)
        for ax in axes[-1]:
            ax.set_xlabel("time (s)")

    handles: list[Any] = [
        Line2D([], [], color=OUTCOME_COLOURS[t], marker="o", markersize=5, linewidth=1.5, label=t)
        for t in OP_TYPES
        if workloads
    ]
    handles += [Patch(facecolor=c, alpha=FAULT_ALPHA * 2, edgecolor=c, label=name) for name, c in fault_colours.items()]
    fig.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 1 - 0.4 / height),
        ncols=len(handles),
        fontsize=9,
        frameon=False,
        handlelength=1.8,
        columnspacing=1.4,
    )

    _drop_names_that_do_not_fit(fig, name_texts)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    fig.clear()
    return path


# -- the pieces ---------------------------------------------------------------


def _time_range(history: History) -> tuple[float, float]:
    """The x range: from 0 (or earlier) to the end of the run, its last op or fault."""
    lo, hi = 0.0, 0.0
    duration = history.meta.get("duration")
    if isinstance(duration, (int, float)) and math.isfinite(duration) and duration > 0:
        hi = float(duration)
    for op in history.ops:
        lo = min(lo, op.invoke, op.complete)
        hi = max(hi, op.invoke, op.complete)
    for fault in history.faults:
        lo = min(lo, fault.start, fault.end)
        hi = max(hi, fault.start, fault.end)
    if hi <= lo:
        hi = lo + 1.0
    return lo, hi


def _bin_edges(np: Any, t0: float, t1: float, width: float) -> Any:
    first = math.floor(t0 / width) * width
    count = math.floor((t1 - first) / width) + 1  # t1 strictly inside: the last edge is inclusive
    return first + width * np.arange(count + 1)


def _fault_colours(faults: Sequence[Fault]) -> dict[str, str]:
    """One colour per nemesis kind present: the known kinds first, in a fixed order."""
    present = {fault.nemesis for fault in faults}
    colours = {name: colour for name, colour in NEMESIS_COLOURS.items() if name in present}
    spare = iter(_SPARE_COLOURS)
    for fault in sorted(faults, key=lambda f: f.start):
        if fault.nemesis not in colours:
            colours[fault.nemesis] = next(spare, "#999999")
    return colours


def _draw_throughput(
    np: Any, line2d: Any, ax: Any, workload: str, ops: list[Op], edges: Any, bin_seconds: float, *, headroom: bool
) -> None:
    """Operations per second by completion time, one line per (f, outcome) seen."""
    groups: dict[tuple[str, str], list[float]] = {}
    for op in ops:
        groups.setdefault((op.f, op.type), []).append(op.complete)
    fs = sorted({f for f, _ in groups})
    styles = {f: LINESTYLES[i % len(LINESTYLES)] for i, f in enumerate(fs)}
    centres = (edges[:-1] + edges[1:]) / 2
    top = 0.0
    order = {t: i for i, t in enumerate(OP_TYPES)}
    for f, outcome in sorted(groups, key=lambda k: (order.get(k[1], len(order)), k[0])):
        counts, _ = np.histogram(np.asarray(groups[(f, outcome)]), bins=edges)
        rate = counts / bin_seconds
        top = max(top, float(rate.max()))
        ax.plot(
            centres,
            rate,
            color=OUTCOME_COLOURS.get(outcome, "#777777"),
            linestyle=styles[f],
            linewidth=1.2,
            drawstyle="default",
        )
    ax.set_ylim(0, max(1.0, top) * (1.25 if headroom else 1.08))
    ax.set_ylabel("ops/s")
    ax.set_title(f"{workload} — throughput ({len(ops):,} ops, {bin_seconds:g} s bins)", fontsize=10, loc="left")
    ax.grid(True, axis="y", linewidth=0.4, alpha=0.5)
    handles = [line2d([], [], color="#333333", linestyle=styles[f], linewidth=1.2, label=f) for f in fs]
    ax.legend(
        handles=handles,
        title="f",
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        title_fontsize=8,
        frameon=False,
        handlelength=2.6,
    )


def _draw_latency(np: Any, ax: Any, workload: str, ops: list[Op]) -> None:
    """Each op's latency (ms, log scale) at its invoke time, coloured by outcome."""
    by_type: dict[str, tuple[list[float], list[float]]] = {}
    for op in ops:
        xs, ys = by_type.setdefault(op.type, ([], []))
        xs.append(op.invoke)
        ys.append(max(op.complete - op.invoke, MIN_LATENCY_S) * 1000.0)
    counts = {t: len(xs) for t, (xs, _) in by_type.items()}
    keep = _point_quota(counts, MAX_POINTS)
    shown = 0
    order = {t: i for i, t in enumerate(OP_TYPES)}
    for outcome in sorted(by_type, key=lambda t: (order.get(t, len(order)), t)):
        xs, ys = (np.asarray(v) for v in by_type[outcome])
        if keep[outcome] < len(xs):
            rng = np.random.default_rng(len(xs))  # deterministic: same history, same picture
            idx = np.sort(rng.choice(len(xs), size=keep[outcome], replace=False))
            xs, ys = xs[idx], ys[idx]
        shown += len(xs)
        ax.scatter(
            xs,
            ys,
            s=OUTCOME_SIZES.get(outcome, 4.0),
            c=OUTCOME_COLOURS.get(outcome, "#777777"),
            alpha=OUTCOME_ALPHAS.get(outcome, 0.5),
            linewidths=0,
            rasterized=True,
        )
    ax.set_yscale("log")
    ax.set_ylabel("latency (ms)")
    sampled = f", {shown:,} of {len(ops):,} shown" if shown < len(ops) else ""
    ax.set_title(f"{workload} — latency at invoke time{sampled}", fontsize=10, loc="left")
    ax.grid(True, axis="y", which="major", linewidth=0.4, alpha=0.5)


def _point_quota(counts: dict[str, int], cap: int) -> dict[str, int]:
    """How many points of each outcome to draw: at most ``cap`` in all, fair shares.

    The rarest outcomes are served first, so a few hundred ``info`` ops among
    100k ``ok`` ones are all drawn and only the common outcome is thinned.
    """
    if sum(counts.values()) <= cap:
        return dict(counts)
    quota: dict[str, int] = {}
    left = cap
    pending = sorted(counts, key=lambda t: counts[t])
    for i, outcome in enumerate(pending):
        share = left // (len(pending) - i)
        quota[outcome] = min(counts[outcome], share)
        left -= quota[outcome]
    return quota


def _shade_faults(
    ax: Any, faults: Sequence[Fault], colours: dict[str, str], *, names: bool
) -> list[tuple[Any, Any, float, float]]:
    """Shade each fault's interval; with ``names``, write its name at the top of the span."""
    texts: list[tuple[Any, Any, float, float]] = []
    level_ends: list[float] = []  # per text level: where the last span on it ended
    for fault in sorted(faults, key=lambda f: (f.start, f.end)):
        colour = colours[fault.nemesis]
        start, end = min(fault.start, fault.end), max(fault.start, fault.end)
        if end > start:
            ax.axvspan(start, end, color=colour, alpha=FAULT_ALPHA, linewidth=0, zorder=0)
        else:
            ax.axvline(start, color=colour, alpha=0.6, linewidth=1.0, zorder=0)
        if not names:
            continue
        level = next((i for i, e in enumerate(level_ends) if e <= start), len(level_ends))
        if level == len(level_ends):
            level_ends.append(end)
        else:
            level_ends[level] = end
        text = ax.text(
            (start + end) / 2,
            0.98 - 0.1 * level,
            fault.nemesis,
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="top",
            fontsize=7.5,
            color=_darker(colour),
            clip_on=True,
        )
        text.set_in_layout(False)
        texts.append((ax, text, start, end))
    return texts


def _darker(colour: str, factor: float = 0.65) -> tuple[float, float, float]:
    """The same hue, darker: fault names stay legible on their own shading."""
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(colour)
    return (r * factor, g * factor, b * factor)


def _drop_names_that_do_not_fit(fig: Any, texts: list[tuple[Any, Any, float, float]]) -> None:
    """Remove the fault names wider than their span (measured after layout) or off the axes."""
    if not texts:
        return
    renderer = fig.canvas.get_renderer()
    for ax, text, start, end in texts:
        (x0, _), (x1, _) = ax.transData.transform([(start, 0.0), (end, 0.0)])
        box = text.get_window_extent(renderer)
        inside = ax.get_window_extent(renderer)
        if box.width > abs(x1 - x0) - 2 or box.y0 < inside.y0:
            text.remove()


def _default_title(history: History) -> str:
    meta = history.meta
    parts = [str(meta.get("name") or "rakit chaos run")]
    if "seed" in meta:
        parts.append(f"seed {meta['seed']}")
    duration = meta.get("duration")
    if isinstance(duration, (int, float)):
        parts.append(f"{duration:g} s")
    nemeses = meta.get("nemeses", meta.get("nemesis"))
    if nemeses:
        listed = nemeses if isinstance(nemeses, str) else ", ".join(str(n) for n in nemeses)
        parts.append(f"nemeses: {listed}")
    nodes = meta.get("nodes")
    if isinstance(nodes, (list, tuple)) and nodes:
        parts.append(f"{len(nodes)} nodes")
    elif isinstance(nodes, int):
        parts.append(f"{nodes} nodes")
    faults = len(history.faults)
    parts.append(f"{len(history.ops):,} ops, {faults} fault{'' if faults == 1 else 's'}")
    return " · ".join(parts)
