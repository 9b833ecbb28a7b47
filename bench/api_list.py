"""Dashboard read benchmark: GET /api/leads at 100,000 leads in one workspace.

Seeds N leads (varied status, temperature, score, business, domisili, activity) into a fresh
database, prints the EXPLAIN plan's access path for every list query shape (each must use an
index on `leads`, never a sequential scan), then times sequential GETs through the real
aiohttp app (auth, validation, JSON) per shape: p50/p99 in ms.

    .venv/bin/python bench/api_list.py [--leads 100000] [--requests 200]
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

import aiohttp
import asyncpg
from aiohttp.test_utils import TestServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from leadstream.config import Settings
from leadstream.db.migrate import migrate_url
from leadstream.db.registry import add_workspace
from leadstream.http.models import LeadQuery
from leadstream.http.queries import lead_list_sql
from leadstream.http.server import make_app
from tests.support.seed import SEED

SHAPES: list[dict[str, str]] = [
    {},
    {"status": "qualified"},
    {"temperature": "hot"},
    {"sort": "lead_score"},
    {"sort": "created_at"},
    {"min_score": "80"},
    {"domisili": "bandung"},
    {"business_type": "kuliner", "sort": "created_at"},
    {"urgency": "high"},
    {"q": "lead a4242"},
    {"q": "+62812000123"},
]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--leads", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=200)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ls-bench-api-"))
    procs: list[Any] = []
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        from leadstream.embedded.broker import start_broker
        b = start_broker(os.environ.get("LEADSTREAM_EMBEDDED_BROKER", "auto"), tmp / "broker")
        procs.append(b)
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = b.bootstrap
        os.environ["LEADSTREAM_KAFKA_FLAVOR"] = b.flavor
    if not os.environ.get("DATABASE_URL"):
        from leadstream.embedded.postgres import EmbeddedPostgres
        pg = EmbeddedPostgres(tmp / "pg", fsync=False).start()
        procs.append(pg)
        os.environ["DATABASE_URL"] = pg.url
    base_url = os.environ["DATABASE_URL"]
    db = "bench_api_" + uuid.uuid4().hex[:8]
    conn = await asyncpg.connect(base_url)
    await conn.execute(f'CREATE DATABASE "{db}"')
    await conn.close()
    settings = Settings.model_validate({"DATABASE_URL": base_url.rsplit("/", 1)[0] + "/" + db,
                                        "LEADSTREAM_DATA_DIR": tmp / "data"})
    try:
        await migrate_url(settings.dsn)
        conn = await asyncpg.connect(settings.dsn)
        t = time.monotonic()
        await conn.execute(SEED.replace("% 240)", f"% {args.leads})"), "a", "ws1", 0,
                           datetime(2025, 10, 1, tzinfo=UTC), args.leads)
        await add_workspace(conn, workspace_id="ws1", phone_number_id="bench",
                            webhook_secret="s", api_token="tok-bench", role="human")
        await conn.execute("ANALYZE leads")
        print(f"seeded {args.leads:,} leads in {time.monotonic() - t:.1f}s")
        print("\nEXPLAIN (access path of each list query on leads)")
        for shape in SHAPES:
            sql, qargs = lead_list_sql("ws1", LeadQuery.model_validate(shape))
            plan = [r[0] for r in await conn.fetch("EXPLAIN " + sql, *qargs)]
            access = [line.strip() for line in plan if "Scan" in line]
            seq = any("Seq Scan on leads" in a for a in access)
            print(f"  {str(shape) or '{}':48} {'SEQ SCAN' if seq else 'index'}: "
                  f"{access[0] if access else plan[0]}")
        await conn.close()
        server = TestServer(make_app(settings))
        await server.start_server()
        base = str(server.make_url("")).rstrip("/")
        headers = {"Authorization": "Bearer tok-bench"}
        print(f"\nGET /api/leads, {args.requests} sequential requests per shape (ms)")
        print(f"  {'query':48} {'p50':>7} {'p99':>7} {'rows':>5}")
        worst = 0.0
        async with aiohttp.ClientSession() as s:
            for shape in SHAPES:
                times = []
                rows = 0
                for _ in range(args.requests):
                    t0 = time.perf_counter()
                    async with s.get(f"{base}/api/leads", params=shape, headers=headers) as r:
                        body = await r.json()
                        assert r.status == 200, body
                    times.append((time.perf_counter() - t0) * 1000)
                    rows = len(body["leads"])
                times.sort()
                p99 = times[int(len(times) * 0.99) - 1]
                worst = max(worst, p99)
                print(f"  {shape!s:48} {statistics.median(times):7.1f} {p99:7.1f} {rows:5}")
        print(f"\nworst p99 {worst:.1f} ms (goal < 50 ms)")
        await server.close()
    finally:
        for p in procs:
            p.stop()


if __name__ == "__main__":
    asyncio.run(main())
