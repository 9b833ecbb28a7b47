"""The manager's workspace digest: gathered from the replica, written once a day at
`LEADSTREAM_DIGEST_TIME` (local, `LEADSTREAM_TIMEZONE`; 09:00) into `workspace_digests`, and
readable any time through `GET /api/digest` (before the time, computed on the spot).

Which day it covers is `LEADSTREAM_DIGEST_DAY`: `yesterday` (the default: the morning
report the team reads over the previous calendar day) or `today` (an evening report over the
day that ends). The row's `day` is the day covered, its `writer` who wrote the text: the
language model when one is configured (`llm:<model>`), the built-in text otherwise or as the
fallback, with the reason (`builtin (llm failed: ...)`), exactly like the daily summaries.

The digest reads the replica rather than the log: it is a report of what the team sees, and
a replayed replica yields the same report. Several workers may run the service; the first
insert of a workspace-day wins (`ON CONFLICT DO NOTHING`), so the manager gets one digest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import asyncpg
import orjson
from mode import Service

from leadstream.db.leads import ACTIVE, NEEDS_REPLY, status_counts
from leadstream.db.reports import report as team_report
from leadstream.db.tasks import TASK_COUNTS_SQL
from leadstream.domain.daily import day_bounds
from leadstream.domain.digest import DigestFacts, LeadRef, Move, TaskRef, Waiting, digest_text
from leadstream.domain.tasks import due_before
from leadstream.summarize.llm import Summarizer

Covers = Literal["yesterday", "today"]

log = logging.getLogger(__name__)

#: how many names each line of the digest lists
SHOWN = 5
NAME = "coalesce(l.name, l.phone_e164, l.bsuid, 'Lead')"


async def gather(conn: Any, workspace_id: str, day: date, tz: str,
                 now: datetime | None = None) -> DigestFacts:
    """The facts of one workspace day, read in one snapshot; the tasks as of `now`."""
    now = now or datetime.now(UTC)
    start, end = day_bounds(day, tz)
    f = DigestFacts(workspace_id=workspace_id, day=day)
    f.new_leads = await conn.fetchval(
        f"SELECT count(*) FROM leads WHERE workspace_id = $1 AND {ACTIVE}"
        " AND created_at >= $2 AND created_at < $3", workspace_id, start, end)
    for r in await conn.fetch(
            "SELECT direction, count(*) AS n FROM messages WHERE workspace_id = $1"
            " AND sent_at >= $2 AND sent_at < $3 GROUP BY 1", workspace_id, start, end):
        if r["direction"] == "inbound":
            f.inbound_messages = r["n"]
        else:
            f.outbound_messages = r["n"]
    f.status_counts = await status_counts(conn, workspace_id)
    f.moves_total = await conn.fetchval(
        "SELECT count(*) FROM lead_status_history WHERE workspace_id = $1"
        " AND changed_at >= $2 AND changed_at < $3", workspace_id, start, end)
    f.moves = [Move(name=r["name"], from_status=r["from_status"], to_status=r["to_status"],
                    by=r["by"]) for r in await conn.fetch(
        f"SELECT {NAME} AS name, h.from_status, h.to_status,"
        " coalesce(h.actor, h.changed_by) AS by FROM lead_status_history h"
        " JOIN leads l USING (lead_id) WHERE h.workspace_id = $1 AND h.changed_at >= $2"
        f" AND h.changed_at < $3 ORDER BY h.changed_at DESC LIMIT {SHOWN}",
        workspace_id, start, end)]
    hot = (f"workspace_id = $1 AND {ACTIVE} AND lead_temperature = 'hot'"
           " AND lead_status NOT IN ('converted', 'archived')")
    f.hot_total = await conn.fetchval(f"SELECT count(*) FROM leads WHERE {hot}", workspace_id)
    f.hot = [LeadRef(lead_id=str(r["lead_id"]), name=r["name"]) for r in await conn.fetch(
        f"SELECT l.lead_id, {NAME} AS name FROM leads l WHERE {hot}"
        f" ORDER BY coalesce(lead_score, -1) DESC, last_activity_at DESC LIMIT {SHOWN}",
        workspace_id)]
    waiting = (f"workspace_id = $1 AND {ACTIVE} AND {NEEDS_REPLY}"
               " AND lead_status <> 'archived'")
    f.waiting_total = await conn.fetchval(f"SELECT count(*) FROM leads WHERE {waiting}",
                                          workspace_id)
    f.waiting = [Waiting(name=r["name"], since=r["last_inbound_at"]) for r in await conn.fetch(
        f"SELECT {NAME} AS name, last_inbound_at FROM leads l WHERE {waiting}"
        f" ORDER BY last_inbound_at LIMIT {SHOWN}", workspace_id)]
    # the team's follow-ups (reminders) and the day's report figures (issue #29)
    today_ends = due_before("today", now, tz)
    counts = await conn.fetchrow(TASK_COUNTS_SQL, workspace_id, now, today_ends, None)
    f.tasks_overdue_total, f.tasks_due_today = int(counts["overdue"]), int(counts["today"])
    f.tasks_overdue = [TaskRef(name=r["name"], text=r["text"][:80], owner=r["owner"],
                               due_at=r["due_at"]) for r in await conn.fetch(
        f"SELECT {NAME} AS name, t.text, t.owner, t.due_at FROM lead_tasks t"
        " JOIN leads l USING (lead_id) WHERE t.workspace_id = $1 AND t.done_at IS NULL"
        f" AND t.due_at < $2 ORDER BY t.due_at LIMIT {SHOWN}", workspace_id, now)]
    figures = await team_report(conn, workspace_id, day, day, tz)
    total = figures["total"]
    f.conversions = total["conversions"]
    fr = total["first_response"]
    f.first_response_answered, f.first_response_unanswered = fr["answered"], fr["unanswered"]
    f.first_response_median_s, f.first_response_p90_s = fr["median_seconds"], fr["p90_seconds"]
    # per person where the team assigns its leads (a team that does not: no such line)
    f.by_owner = figures["owners"] if any(o["owner"] for o in figures["owners"]) else []
    return f


class Digests:
    """Reads (for the API) and writes (for the service) of workspace digests."""

    def __init__(self, pool: asyncpg.Pool, tz: str, *, covers: Covers = "yesterday",
                 writer: Summarizer | None = None) -> None:
        self.pool = pool
        self.tz = tz
        self.covers = covers
        self.writer = writer or Summarizer(tz)

    def today(self, now: datetime | None = None) -> date:
        return (now or datetime.now(UTC)).astimezone(ZoneInfo(self.tz)).date()

    def covered(self, now: datetime | None = None) -> date:
        """The day the digest written on the local day of `now` covers."""
        today = self.today(now)
        return today - timedelta(days=1) if self.covers == "yesterday" else today

    async def get(self, workspace_id: str, day: date | None = None) -> dict[str, Any]:
        """The digest of `day` (default: the day the current digest covers): the one
        written, or, before it is, the built-in text computed now (`final`: false)."""
        day = day or self.covered()
        row = await self.pool.fetchrow(
            "SELECT workspace_id, day, content, facts, writer, created_at FROM"
            " workspace_digests WHERE workspace_id = $1 AND day = $2", workspace_id, day)
        if row is not None:
            return {**dict(row), "facts": orjson.loads(row["facts"]), "final": True}
        now = datetime.now(UTC)
        async with self.pool.acquire() as conn, conn.transaction(readonly=True,
                                                                 isolation="repeatable_read"):
            facts = await gather(conn, workspace_id, day, self.tz)
        return {"workspace_id": workspace_id, "day": day, "final": False,
                "content": digest_text(facts, now), "facts": facts.model_dump(mode="json"),
                "writer": "builtin", "created_at": now}

    async def write(self, workspace_id: str, day: date, now: datetime) -> bool:
        """Write the day's digest unless one exists; True if this call wrote it. The model
        is asked outside the transaction (it may take seconds); the facts it was given are
        the ones stored."""
        async with self.pool.acquire() as conn, conn.transaction(readonly=True,
                                                                 isolation="repeatable_read"):
            if await conn.fetchval("SELECT 1 FROM workspace_digests WHERE workspace_id = $1"
                                   " AND day = $2", workspace_id, day):
                return False
            facts = await gather(conn, workspace_id, day, self.tz)
        text, writer = await self.writer.digest(facts, digest_text(facts, now))
        done = await self.pool.execute(
            "INSERT INTO workspace_digests (workspace_id, day, content, facts, writer,"
            " created_at) VALUES ($1, $2, $3, $4::jsonb, $5, $6) ON CONFLICT DO NOTHING",
            workspace_id, day, text, orjson.dumps(facts.model_dump(mode="json")).decode(),
            writer[:300], now)
        return bool(done.endswith(" 1"))

    async def write_due(self, at: time, now: datetime | None = None) -> list[str]:
        """Every workspace's digest of the covered day, once its local time is past `at`."""
        now = now or datetime.now(UTC)
        if now.astimezone(ZoneInfo(self.tz)).time() < at:
            return []
        day = self.covered(now)
        todo = await self.pool.fetch(
            "SELECT workspace_id FROM workspaces w WHERE NOT EXISTS (SELECT 1 FROM"
            " workspace_digests d WHERE d.workspace_id = w.workspace_id AND d.day = $1)", day)
        return [r["workspace_id"] for r in todo
                if await self.write(r["workspace_id"], day, now)]


