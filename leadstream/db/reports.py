"""The team report's facts from the replica (issue #29): what `domain.reports.team_report`
turns into figures, for the API (`GET /api/reports/team`) and the manager's digest."""

from __future__ import annotations

from datetime import date
from typing import Any

from leadstream.domain.days import day_bounds
from leadstream.domain.reports import team_report, week_of

# $1 workspace, $2 and $3 the range's instants [from, to), $4 the timezone (not in the
# responses' query: its days are counted in Python); live leads only
# (a merged duplicate's activity is its survivor's, which has its own row)

REPORT_NEW_SQL = (
    "SELECT (created_at AT TIME ZONE $4)::date AS day, owner, count(*) AS n FROM leads"
    " WHERE workspace_id = $1 AND merged_into IS NULL AND created_at >= $2 AND created_at < $3"
    " GROUP BY 1, 2"
)
REPORT_RESPONSES_SQL = (
    "SELECT l.owner, fi.first_in, (SELECT min(o.sent_at) FROM messages o"
    "  WHERE o.lead_id = l.lead_id AND o.direction = 'outbound' AND o.sent_at >= fi.first_in)"
    " AS first_out FROM leads l CROSS JOIN LATERAL (SELECT min(i.sent_at) AS first_in"
    "  FROM messages i WHERE i.lead_id = l.lead_id AND i.direction = 'inbound') fi"
    " WHERE l.workspace_id = $1 AND l.merged_into IS NULL AND l.last_inbound_at >= $2"
    " AND l.created_at < $3 AND fi.first_in >= $2 AND fi.first_in < $3"
)
REPORT_CONVERSIONS_SQL = (
    "SELECT (h.changed_at AT TIME ZONE $4)::date AS day, l.owner,"
    " count(DISTINCT h.lead_id) AS n FROM lead_status_history h"
    " JOIN leads l ON l.lead_id = h.lead_id"
    " WHERE h.workspace_id = $1 AND l.merged_into IS NULL AND h.to_status = 'converted'"
    " AND h.changed_at >= $2 AND h.changed_at < $3 GROUP BY 1, 2"
)
REPORT_COHORTS_SQL = (
    "SELECT date_trunc('week', l.created_at AT TIME ZONE $4)::date AS week, count(*) AS leads,"
    " count(*) FILTER (WHERE l.lead_status = 'converted' OR EXISTS (SELECT 1"
    "  FROM lead_status_history h WHERE h.lead_id = l.lead_id AND h.to_status = 'converted'))"
    " AS converted FROM leads l WHERE l.workspace_id = $1 AND l.merged_into IS NULL"
    " AND l.created_at >= $2 AND l.created_at < $3 GROUP BY 1"
)


async def report(conn: Any, workspace_id: str, start: date, end: date, tz: str
                 ) -> dict[str, Any]:
    """The report of days `start`..`end` (inclusive, in `tz`); `conn` a connection or pool."""
    lo, hi = day_bounds(start, tz)[0], day_bounds(end, tz)[1]
    # the cohorts of the range's first week start on its Monday
    cohort_lo = day_bounds(week_of(start), tz)[0]
    args = (workspace_id, lo, hi, tz)
    new = await conn.fetch(REPORT_NEW_SQL, *args)
    responses = await conn.fetch(REPORT_RESPONSES_SQL, *args[:3])
    conversions = await conn.fetch(REPORT_CONVERSIONS_SQL, *args)
    cohorts = await conn.fetch(REPORT_COHORTS_SQL, workspace_id, cohort_lo, hi, tz)
    return team_report(
        start=start, end=end, tz=tz,
        new_leads=[(r["day"], r["owner"], r["n"]) for r in new],
        responses=[(r["owner"], r["first_in"], r["first_out"]) for r in responses],
        conversions=[(r["day"], r["owner"], r["n"]) for r in conversions],
        cohorts=[(r["week"], r["leads"], r["converted"]) for r in cohorts])
