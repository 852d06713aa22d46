"""The chaos timeline plot: a PNG of the right size for any history, even a degenerate one."""

from __future__ import annotations

import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from rakit.chaos.history import Fault, History, Op
from rakit.chaos.plot import plot_timeline

pytest.importorskip("matplotlib")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WIDTH_PX = 1540  # 14 in at 110 dpi


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, which a PNG must start with."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def expected_height(rows: int) -> int:
    return round((0.8 + 3.2 * rows) * 110)


def synthetic(n_per_workload: int = 1500, duration: float = 60.0, seed: int = 7) -> History:
    rnd = random.Random(seed)
    faults = [
        Fault("partition", 10.0, 20.0, ("n1", "n2"), ("n1",)),
        Fault("kill", 28.0, 34.0, ("n3",)),
        Fault("redis-kill", 45.0, 52.0, ("redis",)),
    ]
    fs = {"locks": ("acquire", "release"), "queue": ("push", "pop", "ack"), "cache": ("set", "get")}
    ops = []
    for workload, names in fs.items():
        for i in range(n_per_workload):
            invoke = rnd.uniform(0, duration)
            faulty = any(f.start <= invoke <= f.end for f in faults)
            r = rnd.random()
            if faulty and r < 0.15:
                kind, latency = "info", rnd.uniform(1.0, 3.0)
            elif r < 0.05 or (faulty and r < 0.3):
                kind, latency = "fail", rnd.lognormvariate(-5, 0.5)
            else:
                kind, latency = "ok", rnd.lognormvariate(-5.5, 0.8)
            if i % 97 == 0:
                latency = -1e-9  # complete a hair before invoke: float noise
            ops.append(Op(workload, i % 10, rnd.choice(names), f"n{i % 5 + 1}", invoke, invoke + latency, kind))
    ops.sort(key=lambda op: op.complete)
    meta = {"seed": seed, "duration": duration, "nemeses": ["partition", "kill", "redis-kill"]}
    return History(meta=meta, ops=ops, faults=faults)


def test_three_workloads_three_faults(tmp_path: Path) -> None:
    out = plot_timeline(synthetic(), tmp_path / "sub" / "timeline.png")
    assert out == tmp_path / "sub" / "timeline.png"
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    assert png_size(out) == (WIDTH_PX, expected_height(3))
    import matplotlib.image

    pixels = matplotlib.image.imread(out)
    assert pixels.shape[:2] == (expected_height(3), WIDTH_PX)
    assert pixels.std() > 0.01  # something was drawn


def test_missing_workloads_are_skipped_and_title_is_used(tmp_path: Path) -> None:
    history = synthetic(300)
    history.ops = [op for op in history.ops if op.workload == "queue"]
    out = plot_timeline(history, str(tmp_path / "queue.png"), title="just the queue", bin_seconds=2.5)
    assert isinstance(out, Path)
    assert png_size(out) == (WIDTH_PX, expected_height(1))


def test_empty_history(tmp_path: Path) -> None:
    out = plot_timeline(History(), tmp_path / "empty.png")
    assert png_size(out) == (WIDTH_PX, expected_height(1))


def test_faults_without_ops(tmp_path: Path) -> None:
    history = History(
        meta={"seed": 1},
        faults=[Fault("partition", 1.0, 5.0), Fault("kill", 6.0, 6.0), Fault("something-new", 7.0, 9.0)],
    )
    out = plot_timeline(history, tmp_path / "faults.png")
    assert png_size(out) == (WIDTH_PX, expected_height(1))


def test_info_only_workload(tmp_path: Path) -> None:
    ops = [
        Op("cache", p, "get", "n1", float(t), float(t) + 2.0, "info", error="timeout")
        for p in range(3)
        for t in range(20)
    ]
    out = plot_timeline(History(ops=ops, faults=[Fault("pause", 3.0, 8.0)]), tmp_path / "info.png")
    assert png_size(out) == (WIDTH_PX, expected_height(1))


def test_large_history_is_subsampled_deterministically(tmp_path: Path) -> None:
    rnd = random.Random(3)
    ops = []
    for i in range(40_000):
        invoke = rnd.uniform(0, 30)
        kind = "info" if i % 200 == 0 else "fail" if i % 20 == 0 else "ok"
        ops.append(Op("locks", i % 8, "acquire", "n1", invoke, invoke + rnd.uniform(0.001, 0.05), kind))
    history = History(ops=ops, faults=[Fault("isolate-leader", 5.0, 12.0)])
    first = plot_timeline(history, tmp_path / "a.png")
    second = plot_timeline(history, tmp_path / "b.png")
    assert png_size(first) == (WIDTH_PX, expected_height(1))
    assert first.read_bytes() == second.read_bytes()


def test_bad_bin_width(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        plot_timeline(History(), tmp_path / "x.png", bin_seconds=0)


def test_import_does_not_need_matplotlib() -> None:
    code = "import sys, rakit.chaos.plot; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_matplotlib_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(RuntimeError, match=r"pip install 'rakit\[chaos\]'"):
        plot_timeline(History(), tmp_path / "x.png")
