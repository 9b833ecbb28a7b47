"""Benchmark: N leads active on one day, all summarized and stored after the day closes.

    python bench/daily_close.py --leads 100000

Produces one inbound message per lead dated *today* (workspace timezone) straight to the
events topic, starts one worker whose grace period makes today close at a chosen wall-clock
moment after ingestion has finished, and measures from that moment until every lead has its
`lead_daily_activity` row and its summary note in Postgres. Prints the figures; also the
worker's peak RSS, for the memory bound.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stack import BenchStack, inbound_record, proc_mb, py_spy, summarize_profile

from leadstream.broker.clients import ensure_topics, log_ends, make_producer
from leadstream.db.migrate import migrate_url
from leadstream.domain.daily import day_bounds


async def main_async(args: argparse.Namespace) -> None:
    tz = "Asia/Jakarta"
    tmp = Path(tempfile.mkdtemp(prefix="lsdaily-"))
    stack = BenchStack(tmp, args.partitions)
    settings = stack.start()
    try:
        await ensure_topics(settings)
        await migrate_url(settings.dsn)
        now = datetime.now(UTC)
        today = now.astimezone(ZoneInfo(tz)).date()
        start_of_day, end_of_day = day_bounds(today, tz)
        # one message per lead, earlier today
        producer = make_producer(settings, linger_ms=5)
        await producer.start()
        t0 = time.perf_counter()
        futures = []
        at = max(start_of_day.astimezone(UTC), now - timedelta(hours=1))
        for i in range(args.leads):
            key, value = inbound_record("daily", i, i, at, text="Berapa harga paket bulanannya?")
            futures.append(await producer.send(settings.topic("events"), value, key=key))
        await asyncio.gather(*futures)
        await producer.stop()
        print(f"produced {args.leads} events in {time.perf_counter() - t0:.1f}s", flush=True)
        # today closes `close_after` seconds from now: grace = close moment - end of today
        close_at = datetime.now(UTC) + timedelta(seconds=args.close_after)
        grace = int((close_at - end_of_day.astimezone(UTC)).total_seconds())
        worker = stack.spawn("worker", settings.model_copy(update={
            "daily_close_grace_seconds": grace, "daily_tick_seconds": 1.0}), "worker")
        conn = await asyncpg.connect(settings.dsn)
        while True:
            n = await conn.fetchval("SELECT count(*) FROM leads WHERE workspace_id = 'daily'"
                                    " AND message_count = 1")
            if n >= args.leads:
                break
            if datetime.now(UTC) >= close_at:
                print(f"ingestion not finished at the close ({n}/{args.leads}); "
                      "raise --close-after", flush=True)
                return
            await asyncio.sleep(0.5)
        ingested = datetime.now(UTC)
        started = close_at - timedelta(seconds=args.close_after)
        print(f"ingested and in the replica {(ingested - started).total_seconds():.1f}s after"
              f" the worker started; close in {(close_at - ingested).total_seconds():.1f}s",
              flush=True)
        await asyncio.sleep(max(0.0, (close_at - datetime.now(UTC)).total_seconds()))
        t_close = time.perf_counter()
        prof = None
        if args.profile:
            prof = py_spy(worker.pid, 25, tmp / "close.prof")
        rows = notes = 0
        next_report = t_close + 5
        while time.perf_counter() - t_close < args.timeout:
            rows = await conn.fetchval("SELECT count(*) FROM lead_daily_activity"
                                       " WHERE workspace_id = 'daily'")
            notes = await conn.fetchval("SELECT count(*) FROM lead_notes WHERE workspace_id ="
                                        " 'daily' AND author = 'system-daily-summary'")
            if rows >= args.leads and notes >= args.leads:
                break
            if time.perf_counter() >= next_report:  # where the time goes: close, summary, sink
                ends = await log_ends(settings, [settings.topic("daily-closed")])
                print(f"  +{time.perf_counter() - t_close:5.1f}s windows closed"
                      f" {sum(ends.values())}, rows {rows}, notes {notes}", flush=True)
                next_report += 5
            await asyncio.sleep(0.2)
        elapsed = time.perf_counter() - t_close
        print(f"\nleads={args.leads} partitions={args.partitions}: {rows} rows and {notes} notes "
              f"stored {elapsed:.1f}s after the close; worker peak RSS {proc_mb(worker.pid, 'VmHWM'):.0f}"
              " MB", flush=True)
        await conn.close()
        if prof is not None:
            prof.wait()
            print("\nworker profile during the close (py-spy, 25 s)\n"
                  + summarize_profile(tmp / "close.prof", top=25))
    finally:
        stack.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--leads", type=int, default=100_000)
    ap.add_argument("--profile", action="store_true", help="py-spy the worker in the close")
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--close-after", type=float, default=240.0,
                    help="seconds from the worker's start to today's close")
    ap.add_argument("--timeout", type=float, default=600.0)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
