"""Daily summaries through the real pipeline: one per lead-day, late events, restarts."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from leadstream.config import Settings
from tests.support.fixtures import StartPipeline
from tests.support.pipeline import Pipeline, eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]
WIB = ZoneInfo("Asia/Jakarta")


def ts(day: date, hour: int, minute: int = 0) -> int:
    return int(datetime(day.year, day.month, day.day, hour, minute, tzinfo=WIB).timestamp())


@pytest.fixture
async def fast_ticks(pipelines: StartPipeline, settings: Settings) -> Pipeline:
    # no grace: yesterday is closable at once, also in the first minutes after midnight in
    # Jakarta (with the default 600 s these tests failed when run from 00:00 to 00:10 WIB)
    s = settings.model_copy(update={"daily_tick_seconds": 0.5, "daily_close_grace_seconds": 0})
    return await pipelines(s)


async def _summaries(p: Pipeline) -> list[dict]:
    rows = await p.fetch(
        "SELECT l.phone_e164, d.day, d.inbound_count, d.outbound_count, d.summary, d.summarizer,"
        " n.note_id, n.content, n.version AS note_version, n.author_type"
        " FROM lead_daily_activity d JOIN leads l USING (lead_id)"
        " LEFT JOIN lead_notes n ON n.lead_id = d.lead_id AND n.author = 'system-daily-summary'"
        "   AND n.content = d.summary"
        " ORDER BY l.phone_e164, d.day")
    return [dict(r) for r in rows]


async def test_one_summary_per_lead_day_late_events_update_in_place(fast_ticks: Pipeline
                                                                   ) -> None:
    p = fast_ticks
    today = datetime.now(WIB).date()
    d1, d2 = today - timedelta(days=2), today - timedelta(days=1)
    a, b = "6281355550001", "6281355550002"
    # lead A on two days (one message at 23:50 WIB belongs to d1, not d2), lead B on one
    assert await p.message(a, "wamid.a1", ts=ts(d1, 9), text="Berapa harganya?") == 200
    assert await p.message(a, "wamid.a2", ts=ts(d1, 23, 50), text="Kirim brosur ya") == 200
    assert await p.message(a, "wamid.a3", ts=ts(d1, 10), direction="outbound",
                           text="Mulai 99rb", name=None) == 200
    assert await p.message(a, "wamid.a4", ts=ts(d2, 0, 10), text="Sudah saya baca") == 200
    assert await p.message(b, "wamid.b1", ts=ts(d2, 14), text="Halo") == 200
    assert await p.message(b, "wamid.b1", ts=ts(d2, 14), text="Halo") == 200  # redelivery

    rows = await eventually(lambda: _n_rows(p, 3), timeout=60)
    got = {(r["phone_e164"], r["day"]): (r["inbound_count"], r["outbound_count"]) for r in rows}
    assert got == {("+" + a, d1): (2, 1), ("+" + a, d2): (1, 0), ("+" + b, d2): (1, 0)}
    for r in rows:
        assert r["note_id"] is not None, "every summary row has its note"
        assert r["author_type"] == "system" and r["summarizer"] == "builtin"
    # 2-3 sentences within 200 characters: the day's counts, then what the lead wrote last
    assert "2 pesan masuk dan 1 pesan keluar" in rows[0]["summary"]
    assert "Kirim brosur ya" in rows[0]["summary"] and len(rows[0]["summary"]) <= 200
    notes = await p.fetch("SELECT note_id FROM lead_notes WHERE author = 'system-daily-summary'")
    assert len(notes) == 3

    # a late event for a closed day: same row, same note, new content
    first = {(r["phone_e164"], r["day"]): r for r in rows}[("+" + a, d1)]
    assert await p.message(a, "wamid.a5", ts=ts(d1, 20), text="Satu lagi") == 200

    async def updated() -> dict | None:
        # the row and its note travel on two topics (`daily`, `notes`) and reach the replica
        # in either order: wait for both, as `_n_rows` does (a note of the new content)
        for r in await _summaries(p):
            if (r["phone_e164"], r["day"]) == ("+" + a, d1) and r["inbound_count"] == 3 \
                    and r["note_id"] is not None:
                return r
        return None

    late = await eventually(updated, timeout=30)
    assert late["note_id"] == first["note_id"] and late["note_version"] > first["note_version"]
    assert "3 pesan masuk" in late["content"]  # the late message is counted in place
    assert len(await p.fetch(
        "SELECT 1 FROM lead_notes WHERE author = 'system-daily-summary'")) == 3

    # a restart closes nothing twice and loses nothing
    before = await _summaries(p)
    p.worker.stop()
    p.worker.start()
    assert await p.message(b, "wamid.b2", ts=ts(today, 8), text="pagi") == 200  # today: open
    await eventually(lambda: p.fetchrow(
        "SELECT 1 FROM leads WHERE phone_e164 = $1 AND message_count = 2", "+" + b), timeout=60)
    import asyncio
    await asyncio.sleep(2)  # several ticks
    assert await _summaries(p) == before


async def _n_rows(p: Pipeline, n: int) -> list[dict] | None:
    rows = await _summaries(p)
    ok = len(rows) == n and all(r["note_id"] for r in rows)
    return rows if ok else None


async def test_restart_in_the_middle_of_a_day_keeps_the_window(
        pipelines: StartPipeline, settings: Settings,
        tmp_path: Path) -> None:
    """The window's state survives a SIGKILL; the summary counts both halves of the day."""
    yesterday = datetime.now(WIB).date() - timedelta(days=1)
    never = settings.model_copy(update={"daily_tick_seconds": 0.5,
                                        "daily_close_grace_seconds": 10 * 86400})
    p = await pipelines(never)
    try:
        lead = "6281355550003"
        for i in range(3):
            assert await p.message(lead, f"wamid.m{i}", ts=ts(yesterday, 8 + i)) == 200
        await eventually(lambda: p.fetchrow(
            "SELECT 1 FROM leads WHERE message_count = 3"), timeout=60)
        p.worker.kill()
        p.worker.start()
        for i in range(3, 5):
            assert await p.message(lead, f"wamid.m{i}", ts=ts(yesterday, 8 + i),
                                   direction="outbound", name=None) == 200
        await eventually(lambda: p.fetchrow(
            "SELECT 1 FROM leads WHERE message_count = 5"), timeout=60)
        assert await p.fetch("SELECT 1 FROM lead_daily_activity") == []  # not closed yet
        p.worker.stop()
        p.worker.settings = never.model_copy(update={"daily_close_grace_seconds": 0})
        p.worker.start()
        row = await eventually(lambda: p.fetchrow(
            "SELECT inbound_count, outbound_count FROM lead_daily_activity"), timeout=60)
        assert (row["inbound_count"], row["outbound_count"]) == (3, 2)
    finally:
        await p.stop()
