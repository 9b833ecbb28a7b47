"""Automatic assignment of new leads (issue #29), per workspace (`workspace add
--auto-assign all|hot`): each unassigned live lead created since the rule was turned on (for
`hot`, once Sarah calls it hot: `CANDIDATES_SQL`, the rule itself, so a batch never fills
with leads the rule leaves alone) gets an owner in turn among the workspace's people
(`domain.team.round_robin`), at most once (`auto_assignments`): a person who takes a lead
back or moves it is not overruled.

The assignment is an ordinary `assign` command on the commands topic by
`auto-assign` (so the lead's timeline says who assigned it, and a replay rebuilds it). One
run per workspace holds a transaction-scoped advisory lock, so a fleet of workers does not
assign the same lead twice; the counter and the record of what was assigned commit only
after the broker acked the commands. Should the commit fail after the ack, the next run
sends the same command ids again, and the worker applies a command id once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from mode import Service

from leadstream.broker.clients import make_producer
from leadstream.config import Settings
from leadstream.domain.identity import stable_id
from leadstream.domain.model import Command
from leadstream.domain.team import AUTO_ASSIGN_AUTHOR, round_robin
from leadstream.streams.records import encode
from leadstream.streams.topics import TopicNames

log = logging.getLogger(__name__)

#: advisory lock namespace (with the workspace's hash): one run per workspace at a time
LOCK_NS = 0x1EAD6
#: leads assigned per workspace per run at most (the next run takes the rest)
BATCH = 200

RULES_SQL = ("SELECT workspace_id, auto_assign, auto_assign_since FROM workspaces"
             " WHERE auto_assign <> 'off' AND auto_assign_since IS NOT NULL ORDER BY 1")
PEOPLE_SQL = ("SELECT DISTINCT user_name FROM api_tokens WHERE workspace_id = $1"
              " AND role = 'human' AND user_name IS NOT NULL")
CANDIDATES_SQL = (
    "SELECT l.lead_id, l.lead_key FROM leads l WHERE l.workspace_id = $1 AND l.owner IS NULL"
    " AND l.merged_into IS NULL AND l.created_at >= $2"
    " AND ($3 = 'all' OR l.lead_temperature = 'hot')"
    " AND NOT EXISTS (SELECT 1 FROM auto_assignments a WHERE a.lead_id = l.lead_id)"
    " ORDER BY l.created_at, l.lead_id LIMIT $4"
)


class AutoAssigner:
    """One pass over the workspaces with a rule; `send` produces (topic, key, value) records
    and returns once the broker has acked them all."""

    def __init__(self, settings: Settings, send: Callable[[list[tuple[str, bytes, bytes]]],
                                                         Any]) -> None:
        self.topic = TopicNames.from_settings(settings).commands
        self.send = send

    async def run(self, pool: asyncpg.Pool) -> int:
        n = 0
        for rule in await pool.fetch(RULES_SQL):
            try:
                n += await self.workspace(pool, rule["workspace_id"], rule["auto_assign"],
                                          rule["auto_assign_since"])
            except Exception as exc:  # noqa: BLE001  # one workspace never stops the others
                log.warning("auto-assign in %s failed: %r", rule["workspace_id"], exc)
        return n

    async def workspace(self, pool: asyncpg.Pool, workspace_id: str, mode: str,
                        since: datetime) -> int:
        async with pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1, hashtext($2))",
                                       LOCK_NS, workspace_id):
                return 0  # another worker is at it
            people = [r["user_name"] for r in await conn.fetch(PEOPLE_SQL, workspace_id)]
            if not people:
                return 0
            leads = await conn.fetch(CANDIDATES_SQL, workspace_id, since, mode, BATCH)
            if not leads:
                return 0
            turn = await conn.fetchval("SELECT auto_assign_turn FROM workspaces"
                                       " WHERE workspace_id = $1 FOR UPDATE", workspace_id)
            owners, next_turn = round_robin(people, int(turn), len(leads))
            now = datetime.now(UTC)
            records = []
            for lead, owner in zip(leads, owners, strict=True):
                cmd = Command(event_id=stable_id("auto-assign", str(lead["lead_id"])),
                              workspace_id=workspace_id, lead_key=lead["lead_key"],
                              occurred_at=now, kind="assign", actor_role="brain-bot",
                              author=AUTO_ASSIGN_AUTHOR, owner=owner)
                records.append((self.topic, lead["lead_key"].encode(), encode(cmd)))
            await self.send(records)
            await conn.executemany(
                "INSERT INTO auto_assignments (lead_id, workspace_id, owner) VALUES ($1, $2, $3)"
                " ON CONFLICT (lead_id) DO NOTHING",
                [(lead["lead_id"], workspace_id, owner)
                 for lead, owner in zip(leads, owners, strict=True)])
            await conn.execute("UPDATE workspaces SET auto_assign_turn = $2"
                               " WHERE workspace_id = $1", workspace_id, next_turn)
        log.info("auto-assigned %d new leads in %s", len(leads), workspace_id)
        return len(leads)


class AutoAssignService(Service):
    """Runs the assigner every `LEADSTREAM_AUTO_ASSIGN_SECONDS` in a worker, on its replica
    pool; opens a producer only once some workspace has a rule."""

    def __init__(self, settings: Settings, pool: Callable[[], asyncpg.Pool | None],
                 **kw: Any) -> None:
        super().__init__(**kw)
        self.settings = settings
        self.pool = pool
        self.producer: Any = None
        self.assigner = AutoAssigner(settings, self._send)
        self.stopping = asyncio.Event()

    async def _send(self, records: list[tuple[str, bytes, bytes]]) -> None:
        if self.producer is None:
            producer = make_producer(self.settings)
            await producer.start()
            self.producer = producer
        futures = [await self.producer.send(topic, value, key=key)
                   for topic, key, value in records]
        await asyncio.gather(*futures)

    async def on_stop(self) -> None:
        self.stopping.set()
        if self.producer is not None:
            await self.producer.stop()

    @Service.task
    async def _runs(self) -> None:
        interval = self.settings.auto_assign_seconds
        while not self.stopping.is_set():
            try:
                await asyncio.wait_for(self.stopping.wait(), interval)
                return
            except TimeoutError:
                pass
            pool = self.pool()
            if pool is None:
                continue
            try:
                await self.assigner.run(pool)
            except Exception as exc:  # noqa: BLE001  # Postgres away, a pool closing at stop: never crash the worker
                log.warning("auto-assign run failed: %r", exc)
