"""SIGINT and SIGTERM in every phase: reads stop at once, nothing is written, 130/143 (SPEC §2).

scimsync runs in a process of its own (the signals are real); the Jira simulator answers
every request slowly, so that the read phase is long when the signal arrives.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import World, make_world

from scimsync.errors import RunInterruptedError

TOKEN = "interrupt-token-31"
SLOW = 1.5  # seconds per request: the read phase takes many of them


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("E2E_JIRA_TOKEN", TOKEN)
    yield from make_world(tmp_path, TOKEN, version="10.3.1")


def start(world: World, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "E2E_JIRA_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "scimsync", "-c", str(world.config), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def one_at_a_time(world: World) -> None:
    """Send one request at a time: the read is a chain of slow requests, each signal lands in one.

    At 8 in flight this small read would be over within one slow round trip.
    """
    config = world.config.read_text(encoding="utf-8")
    world.config.write_text(config.replace("http:\n", "http:\n  concurrency: 1\n"), encoding="utf-8")


def reading(world: World, process: subprocess.Popen[str]) -> None:
    """Wait until the run is reading the target (a request reached the simulator)."""
    deadline = time.monotonic() + 30
    while not world.sim.log.entries and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    assert world.sim.log.entries, "the run never started reading"


@pytest.mark.parametrize(("command", "signum"), [("plan", signal.SIGTERM), ("apply", signal.SIGINT)])
def test_a_signal_while_reading_stops_the_reads_and_writes_nothing(
    world: World, command: str, signum: signal.Signals
) -> None:
    world.sim.faults.latency = SLOW
    one_at_a_time(world)
    process = start(world, command, *(["-y"] if command == "apply" else []))
    reading(world, process)
    time.sleep(2)
    process.send_signal(signum)
    signalled = time.monotonic()
    _, err = process.communicate(timeout=30)
    stopped_after = time.monotonic() - signalled
    assert process.returncode == 128 + signum, err
    # The rest of the read (several more slow requests) was not waited for: at most the
    # request in flight finished. Generous: a busy CI machine, not a benchmark.
    assert stopped_after < 5, stopped_after
    assert (
        err.strip().splitlines()[-1]
        == f"error: interrupted by {signum.name} while reading: nothing was written"
    )
    assert "Traceback" not in err
    assert world.sim.log.writes() == []
    assert not (world.folder / "state.json").exists()

    world.sim.faults.latency = 0
    assert world.run("apply", "-y").exit_code == 0
    assert world.run("plan", "--detailed-exitcode").exit_code == 0


def test_a_second_ctrl_c_aborts_at_once_in_one_line(world: World) -> None:
    world.sim.faults.latency = SLOW
    one_at_a_time(world)
    process = start(world, "plan")
    reading(world, process)
    process.send_signal(signal.SIGINT)
    time.sleep(0.3)  # a person's second Ctrl-C (two at once would arrive as one)
    assert process.poll() is None, "the request in flight is slow: the run is still winding down"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "error: SIGINT again: aborted at once; operations in flight may be unaudited"
    )
    assert world.sim.log.writes() == []


def test_the_interrupted_error_names_the_signal_and_the_phase() -> None:
    reading_ = RunInterruptedError(signal.SIGTERM, phase="reading")
    assert (reading_.exit_code, str(reading_)) == (
        143,
        "interrupted by SIGTERM while reading: nothing was written",
    )
    applying = RunInterruptedError(signal.SIGINT)
    assert applying.exit_code == 130
    assert str(applying).startswith("interrupted by SIGINT: operations in flight finished")
