"""bench/suite.py: the backlog drain holds its workers while the backlog is produced.

A worker left running applies part of the backlog before the drain's clock starts, and the
drain then counts events without their time or CPU (BENCHMARKS.md, session 18)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[3] / "bench"))
from suite import held


def state(pid: int) -> str:
    """The process's state letter from /proc (T: stopped)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0]


def wait_state(pid: int, want: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while (got := state(pid)) != want and time.monotonic() < deadline:
        time.sleep(0.01)
    return got


@pytest.fixture
def sleepers() -> Any:
    procs = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
             for _ in range(2)]
    yield SimpleNamespace(pids={f"worker{i}": p.pid for i, p in enumerate(procs)}), procs
    for p in procs:
        p.kill()
        p.wait()


def test_held_stops_every_worker_and_resumes_them(sleepers: Any) -> None:
    stack, procs = sleepers
    with held(stack, list(stack.pids)):
        assert [wait_state(p.pid, "T") for p in procs] == ["T", "T"]
    assert [wait_state(p.pid, "S") for p in procs] == ["S", "S"]


def test_held_resumes_them_when_the_produce_fails(sleepers: Any) -> None:
    stack, procs = sleepers
    with pytest.raises(RuntimeError), held(stack, list(stack.pids)):
        assert wait_state(procs[0].pid, "T") == "T"
        raise RuntimeError("broker away")
    assert [wait_state(p.pid, "S") for p in procs] == ["S", "S"]
