"""`sync_failures` retention (leadstream.db.failures): by age and by count per workspace,
on a real Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from leadstream.db.failures import prune_failures
from leadstream.db.migrate import migrate

pytestmark = pytest.mark.integration


async def test_keeps_the_newest_per_workspace_within_the_age(database: str) -> None:
    conn = await asyncpg.connect(database)
    try:
        await migrate(conn)
        now = datetime.now(UTC)
        rows: list[tuple[str, str | None, datetime]] = [
            (f"{ws}-{i}", ws, now - timedelta(hours=i)) for ws in ("a", "b") for i in range(6)]
        rows.append(("old-a", "a", now - timedelta(days=40)))
        rows.append(("none-1", None, now - timedelta(hours=1)))
        await conn.executemany(
            "INSERT INTO sync_failures (event_id, stage, reason, workspace_id, failed_at,"
            " original_b64) VALUES ($1, 'worker', 'r', $2, $3, '')", rows)
        # nothing to do with both limits off
        assert await prune_failures(conn, keep_days=0, keep_count=0) == 0
        gone = await prune_failures(conn, keep_days=30, keep_count=4)
        left = sorted(r["event_id"] for r in await conn.fetch("SELECT event_id FROM"
                                                              " sync_failures"))
        # the 40-day-old one by age; the two oldest of each workspace by count
        assert gone == 1 + 2 + 2
        assert left == sorted([f"{ws}-{i}" for ws in ("a", "b") for i in range(4)]
                              + ["none-1"])
        assert await prune_failures(conn, keep_days=30, keep_count=4) == 0
    finally:
        await conn.close()
