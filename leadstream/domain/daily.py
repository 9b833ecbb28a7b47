"""Daily activity per lead: which calendar day an event belongs to, the aggregate, the summary.

Days are calendar days in the workspace timezone (`LEADSTREAM_TIMEZONE`, Asia/Jakarta by
default: a day is 00:00-24:00 WIB, not UTC), by **event time**. A day closes once it has ended
and the grace period has passed. Everything here is pure; the agent applies it.

The aggregate is capped (a few telling texts, a bounded list of status moves), so state per
lead-day is bounded whatever the traffic.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from leadstream.domain.days import day_bounds, day_of
from leadstream.domain.identity import stable_id
from leadstream.domain.model import LeadState, Model, Note
from leadstream.domain.rules import Applied

MAX_TEXTS = 5
MAX_TEXT_CHARS = 280
MAX_STATUS_MOVES = 20
#: contribution ids remembered per lead-day, so a reprocessed input is not counted twice
MAX_SEEN_IDS = 300
SUMMARY_AUTHOR = "system-daily-summary"
SARAH_FIELDS = ("sarah_name", "business_type", "domisili", "business_duration", "priority",
                "urgency_level", "lead_score", "lead_temperature", "chat_phase", "next_step")


def closes_at(day: date, tz: str, grace_seconds: int) -> datetime:
    """When the day's window closes: the day's end plus the grace for late events."""
    return day_bounds(day, tz)[1] + timedelta(seconds=grace_seconds)


def is_closable(day: date, now: datetime, tz: str, grace_seconds: int) -> bool:
    return now >= closes_at(day, tz, grace_seconds)


class StatusMove(Model):
    from_status: str | None
    to_status: str
    by: str
    at: datetime


class Said(Model):
    at: datetime
    direction: str
    text: str


class DayAggregate(Model):
    """What happened with one lead on one day; the state of the daily window."""

    lead_id: str
    lead_key: str
    workspace_id: str
    day: date
    lead_name: str | None = None
    inbound_count: int = 0
    outbound_count: int = 0
    first_message_at: datetime | None = None
    last_message_at: datetime | None = None
    message_types: dict[str, int] = Field(default_factory=dict)
    status_changes: list[StatusMove] = Field(default_factory=list)
    status_changes_total: int = 0
    sarah_changes: dict[str, Any] = Field(default_factory=dict)
    texts: list[Said] = Field(default_factory=list)
    next_step: str | None = None
    closed: bool = False
    version: int = 0
    seen_ids: list[str] = Field(default_factory=list)


#: a day's aggregate as the worker keeps it while it folds: `DayAggregate`'s JSON object as
#: a plain dict (timestamps as ISO strings or datetimes), read with `orjson.loads` and written
#: with `orjson.dumps`; the model is for the edges (the close, the summary, tests). Folding
#: the model cost the worker ~30 of its ~75 µs an event (bench/agent_cpu.py); the state is
#: its own, written by this code only, so it is not validated again on every read.
DayState = dict[str, Any]


def contributions(before: LeadState | None, applied: Applied, new_message: bool,
                  tz: str) -> dict[date, dict[str, Any]]:
    """What one applied input adds to which day (empty when it changed nothing countable)."""
    out: dict[date, dict[str, Any]] = {}
    lead = applied.lead
    msg = applied.message
    if new_message and msg is not None:
        c = out.setdefault(day_of(msg.sent_at, tz), {})
        c["message"] = {"id": f"m:{msg.message_id}", "direction": msg.direction,
                        "type": msg.type, "at": msg.sent_at, "text": msg.text}
    for ch in applied.status_changes:
        c = out.setdefault(day_of(ch.changed_at, tz), {})
        c.setdefault("status", []).append((f"s:{ch.event_id}", {
            "from_status": ch.from_status, "to_status": ch.to_status, "by": ch.changed_by,
            "at": ch.changed_at}))
    changed = {f: getattr(lead, f) for f in SARAH_FIELDS
               if getattr(lead, f) is not None
               and (before is None or getattr(before, f) != getattr(lead, f))}
    if changed:
        c = out.setdefault(day_of(lead.updated_at, tz), {})
        c["sarah"] = changed
        c["sarah_id"] = f"f:{lead.version}"
    return out


def _at(v: datetime | str) -> datetime:
    """A timestamp of a `DayState`: as folded (datetime) or as read back (ISO string)."""
    return v if isinstance(v, datetime) else datetime.fromisoformat(v)


#: `DayAggregate`'s defaults as a `DayState` (its containers are shared: the fold replaces a
#: container, never changes one in place)
_EMPTY_DAY: DayState = DayAggregate(lead_id="", lead_key="", workspace_id="",
                                    day=date.min).model_dump(mode="json")


def new_day(lead: LeadState, day: date) -> DayState:
    """An empty aggregate of `lead` on `day`."""
    return {**_EMPTY_DAY, "lead_id": lead.lead_id, "lead_key": lead.lead_key,
            "workspace_id": lead.workspace_id, "day": day.isoformat()}


def fold_state(agg: DayState | None, lead: LeadState, day: date, c: dict[str, Any]
               ) -> DayState:
    """Add one contribution to a day's aggregate: a new dict (the given one is left as it
    is: the flush in flight may still be encoding it), capped; `agg` itself when every part
    was folded before.

    Parts already folded (by id) are skipped: after a crash the lead and its day aggregate
    may have been stored at different points, and the input is processed again.
    """
    seen: list[str] = agg["seen_ids"] if agg is not None else []
    new_ids: list[str] = []

    def first_time(part_id: str) -> bool:
        # a scan of <= MAX_SEEN_IDS ids: cheaper than a set built per fold
        if part_id in seen or part_id in new_ids:
            return False
        new_ids.append(part_id)
        return True

    m = c.get("message")
    message = m if m and first_time(m["id"]) else None
    moves = [move for move_id, move in c.get("status", ()) if first_time(move_id)]
    sarah = c.get("sarah") if c.get("sarah") and first_time(c["sarah_id"]) else None
    if not new_ids:
        return agg if agg is not None else new_day(lead, day) | {"lead_name": lead.name}
    a = dict(agg) if agg is not None else new_day(lead, day)
    a["lead_name"] = lead.name
    if message is not None:
        inbound = message["direction"] == "inbound"
        if inbound:
            a["inbound_count"] += 1
        else:
            a["outbound_count"] += 1
        at: datetime = message["at"]
        first, last = a["first_message_at"], a["last_message_at"]
        if first is None or at < _at(first):
            a["first_message_at"] = at
        if last is None or at > _at(last):
            a["last_message_at"] = at
        types = a["message_types"] = dict(a["message_types"])
        types[message["type"]] = types.get(message["type"], 0) + 1
        if message["text"] and inbound:
            texts = a["texts"]
            in_order = not texts or _at(texts[-1]["at"]) <= at  # the usual case: no sort
            said = {"at": at, "direction": "inbound",
                    "text": str(message["text"])[:MAX_TEXT_CHARS]}
            texts = [*(texts[-(MAX_TEXTS - 1):] if in_order else texts), said]
            if not in_order:
                texts = sorted(texts, key=lambda s: _at(s["at"]))[-MAX_TEXTS:]
            a["texts"] = texts
    if moves:
        a["status_changes_total"] += len(moves)
        a["status_changes"] = sorted([*a["status_changes"], *moves],
                                     key=lambda s: _at(s["at"]))[-MAX_STATUS_MOVES:]
    if sarah is not None:
        changes = a["sarah_changes"] = dict(a["sarah_changes"])
        for k, v in sarah.items():
            changes[k] = v
            if k == "next_step":
                a["next_step"] = v
    a["seen_ids"] = [*seen, *new_ids][-MAX_SEEN_IDS:]
    a["version"] += 1
    return a


def fold(agg: DayAggregate | None, lead: LeadState, day: date, c: dict[str, Any]
         ) -> DayAggregate:
    """`fold_state` on the model (tools and tests): `agg` itself when nothing was new."""
    state = agg.model_dump(mode="json") if agg is not None else None
    new = fold_state(state, lead, day, c)
    return agg if agg is not None and new is state else DayAggregate.model_validate(new)


def has_activity(a: DayAggregate) -> bool:
    return bool(a.inbound_count or a.outbound_count or a.status_changes_total or a.sarah_changes)


# ----------------------------------------------------------------------------- summary

STATUS_ID = {"new": "baru", "qualified": "terkualifikasi", "contacted": "dihubungi",
             "converted": "berhasil (closing)", "archived": "diarsipkan"}
FIELD_ID = {"sarah_name": "nama", "business_type": "jenis usaha", "domisili": "domisili",
            "business_duration": "lama usaha", "priority": "prioritas",
            "urgency_level": "urgensi", "lead_score": "skor", "lead_temperature": "suhu lead",
            "chat_phase": "fase chat", "next_step": "langkah berikutnya"}


#: a daily summary: at most this many characters, in 2 to 3 sentences (issue #17: the
#: team reads it in the lead list and on a phone)
SUMMARY_MAX_CHARS = 200
SUMMARY_MAX_SENTENCES = 3
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")


def _clip(text: str, limit: int) -> str:
    """`text` within `limit` characters, cut at a word boundary with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[:max(0, limit - 1)]
    if " " in cut[limit // 2:]:
        cut = cut[:cut.rindex(" ")]
    return cut.rstrip(" ,;:") + "…"


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(" ".join(text.split())) if s.strip()]


