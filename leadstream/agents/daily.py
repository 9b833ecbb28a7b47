"""Daily windows per lead, closed on Faust tables and timer ticks (all of it here).

Why not Faust's windowed tables: they expire windows by wall-clock processing time, and the
close callback sees a value that may be missing updates recovered later; we need windows by
event time in the workspace timezone, exactly one summary per lead-day, in-place updates for
late events, and all of it surviving restarts, rebalances and replays. So:

* The `daily` table holds one capped `DayAggregate` per "<lead_key>|<day>", written by the
  lead agent from the same events (same partition) that change the lead.
* Which days are closed is one marker per partition in the same table,
  `__closed__|<partition>` -> the newest closed day. Days close in calendar order (a day is
  closable once it ended plus the grace, so every earlier day is too), so "closed" is "on or
  before the marker". One marker instead of a flag per aggregate makes closing 100,000
  windows 100,000 sends of the stored bytes and one table write (a parse, an encode and a
  changelog write per window took 155 s for 100k leads; issue 4).
* A timer sends one tick per partition to the internal ticks topic. The tick agent handles a
  tick *inside* that partition's event context, so it may write the table: it publishes the
  aggregates of days that have ended plus the grace to `daily-closed`, waits until the broker
  has them, then moves the marker; and it purges closed days past the retention. Which keys
  belong to which day is an in-memory index per partition, learned from the table once after
  the partition is assigned, then kept by the lead agent.
* A late event for a closed day updates the aggregate and publishes it again; the summary
  downstream has the same ids, so the row and the note are updated in place.
* Exactly one summary per lead-day: a crash before the marker moved publishes the day again
  after the restart, and the summary's ids make that an in-place rewrite, never a second
  note; the marker moves in memory before the first send, so an event the lead agent folds
  during the close counts as late and is published too.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiokafka.partitioner import murmur2

from leadstream.domain.daily import DayState, contributions, day_of, fold_state, is_closable
from leadstream.domain.model import InboundEvent, LeadState
from leadstream.domain.rules import Applied
from leadstream.streams.records import decode_day, encode_day

log = logging.getLogger(__name__)

Send = Callable[[str, bytes, bytes], Awaitable[Any]]


def partition_of(key: bytes, partitions: int) -> int:
    """The partition the default (murmur2) partitioner gives a key: where its state lives."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def daily_key(lead_key: str, day: date) -> bytes:
    return f"{lead_key}|{day.isoformat()}".encode()


MARKER = b"__closed__|"


