"""What the live-push trigger costs the replica writer: the worker's lead upsert (one
statement per flush, `sink.writer.SQL_LEADS`) with the `leads_notify_*` triggers enabled and
disabled, side by side in one run, alternating, on one embedded Postgres. With and without a
LISTENing connection (Postgres queues notifications only while someone listens).

    .venv/bin/python bench/notify_cost.py [--leads 5000] [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from leadstream.db.migrate import migrate_url
from leadstream.sink.writer import SQL_LEADS


def _rows(n: int, version: int, workspaces: int = 3) -> str:
    now = datetime.now(UTC).isoformat()
    return orjson.dumps([{
        "lead_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"lead{i}")),
        "workspace_id": f"ws{i % workspaces}", "lead_key": f"ws{i % workspaces}:+62812{i:08d}",
        "phone_e164": f"+62812{i:08d}", "name": f"Lead {i}", "pain_points": ["stok"],
        "sarah_extra": {}, "lead_status": "new", "message_count": version,
        "created_at": now, "updated_at": now, "last_activity_at": now, "version": version,
    } for i in range(n)]).decode()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--leads", type=int, default=5000, help="lead rows per flush (statement)")
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    procs: list[Any] = []
    url = os.environ.get("DATABASE_URL")
    if not url:
        from leadstream.embedded.postgres import EmbeddedPostgres
        pg = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="ls-bench-notify-")) / "pg",
                              fsync=False).start()
        procs.append(pg)
        url = pg.url
    db = "bench_notify_" + uuid.uuid4().hex[:8]
    conn = await asyncpg.connect(url)
    await conn.execute(f'CREATE DATABASE "{db}"')
    await conn.close()
    dsn = url.rsplit("/", 1)[0] + "/" + db
    try:
        await migrate_url(dsn)
        conn = await asyncpg.connect(dsn)
        listener = await asyncpg.connect(dsn)
        got = 0

        def on_notify(*_: Any) -> None:
            nonlocal got
            got += 1

        version = 1
        await conn.execute(SQL_LEADS, _rows(args.leads, version))  # inserted: now upserts
        times: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for mode in ("triggers off", "triggers on, nobody listening",
                         "triggers on, one listener"):
                await conn.execute("ALTER TABLE leads " + (
                    "DISABLE" if mode == "triggers off" else "ENABLE") + " TRIGGER USER")
                if mode.endswith("listener"):
                    await listener.add_listener("leadstream_leads", on_notify)
                version += 1
                payload = _rows(args.leads, version)
                t0 = time.perf_counter()
                await conn.execute(SQL_LEADS, payload)
                times.setdefault(mode, []).append(time.perf_counter() - t0)
                if mode.endswith("listener"):
                    await asyncio.sleep(0.05)
                    await listener.remove_listener("leadstream_leads", on_notify)
        print(f"lead upsert of {args.leads} rows (one flush), {args.rounds} rounds, alternating:")
        base = statistics.median(times["triggers off"])
        for mode, ts in times.items():
            med = statistics.median(ts)
            print(f"  {mode:32s} median {med * 1000:7.1f} ms  p90 "
                  f"{sorted(ts)[int(0.9 * len(ts)) - 1] * 1000:7.1f} ms  x{med / base:.2f}")
        print(f"  notifications received by the listener: {got} "
              f"({got / args.rounds:.0f} per flush of {args.leads} leads in 3 workspaces)")
        await listener.close()
        await conn.close()
    finally:
        for p in procs:
            p.stop()


if __name__ == "__main__":
    asyncio.run(main())
