"""Per number, how far the log is known to hold everything Kapso has (`complete_until`), and
how its reconciliation runs go: the reconciler's durable state (issue #27)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

#: a number whose reconciliation failed this many times in a row is listed as failing (the
#: dashboard's sync panel, `leadstream status`)
FAILING_AFTER = 3


async def advance(conn: asyncpg.Connection | asyncpg.Pool, phone_number_id: str,
                  workspace_id: str, until: datetime, *, read: int, missing: int) -> None:
    """Everything up to `until` is in the log now; the watermark only moves forward."""
    await conn.execute(
        "INSERT INTO reconcile_watermarks (phone_number_id, workspace_id, complete_until,"
        " last_run_at, last_ok_at, read_total, missing_total)"
        " VALUES ($1, $2, $3, now(), now(), $4, $5)"
        " ON CONFLICT (phone_number_id) DO UPDATE SET workspace_id = EXCLUDED.workspace_id,"
        " complete_until = greatest(reconcile_watermarks.complete_until, EXCLUDED.complete_until),"
        " last_run_at = now(), last_ok_at = now(), last_error = NULL, failures = 0,"
        " read_total = reconcile_watermarks.read_total + EXCLUDED.read_total,"
        " missing_total = reconcile_watermarks.missing_total + EXCLUDED.missing_total",
        phone_number_id, workspace_id, until, read, missing)


async def failed(conn: asyncpg.Connection | asyncpg.Pool, phone_number_id: str,
                 workspace_id: str, error: str) -> None:
    """A run that could not read the number: the watermark stays where it was."""
    await conn.execute(
        "INSERT INTO reconcile_watermarks (phone_number_id, workspace_id, last_run_at,"
        " last_error, failures) VALUES ($1, $2, now(), $3, 1)"
        " ON CONFLICT (phone_number_id) DO UPDATE SET last_run_at = now(),"
        " last_error = EXCLUDED.last_error, failures = reconcile_watermarks.failures + 1",
        phone_number_id, workspace_id, error[:500])


async def watermarks(conn: asyncpg.Connection | asyncpg.Pool,
                     workspace_id: str | None = None) -> list[dict[str, Any]]:
    """Every number's reconciliation state (of one workspace, or all)."""
    rows = await conn.fetch(
        "SELECT phone_number_id, workspace_id, complete_until, last_run_at, last_ok_at,"
        " last_error, failures, read_total, missing_total FROM reconcile_watermarks"
        " WHERE $1::text IS NULL OR workspace_id = $1 ORDER BY workspace_id, phone_number_id",
        workspace_id)
    return [{**dict(r), "failing": r["failures"] >= FAILING_AFTER} for r in rows]
