"""Benchmark: CPU cost of one source record in the lead agent, without Faust or a broker.

Runs `LeadProcessor.handle` (decode, rules, table reads/writes, daily fold, output encode) on
a backlog of inbound messages with dict tables and a send that only collects. The figure is
the ceiling our own code puts on one worker core; the end-to-end rate (bench/suite.py) is
this plus Faust, aiokafka and the broker.

    python bench/agent_cpu.py --events 50000 --leads 1000 [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from leadstream.agents.daily import DailyWindows
from leadstream.config import Settings
from leadstream.streams.topics import TopicNames

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stack import inbound_record


def backlog(n: int, leads: int) -> list[tuple[bytes, bytes]]:
    now = datetime.now(UTC)
    return [inbound_record("cpu", i, i % leads + 700_000, now) for i in range(n)]


async def run(records: list[tuple[bytes, bytes]]) -> tuple[float, int]:
    from leadstream.agents import LeadProcessor

    names = TopicNames.from_settings(Settings())
    sent = 0

    async def send(topic: str, key: bytes, value: bytes) -> None:
        nonlocal sent
        sent += 1

    leads: dict[bytes, Any] = {}
    daily = DailyWindows({}, send, names.daily_closed, tz="Asia/Jakarta", grace_seconds=600,
                         retention_days=7, partitions=8)
    proc = LeadProcessor(leads, {}, send, names, daily)
    start = time.perf_counter()
    for off, (k, v) in enumerate(records):
        await proc.handle(names.events, 0, off, k, v)
    elapsed = time.perf_counter() - start
    assert proc.processed == len(records) and proc.dead == 0, (proc.processed, proc.dead)
    return elapsed, sent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--leads", type=int, default=1_000)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    records = backlog(args.events, args.leads)
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
    elapsed, sent = asyncio.run(run(records))
    if args.profile:
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    print(f"agent CPU: {args.events} events over {args.leads} leads in {elapsed:.2f}s ="
          f" {args.events / elapsed:,.0f} events/s per core, {elapsed / args.events * 1e6:.0f}"
          f" us/event, {sent / args.events:.1f} output records/event (plus table writes)")


if __name__ == "__main__":
    main()
