"""``rakit.cli_run.Supervisor`` with a fake hold and real tiny child processes: one test per rule."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from rakit.cli_run import LOST_EXIT, NOT_FOUND_EXIT, Hold, Supervisor, exit_status

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and process groups")

PY = sys.executable


class FakeHold:
    def __init__(self, token: int = 7) -> None:
        self.token = token
        self.lost = threading.Event()
        self.released = 0
        self.acquired = 0

    def acquire(self) -> Hold:
        self.acquired += 1
        return Hold("the fake lock", self.token, self.lost, self.release, {"RAKIT_RESOURCE": "fake"})

    def release(self) -> None:
        self.released += 1


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def supervisor(*code: str, grace: float = 5.0, lines: list[str] | None = None) -> Supervisor:
    report = lines.append if lines is not None else None
    return Supervisor([PY, "-c", "\n".join(code)], grace=grace, poll=0.02, report=report)


def test_exit_status_passes_through_and_release_happens():
    hold = FakeHold()
    assert supervisor("import sys; sys.exit(3)").run(hold.acquire) == 3
    assert hold.acquired == 1 and hold.released == 1
    assert supervisor("pass").run(hold.acquire) == 0 and hold.released == 2


def test_death_by_signal_is_128_plus_the_signal():
    hold = FakeHold()
    assert supervisor("import os, signal; os.kill(os.getpid(), signal.SIGKILL)").run(hold.acquire) == 128 + 9
    assert exit_status(-15) == 143 and exit_status(0) == 0 and exit_status(2) == 2
    assert hold.released == 1


def test_the_child_gets_the_fencing_token_and_the_resource(tmp_path: Path):
    out = tmp_path / "env"
    env = "os.environ['RAKIT_FENCING_TOKEN'] + ' ' + os.environ['RAKIT_RESOURCE']"
    code = f"import os; open({str(out)!r}, 'w').write({env})"
    assert supervisor(code).run(FakeHold(token=42).acquire) == 0
    assert out.read_text() == "42 fake"


def test_lost_hold_sends_sigterm_and_exits_lost(tmp_path: Path):
    started, terminated = tmp_path / "started", tmp_path / "terminated"
    child = (
        "import pathlib, signal, sys, time",
        f"def stop(*_): pathlib.Path({str(terminated)!r}).touch(); sys.exit(0)",
        "signal.signal(signal.SIGTERM, stop)",
        f"pathlib.Path({str(started)!r}).touch()",
        "time.sleep(60)",
    )
    hold, lines = FakeHold(), []
    threading.Thread(target=lambda: (wait_for(started.exists), hold.lost.set()), daemon=True).start()
    began = time.monotonic()
    assert supervisor(*child, lines=lines).run(hold.acquire) == LOST_EXIT
    assert terminated.exists() and time.monotonic() - began < 30
    assert any(line.startswith("rakit: error: lost the fake lock") for line in lines)
    assert hold.released == 1


def test_a_child_ignoring_sigterm_is_killed_after_grace(tmp_path: Path):
    started = tmp_path / "started"
    child = (
        "import pathlib, signal, time",
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)",
        f"pathlib.Path({str(started)!r}).touch()",
        "time.sleep(60)",
    )
    hold, lines = FakeHold(), []
    lost_at: list[float] = []

    def lose() -> None:
        wait_for(started.exists)
        lost_at.append(time.monotonic())
        hold.lost.set()

    threading.Thread(target=lose, daemon=True).start()
    sup = supervisor(*child, grace=0.5, lines=lines)
    assert sup.run(hold.acquire) == LOST_EXIT
    took = time.monotonic() - lost_at[0]
    assert 0.5 <= took < 10, took
    assert sup.child is not None and sup.child.returncode == -signal.SIGKILL
    assert any("SIGKILL" in line for line in lines) and hold.released == 1


def test_a_signal_to_rakit_is_forwarded_and_the_status_returned(tmp_path: Path):
    started = tmp_path / "started"
    child = (
        "import pathlib, signal, sys, time",
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(5))",
        f"pathlib.Path({str(started)!r}).touch()",
        "time.sleep(60)",
    )
    hold = FakeHold()
    # A real SIGTERM to this (the main) thread, through the handler the supervisor installs.
    timer = threading.Thread(target=lambda: (wait_for(started.exists), os.kill(os.getpid(), signal.SIGTERM)))
    timer.start()
    previous = signal.getsignal(signal.SIGTERM)
    assert supervisor(*child).run(hold.acquire) == 5
    timer.join(5)
    assert signal.getsignal(signal.SIGTERM) == previous  # handlers restored
    assert hold.released == 1 and not hold.lost.is_set()


def test_a_signal_ignored_by_the_child_ends_in_sigkill_after_grace(tmp_path: Path):
    started = tmp_path / "started"
    child = ("import pathlib, signal, time", "signal.signal(signal.SIGINT, signal.SIG_IGN)",
             f"pathlib.Path({str(started)!r}).touch()", "time.sleep(60)")  # fmt: skip
    hold = FakeHold()
    sup = supervisor(*child, grace=0.3)
    threading.Thread(target=lambda: (wait_for(started.exists), sup.request_stop(signal.SIGINT)), daemon=True).start()
    assert sup.run(hold.acquire) == 128 + signal.SIGKILL
    assert hold.released == 1


def test_a_signal_while_acquiring_abandons_the_wait():
    sup = supervisor("pass")
    released: list[bool] = []

    def acquire() -> Hold:
        sup.request_stop(signal.SIGINT)  # as the handler would, in the middle of the wait
        raise AssertionError("not reached")

    assert sup.run(acquire) == 128 + signal.SIGINT and sup.child is None and not released


def test_release_happens_even_when_supervising_fails(monkeypatch: pytest.MonkeyPatch):
    hold = FakeHold()
    sup = supervisor("import time; time.sleep(60)")

    def boom(self: Supervisor, held: Hold) -> int:
        self.child = __import__("subprocess").Popen([PY, "-c", "import time; time.sleep(60)"], process_group=0)
        raise RuntimeError("boom")

    monkeypatch.setattr(Supervisor, "_supervise", boom)
    with pytest.raises(RuntimeError):
        sup.run(hold.acquire)
    assert hold.released == 1
    assert sup.child is not None and sup.child.returncode is not None  # not left running


def test_a_failing_release_is_reported_not_raised():
    lines: list[str] = []
    lost = threading.Event()

    def release() -> None:
        raise OSError("cluster unreachable")

    sup = supervisor("import sys; sys.exit(4)", lines=lines)
    assert sup.run(lambda: Hold("the fake lock", 1, lost, release)) == 4
    assert lines == ["rakit: warning: releasing the fake lock failed: cluster unreachable"]


def test_a_missing_program_is_127_and_still_released():
    hold = FakeHold()
    sup = Supervisor(["/nonexistent/rakit-test-program"], poll=0.02, report=lambda line: None)
    assert sup.run(hold.acquire) == NOT_FOUND_EXIT and hold.released == 1


def test_no_command_is_refused():
    with pytest.raises(ValueError):
        Supervisor([])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_the_child_dies_with_a_sigkilled_rakit(tmp_path: Path):
    """A supervisor in a process of its own, SIGKILLed: its child must not outlive it."""
    pid_file = tmp_path / "child.pid"
    runner = tmp_path / "runner.py"
    body = f"import os, pathlib, time; pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid())); time.sleep(60)"
    runner.write_text(
        "import sys, threading\n"
        "from rakit.cli_run import Hold, Supervisor\n"
        f"child = [{PY!r}, '-c', {body!r}]\n"
        "sys.exit(Supervisor(child, poll=0.02).run(lambda: Hold('x', 1, threading.Event(), lambda: None)))\n"
    )
    import subprocess

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    rakit = subprocess.Popen([PY, str(runner)], env=env)
    try:
        wait_for(lambda: pid_file.exists() and pid_file.read_text() != "")
        child_pid = int(pid_file.read_text())
        rakit.kill()
        rakit.wait(10)

        def gone() -> bool:
            try:
                os.kill(child_pid, 0)
            except ProcessLookupError:
                return True
            return Path(f"/proc/{child_pid}/stat").read_text().split(") ")[1].startswith("Z")  # a zombie: dead

        wait_for(gone)
    finally:
        if rakit.poll() is None:
            rakit.kill()
        if pid_file.exists() and pid_file.read_text():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
