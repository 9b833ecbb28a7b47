"""Benchmark: CPU cost of one source record in the lead agent, without Faust or a broker.

Runs `LeadProcessor.handle` (decode, rules, table reads, daily fold) into flushes of
`--flush` records, then encodes each flush (`BatchRunner.records`: outputs, changelog, replica
rows) and writes the dict tables, on a backlog of inbound messages; no broker, no Postgres. The figure is
the ceiling our own code puts on one worker core; the end-to-end rate (bench/suite.py) is
this plus Faust, aiokafka and the broker.

    python bench/agent_cpu.py --events 50000 --leads 1000 [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from leadstream.agents.daily import DailyWindows
from leadstream.config import Settings
from leadstream.streams.topics import TopicNames

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stack import inbound_record


def backlog(n: int, leads: int) -> list[tuple[bytes, bytes]]:
    now = datetime.now(UTC)
    return [inbound_record("cpu", i, i % leads + 700_000, now) for i in range(n)]


class _Table:
    def __init__(self, name: str) -> None:
        self.data: dict[bytes, bytes] = {}
        self.changelog_topic = type("T", (), {"get_topic_name": lambda _s: name})()

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)


def run(records: list[tuple[bytes, bytes]], per_flush: int) -> tuple[float, int]:
    """Seconds for the backlog, and records produced (outputs and changelog)."""
    from leadstream.agents import BatchRunner, LeadProcessor

    names = TopicNames.from_settings(Settings())
    tables = {n: _Table(f"cl-{n}") for n in ("leads", "messages", "daily")}

    async def send(topic: str, key: bytes, value: bytes) -> None:
        pass

    daily = DailyWindows(tables["daily"], send, names.daily_closed, tz="Asia/Jakarta",
                         grace_seconds=600, retention_days=7, partitions=8)
    proc = LeadProcessor(tables["leads"], tables["messages"], names, daily)
    runner = BatchRunner(proc, names, tables=tables, producer=lambda: None, replica=None,
                         max_events=per_flush, max_ms=1e9)
    produced = 0
    start = time.perf_counter()
    for i in range(0, len(records), per_flush):
        flush = proc.begin()
        for off, (k, v) in enumerate(records[i:i + per_flush], start=i):
            proc.handle(flush, names.events, 0, off, k, v)
        produce, writes, _rows = runner.records(flush)
        produced += sum(len(r) for r in produce.values())
        for name, items in writes.items():
            data = tables[name].data
            for _, key, value in items:
                data[key] = value
    elapsed = time.perf_counter() - start
    assert proc.processed == len(records) and proc.dead == 0, (proc.processed, proc.dead)
    return elapsed, produced


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--leads", type=int, default=1_000)
    ap.add_argument("--flush", type=int, nargs="+", default=[1, 5000],
                    help="records per flush; each is run on the same backlog, side by side")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    records = backlog(args.events, args.leads)
    for per_flush in args.flush:
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
        elapsed, produced = run(records, per_flush)
        if args.profile:
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        print(f"agent CPU, {per_flush} per flush: {args.events} events over {args.leads} leads"
              f" in {elapsed:.2f}s = {args.events / elapsed:,.0f} events/s per core,"
              f" {elapsed / args.events * 1e6:.0f} us/event,"
              f" {produced / args.events:.2f} records produced/event (outputs + changelog)")


if __name__ == "__main__":
    main()
