"""Rebuild the replica from the derived topics (the log is the truth).

Reads every derived topic from the beginning to the log end captured at start, outside any
consumer group, and writes with the same version-guarded statements as the live sink. The
records go to Postgres as they are read (one JSON array per table per batch, deduplicated and
filtered by workspace in SQL: `writer.write_json(from_log=True)`); a batch Postgres refuses is decoded in
Python instead, skipping what is not a row.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import asyncpg
import orjson
from aiokafka.structs import TopicPartition

from leadstream.broker.clients import log_ends, read_to_end
from leadstream.config import Settings
from leadstream.sink.service import decode_records, route
from leadstream.sink.writer import Batch, write_batch, write_json
from leadstream.streams.topics import TopicNames

TABLES = ("leads", "messages", "lead_status_history", "lead_notes", "lead_daily_activity",
          "lead_tasks")


#: (table, order) for checksums: every replica table the topics rebuild
CHECKSUM_TABLES = (("leads", "lead_id"), ("messages", "workspace_id, message_id"),
                 ("lead_status_history", "event_id"), ("lead_notes", "note_id"),
                 ("lead_daily_activity", "lead_id, day"), ("lead_tasks", "task_id"))


async def checksums(conn: asyncpg.Connection, schema: str = "public",
                 workspace: str | None = None) -> dict[str, tuple[int, str]]:
    """Row count and md5 of all rows (in key order) per table."""
    out = {}
    for table, order in CHECKSUM_TABLES:
        where = "WHERE workspace_id = $1" if workspace else ""
        row = await conn.fetchrow(
            f"SELECT count(*) AS n, md5(coalesce(string_agg(t::text, '|' ORDER BY {order}),"
            f" '')) AS h FROM {schema}.{table} t {where}", *([workspace] if workspace else []))
        out[table] = (int(row["n"]), str(row["h"]))
    return out


async def replay_and_verify(settings: Settings, *, workspace: str | None = None,
                            progress: Callable[[int, int], Any] | None = None,
                            schema: str = "leadstream_verify") -> dict[str, Any]:
    """Rebuild into a scratch schema and compare it with the live replica."""
    from leadstream.db.migrate import migrate

    conn = await asyncpg.connect(settings.dsn)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
        await conn.execute(f"SET search_path TO {schema}, public")  # public: extensions
        await migrate(conn)
    finally:
        await conn.close()
    stats = await replay(settings, workspace=workspace, progress=progress, search_path=schema,
                         fresh=True)
    conn = await asyncpg.connect(settings.dsn)
    try:
        live = await checksums(conn, "public", workspace)
        rebuilt = await checksums(conn, schema, workspace)
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await conn.close()
    stats["tables"] = {t: {"live": live[t], "rebuilt": rebuilt[t], "equal": live[t] == rebuilt[t]}
                       for t in live}
    stats["equal"] = all(v["equal"] for v in stats["tables"].values())
    return stats


def _tp_key(tp: TopicPartition) -> str:
    return f"{tp.topic}:{tp.partition}"


def _tp_of(key: str) -> TopicPartition:
    topic, _, partition = key.rpartition(":")
    return TopicPartition(topic, int(partition))


async def replay(settings: Settings, *, workspace: str | None = None,
                 progress: Callable[[int, int], Any] | None = None,
                 search_path: str | None = None, fresh: bool = False,
                 batch_records: int = 20000) -> dict[str, Any]:
    """Rebuild the replica (or one workspace of it) from the derived topics.

    Resumable: the target's `replay_runs` row holds the log end this run rebuilds to and the
    position reached per partition, updated in the same transaction as each batch, so an
    interrupted replay continues where it stopped (unless `fresh`). `progress(done, goal)`
    is called after each batch with record counts.
    """
    names = TopicNames.from_settings(settings)
    routes = route(names)
    started = time.monotonic()
    scope = f"{search_path or 'public'}/{workspace or '*'}"
    conn = await asyncpg.connect(settings.dsn, server_settings=(
        {"search_path": search_path} if search_path else {}))
    total = 0
    try:
        run = await conn.fetchrow(
            "SELECT goal, positions, records FROM replay_runs WHERE scope = $1"
            " AND finished_at IS NULL", scope)
        resumed = run is not None and not fresh
        if resumed:
            assert run is not None
            ends = {_tp_of(k): v for k, v in orjson.loads(run["goal"]).items()}
            positions = {_tp_of(k): v for k, v in orjson.loads(run["positions"]).items()}
            total = int(run["records"])
        else:
            ends = await log_ends(settings, names.derived())
            positions = {}
            async with conn.transaction():
                for t in TABLES:
                    if workspace:
                        await conn.execute(f"DELETE FROM {t} WHERE workspace_id = $1",
                                           workspace)
                    else:
                        await conn.execute(f"TRUNCATE {t}")
                await conn.execute(
                    "INSERT INTO replay_runs (scope, goal) VALUES ($1, $2::jsonb)"
                    " ON CONFLICT (scope) DO UPDATE SET goal = EXCLUDED.goal, positions = '{}',"
                    " records = 0, started_at = now(), finished_at = NULL",
                    scope, orjson.dumps({_tp_key(tp): o for tp, o in ends.items()}).decode())
        async for records, goal in read_to_end(settings, names.derived(), start=positions,
                                               ends=ends, max_records=batch_records,
                                               fetch_max_bytes=64 * 1024 * 1024):
            for r in records:
                tp = TopicPartition(r.topic, r.partition)
                positions[tp] = max(positions.get(tp, 0), r.offset + 1)
            total += len(records)
            raw: dict[str, list[bytes]] = {}
            for r in records:
                kind = routes.get(r.topic)
                if kind is not None and kind != "failures" and r.value:
                    raw.setdefault(kind, []).append(r.value)
            reached = orjson.dumps({_tp_key(tp): o for tp, o in positions.items()}).decode()
            save = ("UPDATE replay_runs SET positions = $2::jsonb, records = $3"
                    " WHERE scope = $1")
            try:
                async with conn.transaction():
                    await write_json(conn, raw, from_log=True, workspace=workspace)
                    await conn.execute(save, scope, reached, total)
            except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError,
                    asyncpg.exceptions.ProgramLimitExceededError):
                # a record that is not a row (or one Postgres refuses): decode this batch in
                # Python, which skips what cannot be decoded
                batch, _, _ = decode_records(records, routes)
                if workspace:
                    batch = Batch(**{
                        kind: [r for r in getattr(batch, kind)
                               if r.get("workspace_id") == workspace]
                        for kind in ("leads", "messages", "history", "notes", "daily",
                                     "tasks")})
                async with conn.transaction():
                    if len(batch):
                        await write_batch(conn, batch)
                    await conn.execute(save, scope, reached, total)
            if progress:
                progress(sum(positions.values()), goal)
        await conn.execute("UPDATE replay_runs SET finished_at = now() WHERE scope = $1", scope)
        # a rebuild is a bulk load: the planner's statistics describe the tables before it
        # until autovacuum gets to them (a minute or more), and a lead list planned on "the
        # table is empty" sorts the whole workspace (51 ms a page at 100k leads against
        # 0.1 ms; bench/scale.py)
        await conn.execute(f"ANALYZE {', '.join(TABLES)}")
    finally:
        await conn.close()
    return {"records": total, "seconds": time.monotonic() - started, "resumed": resumed}
