"""The reconciler: every message Kapso holds that the log does not is found and ingested
(issue #27). Kapso gives up on a webhook after about 2.5 minutes of failed deliveries; any
outage longer than that (a deploy, the broker away, a partition) would lose the messages
sent meanwhile for good without this.

Per number, a window is read from Kapso's API oldest slice first; each message is turned
into the webhook items a delivery would have carried (`ingest.kapso_api`), parsed by the
webhook's parser, keyed by its lead and produced to the events topic exactly as a webhook
delivery is. What the replica already shows is skipped, and what it shows with an earlier
status gets its status event; a record produced twice is a no-op in the worker (idempotent
by message id), so a replica that lags only costs a repeat. After each slice is in the log
(acked by the broker) the number's watermark moves to its end; a failure leaves it where
it was, and a later run starts from there, so an outage of any length is repaired.

A fleet of workers reconciles each number once at a time: a Postgres advisory lock per
number; another process holding it makes this run skip the number ("busy").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from leadstream.config import Settings
from leadstream.db import watermarks
from leadstream.db.registry import ReconcileTarget, load_reconcile_targets
from leadstream.ingest.common import ParseError, Workspace
from leadstream.ingest.kapso import parse_routed_item
from leadstream.ingest.kapso_api import behind, webhook_items
from leadstream.reconcile.client import ApiError, KapsoApi
from leadstream.streams.records import DeadLetter, encode
from leadstream.streams.topics import TopicNames

log = logging.getLogger(__name__)

#: what a message the API returns may raise in the webhook's parser (any JSON can come)
UNREADABLE = (ParseError, ValueError, TypeError, AttributeError, KeyError, IndexError)
Record = tuple[str, bytes, bytes]


@dataclass
class NumberReport:
    """One number's run: what was read, what the replica lacked, what was produced."""

    phone_number_id: str
    workspace_id: str
    since: datetime
    until: datetime
    read: int = 0
    missing: int = 0
    behind: int = 0
    produced: int = 0
    dead_lettered: int = 0
    slices: int = 0
    error: str | None = None
    busy: bool = False
    missing_ids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


def slices(since: datetime, until: datetime, step: timedelta) -> list[tuple[datetime, datetime]]:
    """[since, until] cut into consecutive windows of `step`, oldest first."""
    out = []
    start = since
    while start < until:
        end = min(start + step, until)
        out.append((start, end))
        start = end
    return out or [(since, until)]


def window_for(target: ReconcileTarget, now: datetime, settings: Settings
               ) -> tuple[datetime, datetime]:
    """A start-up or periodic run's window: from the watermark (never further back than
    the longest window, never later than the lookback), to now."""
    lookback = now - timedelta(seconds=settings.reconcile_lookback_seconds)
    oldest = now - timedelta(seconds=settings.reconcile_max_window_seconds)
    since = lookback if target.complete_until is None else min(target.complete_until, lookback)
    return max(since, oldest), now


def lock_key(phone_number_id: str) -> str:
    return f"leadstream:reconcile:{phone_number_id}"


