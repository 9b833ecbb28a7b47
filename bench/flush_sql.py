"""Benchmark: the worker's flush in Postgres (#31, item 3): `EXPLAIN (ANALYZE, BUFFERS)` of
each statement of a typical flush on a replica that already holds `--leads` leads, then the
time of the whole flush (one transaction, every statement) as the writer sends it
(`json_populate_recordset` over a `json` parameter) against `jsonb_populate_recordset` over
`jsonb` (the writer before session 11), alternating, rolled back each time so every trial
meets the same tables.

A flush here is `--batch` events of distinct existing leads, as the worker makes it: each a
new lead version, a new message row and its day's row, the rows built by the real rules and
encoded by the real encoder.

    python bench/flush_sql.py [--leads 100000] [--batch 500] [--trials 40]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stack import inbound_record

from leadstream.db.migrate import migrate
from leadstream.domain.daily import contributions, fold
from leadstream.domain.model import InboundEvent, LeadState
from leadstream.domain.rules import apply_inbound
from leadstream.embedded.postgres import EmbeddedPostgres
from leadstream.sink.writer import SQL_BY_KIND, write_json
from leadstream.streams.records import encode

TZ = "Asia/Jakarta"
#: the two indexes 015_unused_lead_indexes.sql dropped, as 001 made them: their cost per
#: flush, measured by making them again
LEGACY = (
    "CREATE INDEX leads_text_search ON leads USING gin (to_tsvector('simple',"
    " coalesce(name, '') || ' ' || coalesce(business_type, '') || ' '"
    " || coalesce(phone_e164, '')))",
    "CREATE INDEX leads_ws_score ON leads (workspace_id, lead_score DESC NULLS LAST, lead_id)",
)


def rows_for(leads: dict[int, LeadState], which: list[int], serial: int,
             at: datetime) -> dict[str, list[bytes]]:
    """One flush: for each lead in `which`, a new inbound message applied by the rules."""
    out: dict[str, list[bytes]] = {"leads": [], "messages": [], "daily": []}
    for n in which:
        _, raw = inbound_record("flush", serial * 1_000_000 + n, n, at)
        ev = InboundEvent.model_validate_json(raw)
        before = leads.get(n)
        applied = apply_inbound(before, None, ev)
        leads[n] = applied.lead
        out["leads"].append(encode(applied.lead))
        assert applied.message is not None
        out["messages"].append(encode(applied.message))
        for day, c in contributions(before, applied, applied.new_message, TZ).items():
            out["daily"].append(encode(fold(None, applied.lead, day, c)))
    return out


def as_jsonb(sql: str) -> str:
    """The writer's statement as it was before session 11 (over jsonb)."""
    return (sql.replace("json_populate_recordset", "jsonb_populate_recordset")
            .replace("$1::json)", "$1::jsonb)"))


async def flush(conn: asyncpg.Connection, rows: dict[str, list[bytes]], jsonb: bool) -> float:
    started = time.perf_counter()
    tx = conn.transaction()
    await tx.start()
    try:
        if jsonb:
            for kind, values in rows.items():
                await conn.execute(as_jsonb(SQL_BY_KIND[kind]),
                                   (b"[" + b",".join(values) + b"]").decode())
        else:
            await write_json(conn, rows)
    finally:
        await tx.rollback()
    return time.perf_counter() - started


async def run(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="lsflush-"))
    pg = EmbeddedPostgres(tmp / "pg").start()
    try:
        conn = await asyncpg.connect(pg.url)
        await migrate(conn)
        leads: dict[int, LeadState] = {}
        at = datetime.now(UTC) - timedelta(hours=1)
        t0 = time.perf_counter()
        for start in range(0, args.leads, 5000):
            rows = rows_for(leads, list(range(start, min(args.leads, start + 5000))), 0, at)
            async with conn.transaction():
                await write_json(conn, rows)
        await conn.execute("ANALYZE")
        print(f"# replica: {args.leads:,} leads with a message and a day each, "
              f"loaded in {time.perf_counter() - t0:.1f} s", flush=True)
        step = max(1, args.leads // args.batch)
        batches = [rows_for(leads, [(k * step + t) % args.leads for k in range(args.batch)],
                            t + 1, at + timedelta(minutes=t + 1)) for t in range(args.trials)]
        # the plans, once
        for kind in ("leads", "messages", "daily"):
            array = (b"[" + b",".join(batches[0][kind]) + b"]").decode()
            tx = conn.transaction()
            await tx.start()
            try:
                plan = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + SQL_BY_KIND[kind], array)
            finally:
                await tx.rollback()
            print(f"\n## {kind}: {args.batch} rows\n")
            print("\n".join("    " + r[0] for r in plan))
        times: dict[str, list[float]] = {"jsonb": [], "json": []}
        for rows in batches:
            for name in ("jsonb", "json") if len(times["jsonb"]) % 2 == 0 else ("json", "jsonb"):
                times[name].append(await flush(conn, rows, name == "jsonb"))
        # the dropped indexes' cost: blocks of trials with them made again, and without
        blocks: dict[str, list[float]] = {"with 001's two unused indexes": [],
                                          "without (015)": []}
        for b in range(4):
            legacy = b % 2 == 0
            for ddl in LEGACY:
                if legacy:
                    await conn.execute(ddl)
                else:
                    await conn.execute(f"DROP INDEX IF EXISTS {ddl.split()[2]}")
            name = "with 001's two unused indexes" if legacy else "without (015)"
            for rows in batches[b::4]:
                blocks[name].append(await flush(conn, rows, False))
        print()
        print(f"| lead indexes | flush of {args.batch} events: median | per event |")
        print("|---|---|---|")
        for name, ts in blocks.items():
            med = statistics.median(ts)
            print(f"| {name} | {med * 1000:.1f} ms | {med / args.batch * 1e6:.0f} µs |")
        print()
        print(f"| statements | flush of {args.batch} events: median | p90 | per event |")
        print("|---|---|---|---|")
        for name, ts in times.items():
            med = statistics.median(ts)
            p90 = sorted(ts)[int(len(ts) * 0.9) - 1]
            print(f"| `{name}_populate_recordset` | {med * 1000:.1f} ms | {p90 * 1000:.1f} ms"
                  f" | {med / args.batch * 1e6:.0f} µs |")
        await conn.close()
    finally:
        pg.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--leads", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--trials", type=int, default=40)
    args = ap.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
