"""The domain's inputs for one lead, at minutes from a fixed clock: the tests' vocabulary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from leadstream.domain.model import Command, InboundEvent, MessageInfo, SarahFields, SarahUpdate

KEY = "ws1:+6281312345678"
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def msg_event(wamid: str, minute: float, *, kind: str = "message", direction: str = "inbound",
              status: str | None = None, text: str | None = "halo", name: str | None = None,
              origin: str | None = None, conv: str | None = "c1") -> InboundEvent:
    return InboundEvent(
        event_id=f"{kind}:{wamid}:{status}", kind=kind,  # type: ignore[arg-type]
        event_type="x", workspace_id="ws1", lead_key=KEY, identity="+6281312345678",
        phone_e164="+6281312345678", contact_name=name, conversation_id=conv,
        occurred_at=at(minute), received_at=at(minute),
        message=MessageInfo(wamid=wamid, direction=direction,  # type: ignore[arg-type]
                            text=text, status=status or ("received" if direction == "inbound"
                                                         else "sent"),
                            origin=origin, timestamp=at(minute)),
    )


def sarah(minute: float, phase: str | None = None, **fields: object) -> SarahUpdate:
    score = fields.pop("score", None)
    temp = fields.pop("temperature", None)
    return SarahUpdate(event_id=f"s{minute}", workspace_id="ws1", lead_key=KEY,
                       identity="+6281312345678", phone_e164="+6281312345678",
                       occurred_at=at(minute), chat_phase=phase,
                       extracted=SarahFields(**fields),  # type: ignore[arg-type]
                       lead_score=score, lead_temperature=temp)  # type: ignore[arg-type]


def cmd(minute: float, kind: str, role: str = "human", **kw: object) -> Command:
    return Command(event_id=f"c{minute}{kind}{role}", workspace_id="ws1", lead_key=KEY,
                   occurred_at=at(minute), kind=kind, actor_role=role,  # type: ignore[arg-type]
                   author=str(kw.pop("author", role)), **kw)  # type: ignore[arg-type]