#: date.toordinal() of 1970-01-01
EPOCH = 719163

class DigestService(Service):
    """Writes each workspace's digest at the configured local time (checks every 30 s).

    It borrows the worker's replica pool (`pool()`: None until that one is connected)
    rather than opening its own at start, so a worker started while Postgres is away still
    starts, and the digest is written once Postgres answers."""

    def __init__(self, pool: Callable[[], asyncpg.Pool | None], tz: str, at: time,
                 every: float = 30.0, *, covers: Covers = "yesterday",
                 writer: Summarizer | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.pool = pool
        self.tz = tz
        self.at = at
        self.every = every
        self.covers: Covers = covers
        self.writer = writer
        self.written = 0
        self.failures = 0
        #: the newest day any workspace has a digest for (days since 1970-01-01; None: none
        #: yet): the operator's "digest not written" alert reads it
        self.through_days: int | None = None

    @Service.task
    async def _run(self) -> None:
        while not self.should_stop:
            pool = self.pool()
            try:
                wrote = [] if pool is None else await Digests(
                    pool, self.tz, covers=self.covers, writer=self.writer).write_due(self.at)
                if wrote:
                    self.written += len(wrote)
                    log.info("workspace digest written for %s", ", ".join(wrote))
                if pool is not None:
                    newest = await pool.fetchval("SELECT max(day) FROM workspace_digests")
                    self.through_days = None if newest is None else newest.toordinal() - EPOCH
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                self.failures += 1
                log.warning("could not write workspace digests: %r", exc)
            await self.sleep(self.every)
