"""The manager's daily digest of a workspace: status moves, hot leads, leads waiting for a
reply, and counts, as facts (gathered from the replica by `summarize.digest`) turned into a
short Indonesian text here, with no I/O."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

from leadstream.domain.daily import STATUS_ID
from leadstream.domain.reports import fmt_seconds


class LeadRef(BaseModel):
    lead_id: str
    name: str


class Move(BaseModel):
    name: str
    from_status: str | None
    to_status: str
    by: str


class Waiting(BaseModel):
    name: str
    since: datetime


class TaskRef(BaseModel):
    name: str
    text: str
    owner: str | None
    due_at: datetime | None


class DigestFacts(BaseModel):
    """What the digest says; also stored beside the text (`workspace_digests.facts`)."""

    workspace_id: str
    day: date
    new_leads: int = 0
    inbound_messages: int = 0
    outbound_messages: int = 0
    status_counts: dict[str, int] = Field(default_factory=dict)
    moves_total: int = 0
    moves: list[Move] = Field(default_factory=list, description="the newest few")
    hot_total: int = 0
    hot: list[LeadRef] = Field(default_factory=list, description="highest score first")
    waiting_total: int = 0
    waiting: list[Waiting] = Field(default_factory=list, description="longest waiting first")
    #: the team's follow-ups when the digest is made (issue #29): open tasks overdue, and
    #: due by the end of that day (overdue ones too)
    tasks_overdue_total: int = 0
    tasks_overdue: list[TaskRef] = Field(default_factory=list, description="longest overdue first")
    tasks_due_today: int = 0
    #: the team report's figures of the day (`domain.reports`)
    conversions: int = 0
    first_response_answered: int = 0
    first_response_unanswered: int = 0
    first_response_median_s: float | None = None
    first_response_p90_s: float | None = None
    #: per owner (null: unassigned): new leads, conversions, first-response median
    by_owner: list[dict[str, Any]] = Field(default_factory=list)


def _names(items: list[str], total: int) -> str:
    shown = ", ".join(items)
    return shown + (f" dan {total - len(items)} lainnya" if total > len(items) else "")


def _ago(since: datetime, now: datetime) -> str:
    minutes = max(0, int((now - since).total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} menit"
    if minutes < 48 * 60:
        return f"{minutes // 60} jam"
    return f"{minutes // (24 * 60)} hari"


def digest_text(f: DigestFacts, now: datetime) -> str:
    """The digest as the manager reads it, one line per topic."""
    lines = [f"Ringkasan tim {f.day.isoformat()}: {f.new_leads} lead baru, "
             f"{f.inbound_messages} pesan masuk, {f.outbound_messages} pesan keluar."]
    if f.moves_total:
        moves = [f"{m.name} ({STATUS_ID.get(m.from_status or '', m.from_status or '-')} → "
                 f"{STATUS_ID.get(m.to_status, m.to_status)}, {m.by})" for m in f.moves]
        lines.append(f"{f.moves_total} perubahan status: {_names(moves, f.moves_total)}.")
    else:
        lines.append("Tidak ada perubahan status.")
    if f.hot_total:
        lines.append(f"{f.hot_total} lead panas (hot): "
                     f"{_names([h.name for h in f.hot], f.hot_total)}.")
    if f.waiting_total:
        waits = [f"{w.name} ({_ago(w.since, now)})" for w in f.waiting]
        lines.append(f"{f.waiting_total} lead menunggu balasan: "
                     f"{_names(waits, f.waiting_total)}.")
    else:
        lines.append("Semua lead sudah dibalas.")
    if f.first_response_answered or f.first_response_unanswered:
        line = (f"Waktu balas pertama: median {fmt_seconds(f.first_response_median_s)}, "
                f"p90 {fmt_seconds(f.first_response_p90_s)} ({f.first_response_answered} lead")
        if f.first_response_unanswered:
            line += f"; {f.first_response_unanswered} belum dibalas"
        lines.append(line + ").")
    if f.conversions:
        lines.append(f"{f.conversions} lead menjadi pelanggan (converted).")
    if f.by_owner:
        parts = [f"{o['owner'] or 'belum ditugaskan'}: {o['new_leads']} baru, "
                 f"{o['conversions']} converted, balas "
                 f"{fmt_seconds(o['first_response']['median_seconds'])}" for o in f.by_owner]
        lines.append("Per orang: " + "; ".join(parts) + ".")
    if f.tasks_overdue_total:
        items = [f"{t.name}: {t.text}" + (f" ({t.owner})" if t.owner else "")
                 for t in f.tasks_overdue]
        lines.append(f"{f.tasks_overdue_total} tugas terlambat: "
                     f"{_names(items, f.tasks_overdue_total)}.")
    if f.tasks_due_today > f.tasks_overdue_total:
        lines.append(f"{f.tasks_due_today - f.tasks_overdue_total} tugas jatuh tempo hari ini.")
    counts = ", ".join(f"{STATUS_ID.get(s, s)} {n}" for s, n in f.status_counts.items() if n)
    lines.append(f"Total per status: {counts or 'belum ada lead'}.")
    return "\n".join(lines)


