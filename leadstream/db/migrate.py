"""Schema migrations: numbered SQL files applied once each, in order, under an advisory lock
(so several workers starting at once do not race)."""

from __future__ import annotations

from importlib import resources

import asyncpg

LOCK_ID = 0x1EAD5


def migrations() -> list[tuple[int, str, str]]:
    files = sorted(
        (f for f in resources.files("leadstream.db").iterdir()
         if f.name.endswith(".sql") and f.name[:3].isdigit()),
        key=lambda f: f.name,
    )
    return [(int(f.name[:3]), f.name, f.read_text()) for f in files]


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations; returns the names applied."""
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_ID)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in migrations():
            if version in done:
                continue
            await conn.execute(sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name
            )
            applied.append(name)
    return applied


async def migrate_url(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn)
    finally:
        await conn.close()
