"""Raw Meta WhatsApp Cloud API webhooks -> InboundEvents.

`entry[].changes[].value` holds `metadata.phone_number_id`, `contacts[]`, `messages[]`
(always inbound) and `statuses[]` (about our outbound messages).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from leadstream.domain.limits import MAX_ITEMS
from leadstream.domain.model import InboundEvent, MessageInfo
from leadstream.ingest.common import (
    ParseError,
    Workspace,
    identity_change,
    parse_ts,
    render_text,
    resolve_identity,
)


def route_values(body: Any) -> tuple[list[tuple[str | None, Any]], set[str]]:
    """Each `entry[].changes[].value` with the phone_number_id of its own metadata (contract
    §2: every entry under the workspace of its own number), and every number named. Never
    raises."""
    if not isinstance(body, dict) or body.get("object") != "whatsapp_business_account":
        return [(None, body)], set()
    out: list[tuple[str | None, Any]] = []
    entries = body.get("entry")
    for entry in entries if isinstance(entries, list) else []:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        for change in changes if isinstance(changes, list) else []:
            value = change.get("value") if isinstance(change, dict) else None
            meta = value.get("metadata") if isinstance(value, dict) else None
            pnid = meta.get("phone_number_id") if isinstance(meta, dict) else None
            ok = isinstance(pnid, str | int) and not isinstance(pnid, bool) and str(pnid)
            out.append((str(pnid) if ok else None, value))
    return out, {p for p, _ in out if p}


def parse_routed_value(ws: Workspace, value: Any, received_at: datetime) -> list[InboundEvent]:
    """One routed value (see `route_values`) -> its events; ParseError says why not."""
    if not isinstance(value, dict):
        raise ParseError("not a whatsapp_business_account change value")
    return parse_value(ws, value, received_at)


def parse_value(ws: Workspace, value: dict[str, Any], received_at: datetime) -> list[InboundEvent]:
    # bounded per value, as a Kapso batch is per body (issue #24): one change value cannot
    # hold thousands of messages and statuses (the body limit alone allowed ~30,000)
    n = sum(len(x) for x in (value.get("messages"), value.get("statuses"), value.get("contacts"))
            if isinstance(x, list))
    if n > MAX_ITEMS:
        raise ParseError(f"more than {MAX_ITEMS} messages, statuses and contacts in one value")
    contacts = {str(c.get("wa_id")): c for c in value.get("contacts") or [] if isinstance(c, dict)}
    out: list[InboundEvent] = []
    for m in value.get("messages") or []:
        if not isinstance(m, dict) or not m.get("id"):
            raise ParseError("message without id")
        if m.get("type") == "system":
            out.append(_system(ws, m, received_at))
            continue
        sender = m.get("from")
        contact = contacts.get(str(sender)) or (next(iter(contacts.values())) if contacts else {})
        bsuid = m.get("from_user_id") or contact.get("user_id")
        key, identity, e164, wa_id = resolve_identity(ws, sender, bsuid, is_wa_id=True)
        ts = parse_ts(m.get("timestamp"), received_at)
        out.append(InboundEvent(
            event_id=f"meta:message:{m['id']}", kind="message",
            event_type="whatsapp.message.received", workspace_id=ws.workspace_id,
            lead_key=key, identity=identity, phone_e164=e164, wa_id=wa_id, bsuid=bsuid,
            contact_name=(contact.get("profile") or {}).get("name"),
            occurred_at=ts, received_at=received_at,
            message=MessageInfo(wamid=str(m["id"]), direction="inbound",
                                type=str(m.get("type") or "text"), text=render_text(m),
                                status="received", timestamp=ts),
        ))
    for s in value.get("statuses") or []:
        if not isinstance(s, dict) or not s.get("id") or not s.get("status"):
            raise ParseError("status without id or status")
        key, identity, e164, wa_id = resolve_identity(
            ws, s.get("recipient_id"), s.get("recipient_user_id"), is_wa_id=True
        )
        ts = parse_ts(s.get("timestamp"), received_at)
        errs = s.get("errors") or []
        err = None
        if errs and isinstance(errs[0], dict):
            err = " ".join(str(x) for x in (errs[0].get("code"), errs[0].get("title")) if x)
        conv = (s.get("conversation") or {}).get("id")
        out.append(InboundEvent(
            event_id=f"meta:status:{s['id']}:{s['status']}", kind="status",
            event_type=f"whatsapp.message.{s['status']}", workspace_id=ws.workspace_id,
            lead_key=key, identity=identity, phone_e164=e164, wa_id=wa_id,
            conversation_id=conv, occurred_at=ts, received_at=received_at,
            message=MessageInfo(wamid=str(s["id"]), direction="outbound", type="unknown",
                                status=str(s["status"]), error=err, timestamp=ts),
        ))
    return out


#: Meta system messages that change who the contact is (the lead follows)
SYSTEM_CHANGES = ("user_changed_number", "user_changed_user_id", "customer_changed_number",
                  "customer_identity_changed")


def _system(ws: Workspace, m: dict[str, Any], received_at: datetime) -> InboundEvent:
    """`type: system`: `user_changed_number` (the new number in `system.wa_id`, formerly
    `new_wa_id`) or `user_changed_user_id` (`system.user_id`, with `previous_user_id`); both
    may carry the new and previous (parent) business-scoped ids. No contacts array."""
    raw = m.get("system")
    sys_: dict[str, Any] = raw if isinstance(raw, dict) else {}
    kind = sys_.get("type")
    if kind not in SYSTEM_CHANGES:
        raise ParseError(f"unknown system message type {kind!r}")
    new_phone = (sys_.get("wa_id") or sys_.get("new_wa_id")) if "number" in str(kind) else None
    old_bsuid = sys_.get("previous_user_id") or m.get("from_user_id")
    (key, identity, e164, wa_id), new_e164, new_bsuid = identity_change(
        ws, m.get("from"), old_bsuid, new_phone, sys_.get("user_id"))
    ts = parse_ts(m.get("timestamp"), received_at)
    parent = sys_.get("parent_user_id")
    return InboundEvent(
        event_id=f"meta:system:{m['id']}", kind="identity",
        event_type=f"whatsapp.system.{kind}", workspace_id=ws.workspace_id, lead_key=key,
        identity=identity, phone_e164=e164, wa_id=wa_id,
        bsuid=str(old_bsuid) if old_bsuid else None,
        parent_bsuid=str(parent) if parent else None, new_phone_e164=new_e164,
        new_bsuid=new_bsuid, occurred_at=ts, received_at=received_at)


def parse_meta(ws: Workspace, body: Any, received_at: datetime) -> list[InboundEvent]:
    """All events of one Meta delivery of one workspace; raises ParseError for the whole
    delivery (the webhook routes and parses change by change instead: `route_values`)."""
    if not isinstance(body, dict) or body.get("object") != "whatsapp_business_account":
        raise ParseError("not a whatsapp_business_account payload")
    return [ev for _, value in route_values(body)[0] for ev in parse_routed_value(ws, value, received_at)]
