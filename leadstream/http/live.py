"""Live push for the dashboard (`GET /api/stream`): replica changes as Server-Sent Events.

Every statement that writes lead rows notifies `leadstream_leads` with the workspace and the
lead ids (a trigger, 007_team_dashboard.sql), whoever wrote them: the worker's flush, the sink,
a replay. One `LeadFeed` per server LISTENs on one connection to the primary (a streaming
standby does not relay notifications), reads the changed rows for the workspaces somebody is
watching, and hands each subscriber the leads as `GET /api/leads` shows them.

A subscriber that falls behind (its queue full) or a feed that lost its connection gets a
`resync` event: the page reloads instead of trusting a stream with a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from leadstream.http.queries import lead_out
from leadstream.retry import Backoff

log = logging.getLogger(__name__)

CHANNEL = "leadstream_leads"
APPLICATION_NAME = "leadstream-live-feed"
#: a subscriber's backlog of events before it is told to resync
QUEUE_SIZE = 2_000
#: how long changes are gathered before one read (a flush writes many leads at once)
GATHER_SECONDS = 0.02


@dataclass(eq=False)
class Subscriber:
    workspace_id: str
    queue: asyncio.Queue[tuple[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_SIZE))

    def offer(self, event: str, data: Any) -> None:
        try:
            self.queue.put_nowait((event, data))
        except asyncio.QueueFull:
            # a gap: drop what is queued and ask the page to reload
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(("resync", {"reason": "behind"}))


class LeadFeed:
    """LISTEN on the primary; fan changed leads out to the subscribers of their workspace."""

    def __init__(self, dsn: str, pool: asyncpg.Pool,
                 inbox_pattern: Callable[[str], str | None]) -> None:
        self.dsn = dsn
        self.pool = pool
        self.inbox_pattern = inbox_pattern
        self.subscribers: dict[str, set[Subscriber]] = defaultdict(set)
        self._pending: dict[str, set[uuid.UUID]] = defaultdict(set)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._conn: asyncpg.Connection | None = None
        self.connected = asyncio.Event()
        self.notifications = 0

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._deliver())]

    async def stop(self) -> None:
        for s in [s for subs in self.subscribers.values() for s in subs]:
            while not s.queue.empty():
                s.queue.get_nowait()
            s.queue.put_nowait(("close", None))
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()

    def subscribe(self, workspace_id: str) -> Subscriber:
        s = Subscriber(workspace_id)
        self.subscribers[workspace_id].add(s)
        return s

    def unsubscribe(self, s: Subscriber) -> None:
        subs = self.subscribers.get(s.workspace_id)
        if subs is not None:
            subs.discard(s)
            if not subs:
                del self.subscribers[s.workspace_id]

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        self.notifications += 1
        workspace_id, _, ids = payload.partition(" ")
        if workspace_id not in self.subscribers:
            return
        pending = self._pending[workspace_id]
        for i in ids.split():
            with contextlib.suppress(ValueError):
                pending.add(uuid.UUID(i))
        self._wake.set()

    def _broadcast(self, event: str, data: Any) -> None:
        for subs in self.subscribers.values():
            for s in subs:
                s.offer(event, data)

    async def _listen(self) -> None:
        """Keep one LISTENing connection; after a loss, every subscriber resyncs."""
        backoff = Backoff(0.2)
        had_gap = False
        while True:
            try:
                # named, so an operator sees it in pg_stat_activity
                self._conn = await asyncpg.connect(
                    self.dsn, server_settings={"application_name": APPLICATION_NAME})
                lost = asyncio.Event()
                self._conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await self._conn.add_listener(CHANNEL, self._on_notify)
                if had_gap:
                    self._broadcast("resync", {"reason": "reconnected"})
                had_gap = False
                backoff.reset()
                self.connected.set()
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), 10.0)
                    if not lost.is_set():  # a half-open connection is found by a query
                        await self._conn.fetchval("SELECT 1", timeout=5.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                log.warning("live feed lost Postgres (%r); reconnecting", exc)
            self.connected.clear()
            had_gap = True
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.terminate()
            await backoff.wait()

    async def _deliver(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(GATHER_SECONDS)
            self._wake.clear()
            pending, self._pending = self._pending, defaultdict(set)
            for workspace_id, ids in pending.items():
                if workspace_id not in self.subscribers:
                    continue
                try:
                    rows = await self.pool.fetch(
                        "SELECT * FROM leads WHERE workspace_id = $1 AND lead_id = ANY($2)"
                        " ORDER BY last_activity_at", workspace_id, list(ids))
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("live feed could not read leads: %r", exc)
                    for s in self.subscribers.get(workspace_id, ()):
                        s.offer("resync", {"reason": "read failed"})
                    continue
                pattern = self.inbox_pattern(workspace_id)
                leads = [lead_out(r, pattern) for r in rows]
                for s in list(self.subscribers.get(workspace_id, ())):
                    for lead in leads:
                        s.offer("lead", lead)