def fit_summary(text: str) -> str:
    """Any summary (the built-in one or a model's) kept to the first sentences that fit in
    `SUMMARY_MAX_CHARS`, at most `SUMMARY_MAX_SENTENCES`; a first sentence that alone is too
    long is cut at a word."""
    out: list[str] = []
    for s in sentences(text)[:SUMMARY_MAX_SENTENCES]:
        if len(" ".join([*out, s])) > SUMMARY_MAX_CHARS:
            if not out:
                out.append(_clip(s, SUMMARY_MAX_CHARS))
            break
        out.append(s)
    return " ".join(out)


def summarize(a: DayAggregate, tz: str) -> str:
    """A deterministic Indonesian summary of the day in 2-3 sentences, at most 200 characters:
    who and how many messages, then the most useful of: status moves, what the lead asked,
    the next step, what Sarah learned."""
    zone = ZoneInfo(tz)
    name = _clip(a.lead_name or "Lead", 40)
    if a.inbound_count or a.outbound_count:
        window = ""
        if a.first_message_at and a.last_message_at:
            f = a.first_message_at.astimezone(zone).strftime("%H:%M")
            t = a.last_message_at.astimezone(zone).strftime("%H:%M")
            window = f" (pukul {f}–{t})" if f != t else f" (pukul {f})"
        first = (f"{name}: {a.inbound_count} pesan masuk dan {a.outbound_count} pesan keluar"
                 f"{window}.")
    else:
        first = f"{name}: tidak ada pesan."
    candidates: list[str] = []
    if a.status_changes_total:
        m = a.status_changes[-1]
        more = f" (+{a.status_changes_total - 1} lainnya)" if a.status_changes_total > 1 else ""
        candidates.append(f"Status {STATUS_ID.get(m.from_status or '', m.from_status or '-')}"
                          f" → {STATUS_ID.get(m.to_status, m.to_status)} oleh {m.by}{more}.")
    asked = [s for s in a.texts if s.direction == "inbound"]
    if asked:  # the latest by time (a late event may arrive after a later one)
        candidates.append(f"Lead menulis: “{max(asked, key=lambda s: s.at).text}”.")
    if a.next_step:
        candidates.append(f"Langkah berikutnya: {a.next_step}.")
    fields = {k: v for k, v in a.sarah_changes.items() if k not in ("next_step", "chat_phase")}
    if fields:
        candidates.append("Data dari Sarah: " + ", ".join(
            f"{FIELD_ID.get(k, k)} {v}" for k, v in sorted(fields.items())) + ".")
    chosen = [first]
    for c in candidates:
        if len(chosen) == SUMMARY_MAX_SENTENCES:
            break
        room = SUMMARY_MAX_CHARS - len(" ".join(chosen)) - 1
        if len(c) <= room:
            chosen.append(c)
        elif c.startswith("Lead menulis: “") and room >= 30:  # a quote may be shortened
            chosen.append(_clip(c[:-2], room - 2) + "”.")
    if len(chosen) == 1:
        chosen.append("Belum ada langkah berikutnya.")
    return fit_summary(" ".join(chosen))


