"""Daily windows per lead, closed on Faust tables and timer ticks (all of it here).

Why not Faust's windowed tables: they expire windows by wall-clock processing time, and the
close callback sees a value that may be missing updates recovered later; we need windows by
event time in the workspace timezone, exactly one summary per lead-day, in-place updates for
late events, and all of it surviving restarts, rebalances and replays. So:

* The `daily` table holds one capped `DayAggregate` per "<lead_key>|<day>", written by the
  lead agent from the same events (same partition) that change the lead.
* A timer sends one tick per partition to the internal ticks topic. The tick agent handles a
  tick *inside* that partition's event context, so it may write the table: it closes the
  aggregates of days that have ended plus the grace period (marks them closed, publishes
  them to `daily-closed`) and purges closed days past the retention.
* A late event for a closed day updates the aggregate and publishes it again; the summary
  downstream has the same ids, so the row and the note are updated in place.
* Closing is idempotent (a closed aggregate is never closed again; ids are deterministic),
  so two workers' ticks, a restart or a replay neither lose nor duplicate a summary.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiokafka.partitioner import murmur2

from leadstream.domain.daily import DayAggregate, contributions, fold, is_closable
from leadstream.domain.model import LeadState
from leadstream.domain.rules import Applied
from leadstream.streams.records import encode

log = logging.getLogger(__name__)

Send = Callable[[str, bytes, bytes], Awaitable[Any]]


def partition_of(key: bytes, partitions: int) -> int:
    """The partition the default (murmur2) partitioner gives a key: where its state lives."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def daily_key(lead_key: str, day: date) -> bytes:
    return f"{lead_key}|{day.isoformat()}".encode()


def day_of_key(key: bytes) -> date:
    return date.fromisoformat(key.rsplit(b"|", 1)[1].decode())


class DailyWindows:
    def __init__(self, table: Any, send: Send, closed_topic: str, *, tz: str,
                 grace_seconds: int, retention_days: int, partitions: int) -> None:
        self.table = table
        self.send = send
        self.closed_topic = closed_topic
        self.tz = tz
        self.grace = grace_seconds
        self.retention = timedelta(days=retention_days)
        self.partitions = partitions
        #: per partition: days with aggregates not yet closed, and all days present
        self.open_days: dict[int, set[date]] = {}
        self.all_days: dict[int, set[date]] = {}
        self.closed = 0
        self.late_updates = 0
        self.too_late = 0
        self._warned: set[date] = set()

    # -------------------------------------------------------------- from the lead agent

    async def on_applied(self, before: LeadState | None, applied: Applied, partition: int
                         ) -> None:
        for day, c in contributions(before, applied, applied.new_message, self.tz).items():
            key = daily_key(applied.lead.lead_key, day)
            raw = self.table.get(key)
            agg = DayAggregate.model_validate_json(raw) if raw else None
            if agg is None and self._past_retention(day):
                self.too_late += 1
                if day not in self._warned:
                    self._warned.add(day)
                    log.warning("events on %s are past the daily retention; not summarized",
                                day)
                continue
            new = fold(agg, applied.lead, day, c)
            if new is agg:
                continue  # already folded (a reprocessing)
            self.table[key] = encode(new)
            if new.closed:
                self.late_updates += 1
                await self.send(self.closed_topic, applied.lead.lead_key.encode(), encode(new))
            elif partition in self.open_days:
                self.open_days[partition].add(day)
                self.all_days[partition].add(day)

    # -------------------------------------------------------------- from the tick agent

    def _past_retention(self, day: date, now: datetime | None = None) -> bool:
        now = now or datetime.now(UTC)
        return now.date() - day > self.retention + timedelta(days=1)

    def _keys(self, partition: int) -> list[bytes]:
        return [k for k in list(self.table.keys())
                if partition_of(k.split(b"|", 1)[0], self.partitions) == partition]

    async def on_tick(self, partition: int, now: datetime) -> int:
        """Close what is closable in this partition; purge closed days past retention.

        The table is scanned only when a day is due (to close or to purge), and once after a
        start to learn which days are present.
        """
        if partition not in self.open_days:
            self._learn(partition)
        open_days, all_days = self.open_days[partition], self.all_days[partition]
        due = {d for d in open_days if is_closable(d, now, self.tz, self.grace)}
        purge = {d for d in all_days - open_days if self._past_retention(d, now)}
        if not due and not purge:
            return 0
        closed = 0
        for k in self._keys(partition):
            day = day_of_key(k)
            if day not in due and day not in purge:
                continue
            raw = self.table.get(k)
            if not raw:
                continue
            agg = DayAggregate.model_validate_json(raw)
            if day in due and not agg.closed:
                agg.closed = True
                self.table[k] = encode(agg)  # before any await: the lead agent sees it closed
                await self.send(self.closed_topic, agg.lead_key.encode(), encode(agg))
                closed += 1
            elif day in purge and agg.closed:
                del self.table[k]
        open_days -= due
        all_days -= purge
        self.closed += closed
        if closed:
            log.info("closed %d daily windows in partition %d (%s)", closed, partition,
                     ", ".join(sorted(d.isoformat() for d in due)))
        return closed

    def _learn(self, partition: int) -> None:
        open_days: set[date] = set()
        all_days: set[date] = set()
        for k in self._keys(partition):
            raw = self.table.get(k)
            if not raw:
                continue
            day = day_of_key(k)
            all_days.add(day)
            if not DayAggregate.model_validate_json(raw).closed:
                open_days.add(day)
        self.open_days[partition] = open_days
        self.all_days[partition] = all_days
