"""What both webhook flavours share: the workspace seen by the parser, errors, text rendering."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from leadstream.domain.identity import identity_of, lead_key
from leadstream.domain.limits import timestamp_problem
from leadstream.domain.phone import InvalidPhone, from_wa_id, normalize_phone


class ParseError(ValueError):
    """The payload is signed correctly but cannot become events; goes to the dead-letter topic."""


@dataclass(frozen=True)
class Workspace:
    workspace_id: str
    region: str = "ID"


def parse_ts(value: Any, default: datetime) -> datetime:
    """Unix seconds (str/int, Meta style) or ISO 8601 -> aware UTC datetime, within the
    accepted window around `default` (the arrival time; `domain.limits`)."""
    if value is None or value == "":
        return default
    shown = repr(value)[:40]
    try:
        if isinstance(value, bool):
            raise ValueError("a boolean")
        if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
            dt = datetime.fromtimestamp(float(value), tz=UTC)
        elif isinstance(value, str) and len(value) <= 64:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
            dt = dt if dt.tzinfo else dt.replace(tzinfo=UTC)
        else:
            raise ValueError("not a time")
    except (ValueError, OverflowError, OSError) as exc:
        raise ParseError(f"bad timestamp {shown}") from exc
    if problem := timestamp_problem(dt, default):
        raise ParseError(problem)
    return dt


def content_id(*parts: Any) -> str:
    """A stable id from content, for events with no natural id."""
    h = hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return h[:32]


def render_text(msg: dict[str, Any]) -> str | None:
    """A text rendering of any WhatsApp message type (Kapso's `content` wins when present)."""
    kapso = msg.get("kapso") or {}
    if kapso.get("content"):
        return str(kapso["content"])
    mtype = msg.get("type") or "text"
    body = msg.get(mtype) if isinstance(msg.get(mtype), dict | list) else None
    if mtype == "text":
        return (msg.get("text") or {}).get("body")
    if mtype in ("image", "video", "document", "sticker"):
        caption = (body or {}).get("caption") or (body or {}).get("filename")
        return f"[{mtype}] {caption}" if caption else f"[{mtype}]"
    if mtype in ("audio", "voice"):
        transcript = kapso.get("transcript")
        if isinstance(transcript, dict):
            transcript = transcript.get("text")
        return f"[audio] {transcript}" if transcript else "[audio]"
    if mtype == "location":
        loc = body or {}
        label = " ".join(str(x) for x in (loc.get("name"), loc.get("address")) if x)
        return f"[location] {label} ({loc.get('latitude')}, {loc.get('longitude')})".replace(
            "  ", " "
        )
    if mtype == "template":
        return f"[template] {(body or {}).get('name', '')}".strip()
    if mtype == "interactive":
        it = body or {}
        for k in ("button_reply", "list_reply", "nfm_reply"):
            if isinstance(it.get(k), dict):
                return str(it[k].get("title") or it[k].get("body") or it[k].get("id"))
        return "[interactive]"
    if mtype == "button":
        return str((body or {}).get("text") or "[button]")
    if mtype == "reaction":
        return f"[reaction] {(body or {}).get('emoji', '')}".strip()
    if mtype == "contacts":
        names = [((c or {}).get("name") or {}).get("formatted_name") for c in (body or [])]
        return "[contacts] " + ", ".join(n for n in names if n)
    return f"[{mtype}]"


def contact_phone(ws: Workspace, phone: str | None, *, is_wa_id: bool) -> str | None:
    """E.164 of a contact's number as an event gives it, or None; ParseError if invalid."""
    if not phone:
        return None
    try:
        return from_wa_id(phone) if is_wa_id else normalize_phone(phone, ws.region)
    except InvalidPhone as exc:
        raise ParseError(f"invalid contact phone: {exc}") from exc


def text_or_none(v: Any) -> str | None:
    """A payload's id as text: a non-empty string or number, else None."""
    return str(v) if isinstance(v, str | int) and not isinstance(v, bool) and str(v) else None


def looks_like_wa_id(phone: str | None) -> bool:
    """Kapso gives a contact's number as WhatsApp digits (international), unless a person
    typed it: then it starts with `+` or a national `0`."""
    return not str(phone or "").startswith(("+", "0"))


def identity_change(ws: Workspace, old_phone: Any, old_bsuid: Any, new_phone: Any,
                    new_bsuid: Any) -> tuple[tuple[str, str, str | None, str | None],
                                             str | None, str | None]:
    """An identity change (Meta's `user_changed_number` / `user_changed_user_id`, Kapso's
    `identity_changed`): the lead is the one of the old identity (`resolve_identity`); the
    new number and id are what it follows (None where unchanged)."""
    old_p, old_b, new_p, new_b = (text_or_none(x)
                                  for x in (old_phone, old_bsuid, new_phone, new_bsuid))
    if not (old_p or old_b):  # no previous values: the event names the contact as it is
        old_p, old_b, new_p, new_b = new_p, new_b, None, None
    who = resolve_identity(ws, old_p, old_b, is_wa_id=looks_like_wa_id(old_p))
    new_e164 = contact_phone(ws, new_p, is_wa_id=looks_like_wa_id(new_p))
    return (who, new_e164 if new_e164 and new_e164 != who[2] else None,
            new_b if new_b and new_b != old_b else None)


def resolve_identity(
    ws: Workspace, phone: str | None, bsuid: str | None, *, is_wa_id: bool
) -> tuple[str, str, str | None, str | None]:
    """(lead_key, identity, phone_e164, wa_id) from what an event says about the contact
    (`domain.identity.identity_of`: a phone wins, else the business-scoped id)."""
    e164 = contact_phone(ws, phone, is_wa_id=is_wa_id)
    identity = identity_of(e164, bsuid)
    if identity is None:
        raise ParseError("event names no contact: neither a phone number nor a business-scoped id")
    return (lead_key(ws.workspace_id, identity), identity, e164,
            e164.lstrip("+") if e164 else None)
