"""Fault-suite helpers: a workload of Kapso deliveries, the oracle that computes the expected
replica from it with the pure domain rules, and the comparison that counts lost and
duplicated events."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from leadstream.domain.model import LeadState, MessageState
from leadstream.domain.rules import apply_inbound
from leadstream.ingest.common import Workspace
from leadstream.ingest.kapso import parse_kapso
from leadstream.simulate import kapso_message
from tests.support.figures import FIGURES
from tests.support.pipeline import PNID, Pipeline

RECEIVED = datetime(2025, 10, 9, tzinfo=UTC)


@dataclass(frozen=True)
class Delivery:
    event: str
    body: dict[str, Any]


def workload(leads: int, per_lead: int, seed: int, first_phone: int = 40_000_000
             ) -> list[Delivery]:
    """`per_lead` messages for each lead (inbound and outbound), in time order."""
    out = []
    for r in range(per_lead):
        for i in range(leads):
            wa = f"62812{first_phone + i:08d}"
            inbound = (r + i) % 3 != 2
            body = kapso_message(PNID, wa_id=wa, wamid=f"wamid.f{seed}.{i}.{r}",
                                 text=f"pesan {r} dari {i}", ts=1_760_000_000 + r * 60 + i,
                                 direction="inbound" if inbound else "outbound",
                                 name=f"Lead {i}" if inbound else None)
            out.append(Delivery("whatsapp.message.received" if inbound
                                else "whatsapp.message.sent", body))
    return out


def redeliveries(deliveries: list[Delivery], rate: float, window: int, rng: random.Random
                 ) -> tuple[list[Delivery], int]:
    """Kapso's retries: `rate` of the deliveries sent twice, and the order shuffled within
    sliding windows so retries and originals overtake each other."""
    out = list(deliveries)
    dups = [d for d in deliveries if rng.random() < rate]
    for d in dups:
        at = min(len(out), out.index(d) + rng.randint(1, window))
        out.insert(at, d)
    for start in range(0, len(out), window):
        chunk = out[start:start + window]
        rng.shuffle(chunk)
        out[start:start + window] = chunk
    return out, len(dups)


def oracle(deliveries: list[Delivery]) -> tuple[dict[str, dict[str, Any]],
                                               dict[str, tuple[Any, str | None]]]:
    """The expected replica from the pure rules: per phone the lead fields the sink writes,
    per message id (direction, text)."""
    ws = Workspace("ws1")
    leads: dict[str, LeadState] = {}
    messages: dict[tuple[str, str], MessageState] = {}
    for d in deliveries:
        for ev in parse_kapso(ws, d.event, d.body, RECEIVED):
            mkey = (ev.lead_key, ev.message.wamid) if ev.message else None
            applied = apply_inbound(leads.get(ev.lead_key),
                                    messages.get(mkey) if mkey else None, ev)
            leads[ev.lead_key] = applied.lead
            if mkey and applied.message is not None:
                messages[mkey] = applied.message
    want_leads = {lead.phone_e164 or "": _lead_view(lead.model_dump()) for lead in leads.values()}
    want_msgs = {m.message_id: (m.direction, m.text) for m in messages.values()}
    return want_leads, want_msgs


#: what a survivor is compared on: its count is the sum of its own and its duplicates', and its
#: timeline's ends are the latest of them (its name is its own, or a duplicate's when it had
#: none yet at the merge: not asserted)
MERGED_VIEW = ("message_count", "last_message_at", "last_inbound_at", "last_outbound_at")


def merged_oracle(deliveries: list[Delivery], merges: dict[str, str]
                  ) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[str, str | None]]]:
    """`oracle` after merging each duplicate (phone) into its survivor (phone): the leads the
    team sees (survivors, untouched leads) and every message, whatever lead holds its row."""
    want, msgs = oracle(deliveries)
    out = {k: dict(v) for k, v in want.items()}
    for dup, survivor in merges.items():
        d, s = out.pop(dup), out[survivor]
        s["message_count"] += d["message_count"]
        for f in MERGED_VIEW[1:]:
            s[f] = max((x for x in (s[f], d[f]) if x is not None), default=None)
        s.pop("name", None)
    return out, msgs


def _lead_view(row: Any) -> dict[str, Any]:
    return {k: row[k] for k in ("message_count", "name", "last_message_at", "last_inbound_at",
                                "last_outbound_at")}


@dataclass
class Comparison:
    lost: int
    duplicated: int
    differing_leads: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not (self.lost or self.duplicated or self.differing_leads)


async def compare(p: Pipeline, want_leads: dict[str, dict[str, Any]],
                  want_msgs: dict[str, tuple[str, str | None]]) -> Comparison:
    """The replica against the oracle: the leads the team sees (merged ones are not), each
    on the fields the oracle gives, and every message row."""
    rows = await p.fetch("SELECT phone_e164, message_count, name, last_message_at, "
                         "last_inbound_at, last_outbound_at FROM leads WHERE merged_into IS NULL")
    got_leads = {r["phone_e164"]: {k: v for k, v in _lead_view(r).items()
                                   if k in want_leads.get(r["phone_e164"], MERGED_VIEW)}
                 for r in rows}
    msgs = await p.fetch("SELECT message_id, direction, text FROM messages")
    got_msgs = {r["message_id"]: (r["direction"], r["text"]) for r in msgs}
    missing = sorted(k for k, v in want_msgs.items() if got_msgs.get(k) != v)
    lost = len(missing)
    # a message row too many, or counted twice in its lead
    duplicated = len(set(got_msgs) - set(want_msgs)) + sum(
        max(0, got_leads[k]["message_count"] - v["message_count"])
        for k, v in want_leads.items() if k in got_leads)
    differing = {k: (v, got_leads.get(k)) for k, v in want_leads.items() if got_leads.get(k) != v}
    differing.update({k: (None, v) for k, v in got_leads.items() if k not in want_leads})
    return Comparison(lost, duplicated, differing, missing[:20])


def report(scenario: str, *, sent: int, acked: int, faults: str, result: Comparison,
           recover_s: float) -> None:
    FIGURES.append({"scenario": scenario, "sent": sent, "acked": acked, "faults": faults,
                    "lost": result.lost, "duplicated": result.duplicated,
                    "recover_s": round(recover_s, 1)})


async def converge(p: Pipeline, want_leads: dict[str, dict[str, Any]],
                   want_msgs: dict[str, tuple[str, str | None]], timeout: float
                   ) -> Comparison:
    """Wait until the replica equals the oracle (or time out); the last comparison."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = await compare(p, want_leads, want_msgs)
        except Exception as exc:  # the test's own pool sees a Postgres outage too
            if time.monotonic() > deadline:
                raise AssertionError(f"replica unreadable: {exc!r}") from exc
            await asyncio.sleep(0.2)
            continue
        if result.equal or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.1)


async def send_all(p: Pipeline, deliveries: list[Delivery], rate: float | None = None
                   ) -> list[Delivery]:
    """Open-loop at `rate` per second (or as fast as answered); the acknowledged ones."""
    acked = []
    start = time.monotonic()
    for n, d in enumerate(deliveries):
        if rate:
            await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
        status = await p.kapso(d.event, d.body)
        assert status == 200, status
        acked.append(d)
    return acked
