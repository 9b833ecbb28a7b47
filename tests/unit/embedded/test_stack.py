"""`leadstream up` as a user runs it: it starts, serves, and Ctrl-C leaves no process behind
(no orphan JVM, Postgres or worker)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from leadstream.embedded.procs import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _ours(data_dir: Path) -> list[str]:
    """Command lines of live processes that mention the data directory."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(data_dir) in cmd and int(proc.name) != os.getpid():
            found.append(f"{proc.name}: {cmd[:160]}")
    return found


def _wait_for_demo_leads(port: int, deadline: float) -> int:
    """Leads the demo token sees, once there are some (0 at the deadline)."""
    import urllib.error
    import urllib.request

    while time.monotonic() < deadline:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/leads",
                                     headers={"Authorization": "Bearer demo-token"})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                n = len(json.loads(r.read())["leads"])
            if n:
                return n
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(0.5)
    return 0


def test_up_starts_the_embedded_stack_and_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    """`up --demo`: a short summary on the terminal (the services log to files), a living
    sales line in the demo workspace, and nothing left running after Ctrl-C."""
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items()
           if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")}
    port = free_port()
    env.update(LEADSTREAM_DATA_DIR=str(data_dir), LEADSTREAM_HTTP_PORT=str(port))
    up = subprocess.Popen([sys.executable, "-m", "leadstream", "up", "--demo"], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          process_group=0)
    try:
        runtime = data_dir / "runtime.json"
        deadline = time.monotonic() + 120
        while not runtime.exists() and time.monotonic() < deadline and up.poll() is None:
            time.sleep(0.2)
        if not runtime.exists():  # say why: its output and the services' logs
            up.send_signal(signal.SIGINT)
            early, _ = up.communicate(timeout=90)
            logs = {f.name: f.read_text(errors="replace")[-3000:]
                    for f in sorted((data_dir / "logs").glob("*.log"))}
            pytest.fail(f"up did not start within 120 s (exit {up.returncode}):\n"
                        f"{early.decode(errors='replace')[-3000:]}\n{logs}")
        info = json.loads(runtime.read_text())
        wanted = os.environ.get("LEADSTREAM_EMBEDDED_BROKER", "auto")
        from leadstream.embedded.broker import choose

        kind, _ = choose(wanted)
        assert info["kafka_flavor"] == kind
        assert len(_ours(data_dir)) >= 2  # the broker and Postgres run from the data dir
        leads = _wait_for_demo_leads(port, deadline=time.monotonic() + 120)
        assert leads > 0, "the demo sales line wrote nothing"
    finally:
        if up.returncode is None:
            up.send_signal(signal.SIGINT)
            out, _ = up.communicate(timeout=90)
    text = out.decode(errors="replace")
    before_stop = text.split("stopping...")[0].strip().splitlines()
    assert len(before_stop) <= 15, text  # issue #19: a quiet `up`
    assert "Faust" not in text and (data_dir / "logs" / "worker.log").stat().st_size > 0
    assert "leadstream is up" in text
    assert ("Apache Kafka" if kind == "kafka" else "Tansu") in text
    assert "stopped." in text
    deadline = time.monotonic() + 10
    while _ours(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _ours(data_dir) == []
    assert not (data_dir / "runtime.json").exists()
