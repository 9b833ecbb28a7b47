"""DailyWindows on a plain dict table: closing, late events, restarts and purges, without a
broker (the end-to-end behaviour through Faust is in tests/e2e/test_daily_e2e.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from leadstream.agents.daily import DailyWindows, marker_key, partition_of
from leadstream.domain.identity import lead_key
from leadstream.domain.model import InboundEvent, LeadState, MessageInfo
from leadstream.domain.rules import apply_inbound
from tests.unit.agents.harness import P, Sent, windows

# yesterday (within the retention, which on_applied checks against the wall clock)
DAY1 = (datetime.now(UTC) - timedelta(days=1)).date()
T1 = datetime(DAY1.year, DAY1.month, DAY1.day, 3, 0, tzinfo=UTC)  # 10:00 WIB on DAY1
T2 = T1 + timedelta(days=1)
CLOSE1 = T1 + timedelta(hours=14, seconds=600)  # 24:00 WIB plus the grace


class PartitionedTable(dict[bytes, bytes]):
    """A table like Faust's RocksDB store: `get` sees only the current event's partition."""

    current: int | None = None

    def get(self, key: bytes, default: Any = None) -> Any:
        if key.startswith(b"__closed__|"):
            owner = int(key.rsplit(b"|", 1)[1])
        else:
            owner = partition_of(key.rsplit(b"|", 1)[0], P)
        if self.current is not None and owner != self.current:
            return default
        return super().get(key, default)


class Leads:
    """The lead side: applies inbound messages and feeds the windows, as the agent does."""

    def __init__(self, windows: DailyWindows) -> None:
        self.windows = windows
        self.state: dict[str, LeadState] = {}

    async def message(self, n: int, wamid: str, at: datetime) -> int:
        phone = f"+62812{10000000 + n:08d}"
        key = lead_key("ws", phone)
        ev = InboundEvent(
            event_id=f"e:{wamid}", kind="message", event_type="whatsapp.message.received",
            workspace_id="ws", lead_key=key, identity=phone, phone_e164=phone,
            occurred_at=at, received_at=at,
            message=MessageInfo(wamid=wamid, direction="inbound", text="halo",
                                status="received", timestamp=at))
        before = self.state.get(key)
        applied = apply_inbound(before, None, ev)
        self.state[key] = applied.lead
        p = partition_of(key.encode(), P)
        if isinstance(self.windows.table, PartitionedTable):
            self.windows.table.current = p
        await self.windows.on_applied(before, applied, p)
        return p


async def with_messages(n: int, table: dict[bytes, bytes] | None = None
                        ) -> tuple[dict[bytes, bytes], Sent, DailyWindows]:
    """A table, the sends and the windows after one message from each of `n` leads on DAY1."""
    table = {} if table is None else table
    sent = Sent()
    w = windows(table, sent)
    leads = Leads(w)
    for n_ in range(n):
        await leads.message(n_, f"a{n_}", T1)
    return table, sent, w


async def tick_all(w: DailyWindows, now: datetime) -> int:
    closed = 0
    for p in range(P):
        if isinstance(w.table, PartitionedTable):
            w.table.current = p
        closed += await w.on_tick(p, now)
    return closed


async def test_each_lead_day_is_published_once_when_the_day_closes() -> None:
    table: dict[bytes, bytes] = {}
    sent = Sent()
    w = windows(table, sent)
    leads = Leads(w)
    for n in range(20):
        await leads.message(n, f"a{n}", T1)
        await leads.message(n, f"b{n}", T1 + timedelta(hours=1))
    await leads.message(0, "next-day", T2)
    assert await tick_all(w, CLOSE1 - timedelta(seconds=1)) == 0 and sent == []
    assert await tick_all(w, CLOSE1) == 20
    aggs = sent.aggregates()
    assert sorted(a.lead_key for a in aggs) == sorted({a.lead_key for a in aggs})
    assert {a.day for a in aggs} == {DAY1} and {a.inbound_count for a in aggs} == {2}
    assert await tick_all(w, CLOSE1 + timedelta(hours=1)) == 0  # never twice
    assert len(sent) == 20
    # the marker, not a flag per window, says what is closed
    assert {table[marker_key(p)] for p in range(P) if marker_key(p) in table} == {DAY1.isoformat().encode()}


async def test_a_late_event_republishes_its_day_and_never_opens_a_second_window() -> None:
    sent = Sent()
    w = windows({}, sent)
    leads = Leads(w)
    await leads.message(1, "a", T1)
    await tick_all(w, CLOSE1)
    assert len(sent) == 1
    await leads.message(1, "late", T1 + timedelta(hours=2))
    assert len(sent) == 2
    first, late = sent.aggregates()
    assert (late.lead_key, late.day) == (first.lead_key, first.day)
    assert (first.inbound_count, late.inbound_count) == (1, 2) and late.version > first.version
    assert await tick_all(w, CLOSE1 + timedelta(hours=1)) == 0


async def test_an_event_folded_during_the_close_is_published() -> None:
    """The close awaits its sends; the lead agent runs meanwhile. The day is closed in
    memory before the first send, so such an event is late, not lost."""
    table: dict[bytes, bytes] = {}
    gate = asyncio.Event()
    sent = Sent()

    async def slow_send(topic: str, key: bytes, value: bytes) -> Any:
        await gate.wait()
        return await sent(topic, key, value)

    w = windows(table, sent)
    w.send = slow_send
    leads = Leads(w)
    p = await leads.message(1, "a", T1)
    closing = asyncio.create_task(w.on_tick(p, CLOSE1))
    await asyncio.sleep(0)
    late = asyncio.create_task(leads.message(1, "during", T1 + timedelta(hours=3)))
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(closing, late)
    newest = max(sent.aggregates(), key=lambda a: a.version)
    assert newest.inbound_count == 2


async def test_a_restart_before_the_marker_moved_publishes_again_and_after_does_not() -> None:
    table, sent, _ = await with_messages(10)
    # crash before the close: a new instance learns the windows from the table
    w2 = windows(table, sent)
    assert await tick_all(w2, CLOSE1) == 10
    # a crash after the sends but before the marker: simulate by removing the markers
    saved = {k: v for k, v in table.items() if k.startswith(b"__closed__")}
    for k in saved:
        del table[k]
    w3 = windows(table, sent)
    assert await tick_all(w3, CLOSE1) == 10  # again: the same ids downstream, in place
    w4 = windows(table, sent)
    assert await tick_all(w4, CLOSE1 + timedelta(days=1)) == 0  # markers persisted
    assert len(sent) == 20 and len({(a.lead_key, a.day, a.version)
                                     for a in sent.aggregates()}) == 10


async def test_closed_days_past_retention_are_purged() -> None:
    table, _, w = await with_messages(5)
    await tick_all(w, CLOSE1)
    assert sum(1 for k in table if not k.startswith(b"__closed__")) == 5
    await tick_all(w, CLOSE1 + timedelta(days=9))
    assert [k for k in table if not k.startswith(b"__closed__")] == []


async def test_forget_relearns_windows_written_elsewhere() -> None:
    table: dict[bytes, bytes] = {}
    sent = Sent()
    w = windows(table, sent)
    await tick_all(w, T1)  # learned: nothing yet
    other = Leads(windows(table, Sent()))  # another worker owned the partitions meanwhile
    for n in range(6):
        await other.message(n, f"a{n}", T1)
    w.forget(range(P))
    assert await tick_all(w, CLOSE1) == 6


async def test_partition_scoped_reads_still_close_every_partition() -> None:
    """RocksDB answers a `get` from the current partition only; learning the windows of all
    partitions during one partition's tick must not miss the others."""
    table, sent, _ = await with_messages(40, PartitionedTable())
    assert len({partition_of(k.rsplit(b"|", 1)[0], P) for k in table}) == P
    w2 = windows(table, sent)  # a restart: learns from the table on its first tick
    assert await tick_all(w2, CLOSE1) == 40
