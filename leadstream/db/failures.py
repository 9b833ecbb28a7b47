"""Retention of `sync_failures` (issue #25): dead letters are kept by age and by count per
workspace, like the old system's "last 1,000" rule, instead of growing without bound.

The rows are the dashboard's copy; the dead-letter topic keeps the records themselves for
its own retention (30 days), so `leadstream dlq` can still list and re-drive what the table
let go of within that time.
"""

from __future__ import annotations

from typing import Any

#: older than this many days (0: no age limit)
BY_AGE = ("DELETE FROM sync_failures"
          " WHERE failed_at < now() - make_interval(days => $1::int)")
#: beyond the newest this many of a workspace (rows without one count as one workspace)
BY_COUNT = ("DELETE FROM sync_failures f USING (SELECT id, row_number() OVER (PARTITION BY"
            " workspace_id ORDER BY failed_at DESC, id DESC) AS n FROM sync_failures) r"
            " WHERE f.id = r.id AND r.n > $1::int")


async def prune_failures(conn: Any, *, keep_days: int, keep_count: int) -> int:
    """Apply both limits (0 turns one off); returns how many rows went."""
    gone = 0
    if keep_days > 0:
        gone += int((await conn.execute(BY_AGE, keep_days)).split()[-1])
    if keep_count > 0:
        gone += int((await conn.execute(BY_COUNT, keep_count)).split()[-1])
    return gone
