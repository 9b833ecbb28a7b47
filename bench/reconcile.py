"""Benchmark: reconcile N messages Kapso holds and the log does not, across several numbers.

    python bench/reconcile.py --messages 10000 --numbers 3

The fake Kapso API (`python -m leadstream.simulate.kapso_api`) runs as a process of its own,
seeded with N inbound messages over the last hour; a worker runs (its own reconciler off);
`leadstream reconcile` runs as a process of its own, from the numbers' watermarks. Prints
the run's wall time and messages per second, the time until every message is visible in
the replica (from the command's start), the CPU each process used, and a second run over
the same window, which must add nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stack import BenchStack, CpuMeter, cpu_line, free_port, wait_http

from leadstream.broker.clients import ensure_topics
from leadstream.db.migrate import migrate_url
from leadstream.db.registry import add_workspace

KEY = "bench-key-0123456789"


async def _count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM messages"))
    finally:
        await conn.close()


def _run(args: list[str], env: dict[str, str]) -> tuple[str, int, float]:
    """`leadstream <args>`: its output, exit code and CPU seconds (user + system)."""
    p = subprocess.Popen([sys.executable, "-m", "leadstream", *args], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert p.stdout is not None
    out = p.stdout.read().decode().strip()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return out, p.returncode, usage.ru_utime + usage.ru_stime


async def main_async(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="lsreconcile-"))
    stack = BenchStack(tmp, args.partitions, broker=args.broker)
    api_port = free_port()
    settings = stack.start(LEADSTREAM_KAPSO_API_URL=f"http://127.0.0.1:{api_port}",
                           LEADSTREAM_RECONCILE_INTERVAL_SECONDS=-1,
                           LEADSTREAM_RECONCILE_LOOKBACK_SECONDS=2 * 3600,
                           LEADSTREAM_WORKER_HTTP_PORT=free_port())
    try:
        await ensure_topics(settings)
        await migrate_url(settings.dsn)
        conn = await asyncpg.connect(settings.dsn)
        for i in range(args.numbers):
            await add_workspace(conn, workspace_id=f"ws{i}", phone_number_id=f"pnid-{i}",
                                webhook_secret=f"bench-secret-{i:08d}", api_token=None,
                                kapso_api_key=KEY)
        await conn.close()
        api = subprocess.Popen(  # noqa: ASYNC220  # a child for the whole run (stack.stop)
            [sys.executable, "-m", "leadstream.simulate.kapso_api", "--port", str(api_port),
             "--numbers", str(args.numbers), "--messages", str(args.messages), "--key", KEY],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        stack.procs["kapso-api"] = api
        stack.pids["kapso-api"] = api.pid
        stack.spawn("worker", settings, "worker")
        await wait_http(f"http://127.0.0.1:{settings.worker_http_port}/readyz", timeout=120)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the fake seeds before it listens
            try:
                _r, w = await asyncio.open_connection("127.0.0.1", api_port)
                w.close()
                break
            except OSError:
                await asyncio.sleep(0.2)

        env = {**os.environ, **settings.to_env()}
        meter = CpuMeter(stack.pids)
        meter.start()
        started = time.perf_counter()
        out, code, cpu = await asyncio.to_thread(_run, ["reconcile"], env)
        ran = time.perf_counter() - started
        while await _count(settings.dsn) < args.messages:
            await asyncio.sleep(0.05)
        visible = time.perf_counter() - started
        shares = meter.stop()
        print(out)
        print(f"reconcile run: {args.messages} messages over {args.numbers} numbers in "
              f"{ran:.2f} s = {args.messages / ran:,.0f} messages/s (exit {code}); the command"
              f" used {cpu:.2f} s of CPU ({cpu / args.messages * 1e6:.0f} us a message)")
        print(f"all visible in the replica {visible:.2f} s after the command started")
        print(f"cores used until then: {cpu_line(shares)}, reconcile command "
              f"{cpu / visible:.2f}")

        started = time.perf_counter()
        out, code, cpu = await asyncio.to_thread(_run, ["reconcile", "--since", "2h"], env)
        print(out)
        print(f"second run over the same window (adds nothing): "
              f"{time.perf_counter() - started:.2f} s, {cpu:.2f} s of CPU (exit {code})")
    finally:
        stack.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--numbers", type=int, default=3)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--broker", default=None, help="auto|kafka|tansu")
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