class Reconciler:
    """Reads numbers from Kapso's API and produces what the log lacks; `produce` is None
    for a dry run."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool, api: KapsoApi,
                 produce: Callable[[Sequence[Record]], Any] | None) -> None:
        self.settings = settings
        self.pool = pool
        self.api = api
        self.produce = produce
        self.names = TopicNames.from_settings(settings)
        #: counters for the metrics (per workspace where it tells something)
        self.missing_by_workspace: dict[str, int] = {}
        self.runs = 0
        self.failed_runs = 0

    async def run(self, *, since: datetime | None = None, until: datetime | None = None,
                  phone_number_id: str | None = None,
                  progress: Callable[[int, int], None] | None = None) -> list[NumberReport]:
        """Every number with a key (or the one asked for). Without `since` each number
        starts from its watermark and the watermark advances; with it, the window asked
        for is read and the watermarks are left alone (an on-demand look)."""
        now = datetime.now(UTC)
        async with self.pool.acquire() as conn:
            targets = await load_reconcile_targets(conn, phone_number_id)
        plans = []
        for t in targets:
            start, end = window_for(t, now, self.settings) if since is None else (since, now)
            plans.append((t, start, until or end))
        step = timedelta(seconds=self.settings.reconcile_slice_seconds)
        total = sum(len(slices(s, u, step)) for _, s, u in plans)
        done = [0]

        def tick() -> None:
            done[0] += 1
            if progress is not None:
                progress(done[0], total)

        gates: dict[str, asyncio.Semaphore] = {}

        async def one(t: ReconcileTarget, start: datetime, end: datetime) -> NumberReport:
            gate = gates.setdefault(t.workspace_id,
                                    asyncio.Semaphore(self.settings.reconcile_concurrency))
            async with gate:
                return await self.number(t, start, end, advance=since is None, tick=tick)

        reports = list(await asyncio.gather(*(one(*p) for p in plans)))
        self.runs += 1
        self.failed_runs += any(not r.ok for r in reports)
        return reports

    async def number(self, target: ReconcileTarget, since: datetime, until: datetime, *,
                     advance: bool, tick: Callable[[], None] = lambda: None) -> NumberReport:
        report = NumberReport(target.phone_number_id, target.workspace_id, since, until)
        step = timedelta(seconds=self.settings.reconcile_slice_seconds)
        async with self.pool.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))",
                                       lock_key(target.phone_number_id)):
                report.busy = True
                return report
            try:
                for start, end in slices(since, until, step):
                    await self._slice(conn, target, start, end, report)
                    report.slices += 1
                    if advance and self.produce is not None:
                        await watermarks.advance(conn, target.phone_number_id,
                                                 target.workspace_id, end,
                                                 read=0, missing=0)
                    tick()
                if advance and self.produce is not None:
                    await watermarks.advance(conn, target.phone_number_id,
                                             target.workspace_id, until, read=report.read,
                                             missing=report.missing)
            except ApiError as exc:
                report.error = str(exc)
                log.warning("reconcile %s: %s (its watermark stays; a later run retries)",
                            target, exc)
                if self.produce is not None:
                    await watermarks.failed(conn, target.phone_number_id,
                                            target.workspace_id, str(exc))
            finally:
                await conn.execute("SELECT pg_advisory_unlock(hashtext($1))",
                                   lock_key(target.phone_number_id))
        if report.missing:
            self.missing_by_workspace[target.workspace_id] = (
                self.missing_by_workspace.get(target.workspace_id, 0) + report.missing)
        return report

    async def _slice(self, conn: asyncpg.Connection, target: ReconcileTarget,
                     since: datetime, until: datetime, report: NumberReport) -> None:
        messages: list[dict[str, Any]] = []
        async for page in self.api.messages(target.phone_number_id, target.api_key,
                                            since, until):
            messages += page
        report.read += len(messages)
        if not messages:
            return
        ids = [str(m["id"]) for m in messages if m.get("id")]
        known = {r["message_id"]: r["status"] for r in await conn.fetch(
            "SELECT message_id, status FROM messages WHERE workspace_id = $1"
            " AND message_id = ANY($2::text[])", target.workspace_id, ids)}
        records = self.records(target, messages, known, report)
        if records and self.produce is not None:
            await self.produce(records)
            report.produced += len(records)

    def records(self, target: ReconcileTarget, messages: Sequence[dict[str, Any]],
                known: dict[str, str | None], report: NumberReport) -> list[Record]:
        """The records a webhook delivery of what the replica lacks would have produced."""
        ws = Workspace(target.workspace_id, target.region)
        now = datetime.now(UTC)
        out: list[Record] = []
        seen: set[str] = set()
        for m in messages:
            wamid = str(m.get("id") or "")
            if wamid in seen:  # a page boundary moved under us: once is enough
                continue
            seen.add(wamid)
            items = webhook_items(m, target.phone_number_id)
            kapso = m.get("kapso") if isinstance(m.get("kapso"), dict) else {}
            if wamid and wamid not in known:
                chosen = items
                report.missing += 1
                if len(report.missing_ids) < 20:
                    report.missing_ids.append(wamid)
            elif wamid and behind(known[wamid], (kapso or {}).get("status")):
                chosen = items[-1:]
                report.behind += 1
            else:
                continue
            try:
                events = [parse_routed_item(ws, event, item, now) for event, item in chosen]
            except UNREADABLE as exc:
                report.dead_lettered += 1
                dl = DeadLetter.of(stage="reconcile", reason=str(exc) or type(exc).__name__,
                                   original=orjson.dumps(m), topic="kapso-api",
                                   workspace_id=target.workspace_id)
                out.append((self.names.dlq, target.workspace_id.encode(), encode(dl)))
                continue
            out += [(self.names.events, e.lead_key.encode(), encode(e)) for e in events]
        return out
