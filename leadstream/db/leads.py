"""What the replica's readers (the API, the live feed, the digest) ask of `leads`, defined
once: which leads the team sees, which wait for a reply, and how many are in each status."""

from __future__ import annotations

from typing import Any

from leadstream.domain.model import LEAD_STATUSES

#: the leads the team sees: a merged lead shows as its survivor (008_identity.sql)
ACTIVE = "merged_into IS NULL"
#: the needs-reply condition, as the partial index `leads_ws_needs_reply` states it
NEEDS_REPLY = "last_inbound_at > coalesce(last_outbound_at, '-infinity'::timestamptz)"


async def status_counts(conn: Any, workspace_id: str) -> dict[str, int]:
    """Active leads per status, every status present (zeros included)."""
    counts: dict[str, int] = dict.fromkeys(LEAD_STATUSES, 0)
    counts.update({r["lead_status"]: int(r["n"]) for r in await conn.fetch(
        f"SELECT lead_status, count(*) AS n FROM leads WHERE workspace_id = $1 AND {ACTIVE}"
        " GROUP BY 1", workspace_id)})
    return counts