def marker_key(partition: int) -> bytes:
    return MARKER + str(partition).encode()


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
        #: per partition: day -> keys of that day's aggregates (learned after assignment)
        self.index: dict[int, dict[date, set[bytes]]] = {}
        #: per partition: the newest closed day (a cache of the table's marker)
        self.through: dict[int, date | None] = {}
        self.closed = 0
        self.late_updates = 0
        self.too_late = 0
        self._warned: set[date] = set()

    def forget(self, partitions: Any) -> None:
        """Drop what was learned of these partitions (call on rebalance): another worker may
        have changed their windows meanwhile, so they are learned again from the table."""
        for p in partitions:
            self.index.pop(p, None)
            self.through.pop(p, None)

    def closed_through(self, partition: int) -> date | None:
        if partition not in self.through:
            raw = self.table.get(marker_key(partition))
            self.through[partition] = date.fromisoformat(raw.decode()) if raw else None
        return self.through[partition]

    def is_closed(self, partition: int, day: date) -> bool:
        through = self.closed_through(partition)
        return through is not None and day <= through

    # -------------------------------------------------------------- from the lead agent

    def _read(self, key: bytes) -> DayState | None:
        raw = self.table.get(key)
        return decode_day(raw) if raw else None

    def plan(self, before: LeadState | None, applied: Applied,
             read: Callable[[bytes], DayState | None] | None = None
             ) -> list[tuple[bytes, date, DayState]]:
        """The windows this applied record changes, computed without writing anything: what
        can fail (a date the calendar cannot hold, a bad value) fails here, before the
        record's outputs are sent, so a failed record leaves no emitted version behind.
        `read` is the lead agent's write-back view of the table (default: the table)."""
        read = read or self._read
        out = []
        for day, c in contributions(before, applied, applied.new_message, self.tz).items():
            key = daily_key(applied.lead.lead_key, day)
            agg = read(key)
            if agg is None and self._past_retention(day):
                self.too_late += 1
                if day not in self._warned:
                    self._warned.add(day)
                    log.warning("events on %s are past the daily retention; not summarized",
                                day)
                continue
            new = fold_state(agg, applied.lead, day, c)
            if new is agg:
                continue  # already folded (a reprocessing)
            out.append((key, day, new))
        return out

    def stage(self, planned: list[tuple[bytes, date, DayState]], partition: int,
              write: Callable[[bytes, int, DayState], None],
              late: list[tuple[str, bytes, bytes]]) -> None:
        """Write the planned windows through `write`; a late event for a closed day is added
        to `late` as (topic, key, value) for its summary to be redone. Synchronous: the
        close (`on_tick`) cannot run in between."""
        for key, day, new in planned:
            write(key, partition, new)
            index = self.index.get(partition)
            if index is not None:
                index.setdefault(day, set()).add(key)
            if self.is_closed(partition, day):
                self.late_updates += 1
                late.append((self.closed_topic, new["lead_key"].encode(), encode_day(new)))

    def rewrite(self, lead: LeadState, ev: InboundEvent, partition: int,
                rewrite: Callable[[bytes, int], None]) -> None:
        """The window a reprocessed message counted in, written back unchanged (see
        `agents.flush.WriteBack.rewrite`)."""
        if ev.message is not None:
            rewrite(daily_key(lead.lead_key, day_of(ev.message.timestamp, self.tz)), partition)

    async def on_applied(self, before: LeadState | None, applied: Applied, partition: int
                         ) -> None:
        """Plan and write straight to the table (tests and tools; the lead agent stages
        through its flush instead)."""
        late: list[tuple[str, bytes, bytes]] = []

        def write(key: bytes, _partition: int, agg: DayState) -> None:
            self.table[key] = encode_day(agg)

        self.stage(self.plan(before, applied), partition, write, late)
        for topic, key, value in late:
            await self.send(topic, key, value)

    # -------------------------------------------------------------- from the tick agent

    def _past_retention(self, day: date, now: datetime | None = None) -> bool:
        now = now or datetime.now(UTC)
        return now.date() - day > self.retention + timedelta(days=1)

    async def on_tick(self, partition: int, now: datetime) -> int:
        """Close what is closable in this partition; purge closed days past retention."""
        if partition not in self.index:
            self._learn(partition)
        index = self.index[partition]
        through = self.closed_through(partition)
        due = sorted(d for d in index if (through is None or d > through)
                     and is_closable(d, now, self.tz, self.grace))
        closed = 0
        if due:
            # before any await: from here on the lead agent treats these days as closed
            self.through[partition] = due[-1]
            pending = []
            for day in due:
                for k in list(index[day]):
                    raw = self.table.get(k)
                    if raw:
                        pending.append(await self.send(self.closed_topic,
                                                       k.rsplit(b"|", 1)[0], raw))
                        closed += 1
                        if closed % 500 == 0:
                            # a send that finds room does not yield: let heartbeats, the
                            # sink and the lead agent run (a starved loop once timed out
                            # the sink's Postgres writes and stalled a close for 130 s)
                            await asyncio.sleep(0)
            # the marker moves only once the broker has every window: a crash before this
            # publishes them again (in-place rewrites downstream), never loses one
            await asyncio.gather(*(f for f in pending if inspect.isawaitable(f)))
            self.table[marker_key(partition)] = due[-1].isoformat().encode()
            self.closed += closed
            log.info("closed %d daily windows in partition %d (%s)", closed, partition,
                     ", ".join(d.isoformat() for d in due))
        through = self.closed_through(partition)
        for day in [d for d in index if through is not None and d <= through
                    and self._past_retention(d, now)]:
            for k in index.pop(day):
                if self.table.get(k) is not None:
                    del self.table[k]
        return closed

    def _learn(self, partition: int) -> None:
        """Index every partition not yet learned, in one scan of the table's keys.

        Keys only, no `get`: a RocksDB-backed table answers a `get` from the current event's
        partition alone, so values of other partitions look missing here (that once left
        whole partitions unclosed); `on_tick` reads each value in its own partition."""
        todo = {p for p in range(self.partitions) if p not in self.index} | {partition}
        found: dict[int, dict[date, set[bytes]]] = {p: {} for p in todo}
        for k in list(self.table.keys()):
            if k.startswith(MARKER):
                continue
            lead, _, day = k.rpartition(b"|")
            p = partition_of(lead, self.partitions)
            if p in found:
                found[p].setdefault(date.fromisoformat(day.decode()), set()).add(k)
        self.index.update(found)
