"""Daily windows: calendar days in the workspace timezone, by event time; capped aggregates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import pytest

from leadstream.domain.daily import (
    MAX_TEXTS,
    SUMMARY_MAX_CHARS,
    SUMMARY_MAX_SENTENCES,
    DayAggregate,
    closes_at,
    contributions,
    day_of,
    fit_summary,
    fold,
    has_activity,
    is_closable,
    sentences,
    summarize,
    summary_records,
)
from leadstream.domain.model import Command, InboundEvent, MessageState, SarahUpdate
from leadstream.domain.rules import Applied, apply_command, apply_inbound, apply_sarah
from tests.unit.domain.builders import cmd, msg_event, sarah


def utc(s: str) -> datetime:
    return datetime.fromisoformat(s).replace(tzinfo=UTC)


@pytest.mark.parametrize("instant,tz,day", [
    ("2026-11-01T16:59:59", "Asia/Jakarta", "2026-11-01"),  # 23:59:59 WIB
    ("2026-11-01T17:00:00", "Asia/Jakarta", "2026-11-02"),  # 00:00 WIB next day
    ("2026-11-01T23:30:00", "Asia/Jakarta", "2026-11-02"),
    ("2026-11-01T23:30:00", "UTC", "2026-11-01"),
    ("2026-11-01T15:59:59", "Asia/Makassar", "2026-11-01"),  # WITA, UTC+8
    ("2026-11-01T16:00:00", "Asia/Makassar", "2026-11-02"),
    ("2026-11-01T14:59:59", "Asia/Jayapura", "2026-11-01"),  # WIT, UTC+9
    ("2026-11-01T15:00:00", "Asia/Jayapura", "2026-11-02"),
    ("2026-03-08T09:59:59", "America/New_York", "2026-03-08"),  # DST day
    ("2026-11-02T04:59:59", "America/New_York", "2026-11-01"),
])
def test_day_is_the_calendar_day_in_the_workspace_timezone(instant: str, tz: str, day: str
                                                           ) -> None:
    assert day_of(utc(instant), tz) == date.fromisoformat(day)


@pytest.mark.parametrize("grace,now,closable", [
    (600, "2026-11-01T17:00:00", False),   # the day just ended (00:00 WIB)
    (600, "2026-11-01T17:09:59", False),
    (600, "2026-11-01T17:10:00", True),    # + 10 minutes grace
    (0, "2026-11-01T17:00:00", True),
    (3600, "2026-11-01T17:59:00", False),
])
def test_a_day_closes_after_its_end_plus_grace(grace: int, now: str, closable: bool) -> None:
    d = date(2026, 11, 1)
    assert closes_at(d, "Asia/Jakarta", grace) == utc("2026-11-01T17:00:00") + timedelta(
        seconds=grace)
    assert is_closable(d, utc(now), "Asia/Jakarta", grace) is closable


def _run_days(inputs: Sequence[InboundEvent | SarahUpdate | Command],
              tz: str = "Asia/Jakarta") -> dict[date, DayAggregate]:
    lead = None
    messages: dict[str, MessageState | None] = {}
    days: dict[date, DayAggregate] = {}
    for x in inputs:
        before = lead
        a: Applied
        if isinstance(x, InboundEvent):
            assert x.message is not None
            a = apply_inbound(lead, messages.get(x.message.wamid), x)
            messages[x.message.wamid] = a.message
        elif isinstance(x, SarahUpdate):
            a = apply_sarah(lead, x)
        else:
            a = apply_command(lead, x)
        lead = a.lead
        for day, c in contributions(before, a, a.new_message, tz).items():
            days[day] = fold(days.get(day), lead, day, c)
    return days


def test_aggregate_counts_types_statuses_and_sarah_fields() -> None:
    # minute offsets from 2026-11-01 09:00 UTC = 16:00 WIB
    days = _run_days([
        msg_event("i1", 0, text="Berapa harga paket bulanannya?", name="Budi"),
        msg_event("o1", 5, direction="outbound", text="Mulai 99rb"),
        msg_event("i1", 0, text="Berapa harga paket bulanannya?"),  # redelivery: not counted
        msg_event("o1", 6, kind="status", direction="outbound", status="read", text=None),
        sarah(10, "C", domisili="Bandung", next_step="demo Senin"),
        cmd(20, "status", "human", status="contacted", reason="called"),
        msg_event("i2", 7 * 60 + 30, text="Besok saya kabari"),  # 23:30 WIB: still Nov 1
        msg_event("i3", 8 * 60 + 5, text="Halo lagi"),            # 00:05 WIB: Nov 2
    ])
    d1, d2 = days[date(2026, 11, 1)], days[date(2026, 11, 2)]
    assert (d1.inbound_count, d1.outbound_count) == (2, 1)
    assert (d2.inbound_count, d2.outbound_count) == (1, 0)
    assert [(m.from_status, m.to_status, m.by) for m in d1.status_changes] == [
        ("new", "qualified", "sarah-bot"), ("qualified", "contacted", "human")]
    assert d1.sarah_changes["domisili"] == "Bandung" and d1.next_step == "demo Senin"
    assert d1.message_types == {"text": 3}
    assert [t.text for t in d1.texts] == ["Berapa harga paket bulanannya?", "Besok saya kabari"]
    assert not d2.status_changes and has_activity(d2)


def test_texts_are_capped() -> None:
    days = _run_days([msg_event(f"i{i}", i, text=f"pesan {i} " + "x" * 500)
                      for i in range(20)])
    (agg,) = days.values()
    assert agg.inbound_count == 20 and len(agg.texts) == MAX_TEXTS
    assert agg.texts[-1].text.startswith("pesan 19") and len(agg.texts[-1].text) == 280


def test_summary_is_readable_and_deterministic() -> None:
    days = _run_days([
        msg_event("i1", 0, text="Berapa harga paket bulanannya?", name="Budi"),
        msg_event("o1", 5, direction="outbound", text="Mulai 99rb"),
        sarah(10, "C", domisili="Bandung", next_step="demo Senin"),
    ])
    agg = days[date(2026, 11, 1)]
    text = summarize(agg, "Asia/Jakarta")
    assert text == summarize(agg, "Asia/Jakarta")
    assert text == ("Budi: 1 pesan masuk dan 1 pesan keluar (pukul 16:00–16:05)."
                    " Status baru → terkualifikasi oleh sarah-bot."
                    " Lead menulis: “Berapa harga paket bulanannya?”.")
    assert len(text) <= SUMMARY_MAX_CHARS and len(sentences(text)) == 3


@pytest.mark.parametrize("seed", range(40))
def test_every_summary_is_two_or_three_sentences_within_200_characters(seed: int) -> None:
    """Random days, long names, long texts and many moves: always 2-3 sentences, <= 200."""
    import random

    rnd = random.Random(seed)
    events: list[InboundEvent | SarahUpdate | Command] = [
        msg_event(f"m{i}", i * 3, direction=rnd.choice(["inbound", "outbound"]),
                  text=rnd.choice(["", "ok", "Harga? " * rnd.randint(1, 60),
                                   "Dr. A. Budi. Sp.  KK. " * rnd.randint(1, 9)]),
                  name=rnd.choice(["Budi", "N" * 250, "Ibu Sri. Rahayu"]))
        for i in range(rnd.randint(0, 6))]
    if rnd.random() < 0.7:
        events.append(sarah(30, rnd.choice("ABCDE"), domisili="Kota " * rnd.randint(1, 80),
                            next_step=rnd.choice([None, "demo " * rnd.randint(1, 60)])))
    days = _run_days(events) if events else {}
    for agg in days.values():
        text = summarize(agg, "Asia/Jakarta")
        assert len(text) <= SUMMARY_MAX_CHARS, text
        assert 2 <= len(sentences(text)) <= SUMMARY_MAX_SENTENCES, text


def test_fit_summary_keeps_whole_sentences() -> None:
    assert fit_summary("Satu. Dua! Tiga? Empat.") == "Satu. Dua! Tiga?"
    long = "kata " * 100
    assert len(fit_summary(long)) <= SUMMARY_MAX_CHARS and fit_summary(long).endswith("…")
    assert fit_summary("Pendek. " + "x" * 300 + ".") == "Pendek."


def test_summary_records_keep_their_ids_across_versions() -> None:
    days = _run_days([msg_event("i1", 0)])
    agg = days[date(2026, 11, 1)]
    closed = closes_at(agg.day, "Asia/Jakarta", 600)
    row1, note1 = summary_records(agg, "a", "builtin", closed)
    later = fold(agg, _lead_of(agg), agg.day, {"message": {
        "id": "m:late", "direction": "inbound", "type": "text",
        "at": utc("2026-11-01T10:00:00"), "text": "x"}})
    row2, note2 = summary_records(later, "b", "builtin", closed)
    assert note1.note_id == note2.note_id == row1.event_id == row2.event_id
    assert note2.version > note1.version and note1.author == "system-daily-summary"
    assert note1.author_type == "system" and note1.created_at == closed


def _lead_of(agg: DayAggregate):  # type: ignore[no-untyped-def]
    return apply_inbound(None, None, msg_event("i1", 0)).lead


def test_a_reprocessed_contribution_is_folded_once() -> None:
    lead = _lead_of(None)  # type: ignore[arg-type]
    c = {"message": {"id": "m:w1", "direction": "inbound", "type": "text",
                     "at": utc("2026-11-01T02:00:00"), "text": "halo"}}
    once = fold(None, lead, date(2026, 11, 1), c)
    twice = fold(once, lead, date(2026, 11, 1), c)
    assert twice is once and twice.inbound_count == 1
