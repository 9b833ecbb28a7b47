"""Reads of the replica's follow-up tasks shared by the API and the manager's digest."""

from __future__ import annotations

#: open tasks overdue and due by the day's end ($2 now, $3 the day's end), of one owner ($4,
#: NULL for all)
TASK_COUNTS_SQL = (
    "SELECT count(*) FILTER (WHERE due_at < $2) AS overdue,"
    " count(*) FILTER (WHERE due_at < $3) AS today FROM lead_tasks"
    " WHERE workspace_id = $1 AND done_at IS NULL AND ($4::text IS NULL OR owner = $4)"
)
