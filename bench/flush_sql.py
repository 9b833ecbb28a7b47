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
    python bench/flush_sql.py --hot           # what the activity indexes cost a lead update

`--hot` answers one question instead: what a flush's lead rows would cost if no index of
`leads` held a column that changes with every message (`last_activity_at`,
`last_inbound_at`), so that Postgres could update the row in place (a HOT update: no new
entry in any of its ~20 indexes), and what that saving nets once those indexes live on a
narrow side table of the sort keys instead (a hot/cold split, which the lead list would then
join). Three sides in alternating blocks of committed flushes, `leads` rewritten at
fillfactor 70 (room on each page for the new version), HOT updates counted.
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


#: the lead indexes that hold a column every message changes: while one exists, no lead
#: update can be HOT (each goes into every index of the table, GIN ones included)
ACTIVITY_INDEXES = (
    "leads_ws_activity", "leads_ws_status_activity", "leads_ws_temperature", "leads_ws_owner",
    "leads_ws_needs_reply",
)


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


async def load(conn: asyncpg.Connection, n: int, at: datetime) -> dict[int, LeadState]:
    """A replica of `n` leads, a message and a day each; the leads' states by number."""
    leads: dict[int, LeadState] = {}
    t0 = time.perf_counter()
    for start in range(0, n, 5000):
        rows = rows_for(leads, list(range(start, min(n, start + 5000))), 0, at)
        async with conn.transaction():
            await write_json(conn, rows)
    await conn.execute("ANALYZE")
    print(f"# replica: {n:,} leads with a message and a day each, "
          f"loaded in {time.perf_counter() - t0:.1f} s", flush=True)
    return leads


async def updates(conn: asyncpg.Connection) -> tuple[int, int]:
    """(HOT updates, updates) of `leads` so far; this backend's pending counts flushed first
    (Postgres 15 sends a backend's counts to the shared statistics at most once a second)."""
    await conn.execute("SELECT pg_stat_force_next_flush()")
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    row = await conn.fetchrow("SELECT n_tup_hot_upd, n_tup_upd FROM pg_stat_user_tables"
                              " WHERE relname = 'leads'")
    return int(row[0]), int(row[1])


#: the hot/cold split `--hot` prices: the lead list's sort and filter keys in a narrow table
#: of their own, carrying the activity indexes, so the wide `leads` row loses them
SIDE_TABLE = """
CREATE TABLE lead_activity AS SELECT lead_id, workspace_id, lead_status, lead_temperature,
    owner, last_activity_at, last_inbound_at, last_outbound_at, version FROM leads;
ALTER TABLE lead_activity ADD PRIMARY KEY (lead_id);
"""
SIDE_UPSERT = """
INSERT INTO lead_activity AS a SELECT lead_id, workspace_id, lead_status, lead_temperature,
    owner, last_activity_at, last_inbound_at, last_outbound_at, version
  FROM json_populate_recordset(null::lead_activity, $1::json)
ON CONFLICT (lead_id) DO UPDATE SET lead_status = EXCLUDED.lead_status,
    lead_temperature = EXCLUDED.lead_temperature, owner = EXCLUDED.owner,
    last_activity_at = EXCLUDED.last_activity_at, last_inbound_at = EXCLUDED.last_inbound_at,
    last_outbound_at = EXCLUDED.last_outbound_at, version = EXCLUDED.version
  WHERE a.version < EXCLUDED.version
"""


async def hot(conn: asyncpg.Connection, args: argparse.Namespace) -> None:
    """A flush's lead rows written three ways, committed, in alternating blocks: as now; with
    no index on a per-message column (HOT); and that plus the split's narrow side table."""
    at = datetime.now(UTC) - timedelta(hours=1)
    leads = await load(conn, args.leads, at)
    ddl = {r["indexname"]: r["indexdef"] for r in await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'leads'")}
    await conn.execute(SIDE_TABLE)
    for index in ACTIVITY_INDEXES:  # the same keys, on the side table
        await conn.execute(ddl[index].replace(f"INDEX {index} ON public.leads",
                                              f"INDEX side_{index} ON lead_activity"))
    await conn.execute("ALTER TABLE leads SET (fillfactor = 70)")
    await conn.execute("VACUUM FULL leads")
    await conn.execute("ANALYZE")
    step = max(1, args.leads // args.batch)
    serial = 0
    #: name -> (activity indexes on leads, side table written, flush times, (HOT, updates))
    sides: dict[str, tuple[bool, bool, list[float], list[tuple[int, int]]]] = {
        "every index (as now)": (True, False, [], []),
        "no activity index on leads": (False, False, [], []),
        "that + the side table (the split)": (False, True, [], []),
    }
    present = True
    for b in range(3 * 3):
        name = list(sides)[b % 3]
        with_them, side, times, hots = sides[name]
        if with_them != present:
            for index in ACTIVITY_INDEXES:
                await conn.execute(ddl[index] if with_them else f"DROP INDEX {index}")
            present = with_them
        await conn.execute("VACUUM leads, lead_activity")  # the last block's dead versions
        before = await updates(conn)
        for _ in range(max(1, args.trials // 3)):
            serial += 1
            rows = rows_for(leads, [(k * step + serial) % args.leads
                                    for k in range(args.batch)],
                            serial, at + timedelta(minutes=serial))
            array = (b"[" + b",".join(rows["leads"]) + b"]").decode()
            started = time.perf_counter()
            async with conn.transaction():
                await conn.execute(SQL_BY_KIND["leads"], array)
                if side:
                    await conn.execute(SIDE_UPSERT, array)
            times.append(time.perf_counter() - started)
        after = await updates(conn)
        hots.append((after[0] - before[0], after[1] - before[1]))
    print()
    print(f"| lead rows (leads at fillfactor 70) | {args.batch} leads: median | p90 | per lead"
          " | HOT updates of `leads` |")
    print("|---|---|---|---|---|")
    for name, (_, _, ts, hots) in sides.items():
        med = statistics.median(ts)
        p90 = sorted(ts)[int(len(ts) * 0.9) - 1]
        share = sum(h for h, _ in hots) / max(1, sum(u for _, u in hots))
        print(f"| {name} | {med * 1000:.1f} ms | {p90 * 1000:.1f} ms |"
              f" {med / args.batch * 1e6:.0f} µs | {share * 100:.0f}% |")


async def run(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="lsflush-"))
    pg = EmbeddedPostgres(tmp / "pg").start()
    try:
        conn = await asyncpg.connect(pg.url)
        await migrate(conn)
        if args.hot:
            await hot(conn, args)
            await conn.close()
            return
        at = datetime.now(UTC) - timedelta(hours=1)
        leads = await load(conn, args.leads, at)
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
    ap.add_argument("--hot", action="store_true",
                    help="only: a lead update with and without the activity indexes")
    args = ap.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
