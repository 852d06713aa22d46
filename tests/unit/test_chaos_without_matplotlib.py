"""``rakit chaos`` without matplotlib: checked before the run, never a traceback.

matplotlib is made unimportable by putting ``None`` in ``sys.modules`` (what
an install without the ``chaos`` extra looks like to ``import``); no chaos run
is started: ``run`` is replaced where the command would call it.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.console import Console

import rakit.chaos.cli as chaos_cli
import rakit.chaos.run as chaos_run
from rakit.chaos.history import Fault, History, Op, Verdict
from rakit.chaos.plot import INSTALL_HINT, missing_dependency
from rakit.chaos.run import RunResult
from rakit.cli import main

HINT = "pip install 'rakit[chaos]'"


@pytest.fixture
def no_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


@pytest.fixture
def no_run(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """``run`` replaced by a recorder that fails the test if it is called; the SIGTERM handler left alone."""
    calls: list[Any] = []

    def refuse(config: Any, log: Any = print) -> None:
        calls.append(config)
        raise AssertionError("the chaos run started")

    monkeypatch.setattr(chaos_run, "run", refuse)
    monkeypatch.setattr(chaos_cli.signal, "signal", lambda *a: None)
    return calls


def history(seed: int = 45) -> History:
    ops = [Op("locks", 0, "acquire", "node1", 0.1 * i, 0.1 * i + 0.01, "ok") for i in range(20)]
    return History(meta={"seed": seed, "duration": 5.0}, ops=ops, faults=[Fault("partition", 0.5, 1.5)])


def result(tmp_path: Path, violations: list[str] | None = None) -> RunResult:
    return RunResult(history(), [Verdict("locks", violations or [], {"grants": 20})], tmp_path, None, {})


def console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=200, color_system=None), buffer


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# -- (a) the check before the run ----------------------------------------------


def test_missing_matplotlib_is_found_before_drawing(no_matplotlib: None) -> None:
    assert missing_dependency() == "matplotlib is not installed"
    assert INSTALL_HINT == HINT


def test_installed_matplotlib_is_not_reported() -> None:
    pytest.importorskip("matplotlib")
    assert missing_dependency() is None


def test_default_goes_on_without_the_picture_after_one_line(
    no_matplotlib: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert chaos_cli.plot_wanted(None) is False
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = lines(captured.err)
    assert "matplotlib is not installed" in line and "skipped" in line and HINT in line
    assert "Traceback" not in captured.err


def test_explicit_plot_without_matplotlib_is_a_usage_error(
    no_matplotlib: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(typer.Exit) as exc:
        chaos_cli.plot_wanted(True)
    assert exc.value.exit_code == 2
    (line,) = lines(capsys.readouterr().err)
    assert line.startswith("rakit: error: --plot needs matplotlib") and HINT in line and "--no-plot" in line


def test_no_plot_needs_no_matplotlib(no_matplotlib: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert chaos_cli.plot_wanted(False) is False
    assert capsys.readouterr().err == ""


def test_command_with_plot_exits_2_before_any_workload_runs(
    no_matplotlib: None, no_run: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["chaos", "--duration", "45", "--seed", "3", "--plot"])
    assert exc.value.code == 2
    assert no_run == []
    captured = capsys.readouterr()
    (line,) = lines(captured.err)
    assert line.startswith("rakit: error: --plot needs matplotlib") and HINT in line
    assert "Traceback" not in captured.err and "rakit chaos: seed" not in captured.out


def test_command_by_default_says_so_before_the_run_then_prints_the_verdict(
    no_matplotlib: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen_before_run: list[str] = []

    def fake_run(config: Any, log: Any = print) -> RunResult:
        seen_before_run.append(capsys.readouterr().err)
        return RunResult(history(config.seed), [Verdict("locks", [], {"grants": 20})], config.out, None, {})

    def no_drawing(result: RunResult) -> Path:
        raise AssertionError("the timeline was drawn although it was skipped")

    monkeypatch.setattr(chaos_run, "run", fake_run)
    monkeypatch.setattr(chaos_run, "draw_timeline", no_drawing)
    monkeypatch.setattr(chaos_cli.signal, "signal", lambda *a: None)
    with pytest.raises(SystemExit) as exc:
        main(["chaos", "--duration", "45", "--seed", "3", "--out", str(tmp_path)])
    assert exc.value.code == 0
    (note,) = lines(seen_before_run[0])  # printed, once, before the run began
    assert "skipped" in note and HINT in note
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "violations" in captured.out and "seed 3" in captured.out
    assert "timeline" not in captured.out


# -- (b) the verdict first, a failed picture one line ---------------------------


@pytest.mark.parametrize(("violations", "status"), [([], 0), (["two holders of lock k0 at 1.20 s"], 1)])
def test_plot_failure_keeps_the_verdict_and_its_exit_status(
    no_matplotlib: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], violations: list[str], status: int
) -> None:
    out, buffer = console()
    assert chaos_cli.finish(result(tmp_path, violations), out, draw=True) == status
    printed = buffer.getvalue()
    assert "violations" in printed and "locks" in printed  # the table
    for violation in violations:
        assert violation in printed
    assert "timeline" not in printed and f"history {tmp_path / 'history.jsonl'}" in printed
    err = capsys.readouterr().err
    (line,) = lines(err)
    assert line == f"rakit chaos: the timeline picture was not drawn: the timeline plot needs matplotlib: {HINT}"
    assert not (tmp_path / "timeline.png").exists()


def test_verdict_is_printed_before_drawing_and_any_error_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, buffer = console()
    at_draw: list[str] = []

    def failing(result: RunResult) -> Path:
        at_draw.append(buffer.getvalue())
        raise OSError("No space left on device:\n  'timeline.png'")

    monkeypatch.setattr(chaos_run, "draw_timeline", failing)
    assert chaos_cli.finish(result(tmp_path, ["lost push p7"]), out, draw=True) == 1
    assert "violations" in at_draw[0] and "lost push p7" in at_draw[0]  # already printed when drawing began
    (line,) = lines(capsys.readouterr().err)
    assert line == "rakit chaos: the timeline picture was not drawn: No space left on device: 'timeline.png'"


def test_with_matplotlib_the_picture_is_drawn_after_the_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    out, buffer = console()
    run_result = result(tmp_path)
    assert chaos_cli.finish(run_result, out, draw=True) == 0
    assert run_result.plot == tmp_path / "timeline.png"
    assert (tmp_path / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = buffer.getvalue()
    assert printed.index("violations") < printed.index(f"timeline {tmp_path / 'timeline.png'}")
    assert capsys.readouterr().err == ""
