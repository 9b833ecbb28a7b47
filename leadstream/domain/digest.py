"""The manager's daily digest of a workspace: status moves, hot leads, leads waiting for a
reply, and counts, as facts (gathered from the replica by `summarize.digest`) turned into a
short Indonesian text here, with no I/O."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from leadstream.domain.daily import STATUS_ID


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
    counts = ", ".join(f"{STATUS_ID.get(s, s)} {n}" for s, n in f.status_counts.items() if n)
    lines.append(f"Total per status: {counts or 'belum ada lead'}.")
    return "\n".join(lines)


