"""Rebuild the replica from the derived topics (the log is the truth).

Reads every derived topic from the beginning to the log end captured at start, outside any
consumer group, and writes with the same batched, version-guarded writer as the live sink.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import asyncpg

from leadstream.broker.clients import read_to_end
from leadstream.config import Settings
from leadstream.sink.service import decode_records, route
from leadstream.sink.writer import Batch, write_batch
from leadstream.streams.topics import TopicNames

TABLES = ("leads", "messages", "lead_status_history", "lead_notes", "lead_daily_activity")


#: (table, order) for checksums: every replica table the topics rebuild
DIGEST_TABLES = (("leads", "lead_id"), ("messages", "message_id"),
                 ("lead_status_history", "event_id"), ("lead_notes", "note_id"),
                 ("lead_daily_activity", "lead_id, day"))


async def digest(conn: asyncpg.Connection, schema: str = "public",
                 workspace: str | None = None) -> dict[str, tuple[int, str]]:
    """Row count and md5 of all rows (in key order) per table."""
    out = {}
    for table, order in DIGEST_TABLES:
        where = "WHERE workspace_id = $1" if workspace else ""
        row = await conn.fetchrow(
            f"SELECT count(*) AS n, md5(coalesce(string_agg(t::text, '|' ORDER BY {order}),"
            f" '')) AS h FROM {schema}.{table} t {where}", *([workspace] if workspace else []))
        out[table] = (int(row["n"]), str(row["h"]))
    return out


async def replay_and_verify(settings: Settings, *, workspace: str | None = None,
                            progress: Callable[[str], Any] | None = None,
                            schema: str = "leadstream_verify") -> dict[str, Any]:
    """Rebuild into a scratch schema and compare it with the live replica."""
    from leadstream.db.migrate import migrate

    conn = await asyncpg.connect(settings.dsn)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
        await conn.execute(f"SET search_path TO {schema}")
        await migrate(conn)
    finally:
        await conn.close()
    stats = await replay(settings, workspace=workspace, progress=progress, search_path=schema)
    conn = await asyncpg.connect(settings.dsn)
    try:
        live = await digest(conn, "public", workspace)
        rebuilt = await digest(conn, schema, workspace)
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await conn.close()
    stats["tables"] = {t: {"live": live[t], "rebuilt": rebuilt[t], "equal": live[t] == rebuilt[t]}
                       for t in live}
    stats["equal"] = all(v["equal"] for v in stats["tables"].values())
    return stats


async def replay(settings: Settings, *, workspace: str | None = None,
                 progress: Callable[[str], Any] | None = None,
                 search_path: str | None = None) -> dict[str, Any]:
    names = TopicNames.from_settings(settings)
    routes = route(names)
    started = time.monotonic()
    conn = await asyncpg.connect(settings.dsn, server_settings=(
        {"search_path": search_path} if search_path else {}))
    total = 0
    try:
        async with conn.transaction():
            for t in TABLES:
                if workspace:
                    await conn.execute(f"DELETE FROM {t} WHERE workspace_id = $1", workspace)
                else:
                    await conn.execute(f"TRUNCATE {t}")
        async for records, goal in read_to_end(settings, names.derived(),
                                               fetch_max_bytes=64 * 1024 * 1024):
            batch, _, _ = decode_records(records, routes)
            if workspace:
                batch = Batch(*[[r for r in rows if r.get("workspace_id") == workspace]
                                for rows in (batch.leads, batch.messages, batch.history,
                                             batch.notes, batch.daily)])
            if len(batch):
                await write_batch(conn, batch)
            total += len(records)
            if progress:
                progress(f"replay: {total}/{goal} records")
    finally:
        await conn.close()
    return {"records": total, "seconds": time.monotonic() - started}