class DailySummary(BaseModel):
    """A `lead_daily_activity` row; published on the daily topic, upserted by version."""

    event_id: str
    lead_id: str
    lead_key: str
    workspace_id: str
    day: date
    inbound_count: int
    outbound_count: int
    status_changes: list[StatusMove]
    first_message_at: datetime | None
    last_message_at: datetime | None
    summary: str
    summarizer: str
    version: int


def summary_note_id(lead_id: str, day: date) -> str:
    return stable_id("daily-summary", lead_id, day.isoformat())


def summary_records(a: DayAggregate, text: str, summarizer: str, closed_at: datetime
                    ) -> tuple[DailySummary, Note]:
    """The row and the note for a closed day; same ids every time (updates in place).

    `closed_at` should be the day's closing time (not the wall clock), so a reprocessing
    writes the same note.
    """
    note_id = summary_note_id(a.lead_id, a.day)
    row = DailySummary(
        event_id=note_id, lead_id=a.lead_id, lead_key=a.lead_key, workspace_id=a.workspace_id,
        day=a.day, inbound_count=a.inbound_count, outbound_count=a.outbound_count,
        status_changes=a.status_changes, first_message_at=a.first_message_at,
        last_message_at=a.last_message_at, summary=text, summarizer=summarizer,
        version=a.version,
    )
    note = Note(note_id=note_id, lead_id=a.lead_id, lead_key=a.lead_key,
                workspace_id=a.workspace_id, author=SUMMARY_AUTHOR, author_type="system",
                content=text, created_at=closed_at, version=a.version)
    return row, note
