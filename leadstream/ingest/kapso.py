"""Kapso v2 webhooks -> InboundEvents.

A body is one event or a batch (`{"batch": true, "data": [...]}`); the event name comes in
the `X-Webhook-Event` header. Items are Meta-style messages with a `kapso` extension and a
`conversation` object; nothing about the contact is guaranteed present, so every lookup is
defensive.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from leadstream.domain.model import InboundEvent, MessageInfo
from leadstream.ingest.common import (
    ParseError,
    Workspace,
    content_id,
    identity_change,
    looks_like_wa_id,
    parse_ts,
    render_text,
    resolve_identity,
    text_or_none,
)

MESSAGE_EVENTS: dict[str, tuple[Literal["message", "status"], str, str]] = {
    "whatsapp.message.received": ("message", "inbound", "received"),
    "whatsapp.message.sent": ("message", "outbound", "sent"),
    "whatsapp.message.delivered": ("status", "outbound", "delivered"),
    "whatsapp.message.read": ("status", "outbound", "read"),
    "whatsapp.message.failed": ("status", "outbound", "failed"),
}
CONVERSATION_EVENTS = {
    "whatsapp.conversation.created": "active",
    "whatsapp.conversation.ended": "ended",
    "whatsapp.conversation.inactive": "inactive",
}
IDENTITY_EVENTS = {"whatsapp.contact.identity_changed"}
KNOWN_EVENTS = set(MESSAGE_EVENTS) | set(CONVERSATION_EVENTS) | IDENTITY_EVENTS


def _pnid(obj: Any) -> str | None:
    """An object's own phone_number_id (top level, or in its conversation), if it names one."""
    if not isinstance(obj, dict):
        return None
    conv = obj.get("conversation")
    for v in (obj.get("phone_number_id"), conv.get("phone_number_id")
              if isinstance(conv, dict) else None):
        if isinstance(v, str | int) and not isinstance(v, bool) and str(v):
            return str(v)
    return None


def route_items(body: Any) -> tuple[list[tuple[str | None, Any]], set[str]]:
    """Each item of a delivery with the phone_number_id it is filed under (its own, else the
    body's: contract §2, every batch item under the workspace of its own number), and every
    number the body names (an empty batch names its top-level one).

    Never raises, whatever the JSON: a body that is not a proper batch is one item, which
    the parser then refuses with the reason.
    """
    top = _pnid(body)
    if isinstance(body, dict) and body.get("batch") is True and isinstance(body.get("data"),
                                                                           list):
        items = [(_pnid(item) or top, item) for item in body["data"]]
    else:
        items = [(top, body)]
    return items, {p for p, _ in items if p} | ({top} if top else set())


def parse_routed_item(ws: Workspace, event_type: str | None, item: Any, received_at: datetime,
              idempotency_key: str | None = None, index: int = 0) -> InboundEvent:
    """One routed item (see `route_items`) -> its event; ParseError says why not."""
    if not isinstance(item, dict):
        raise ParseError("every event must be a JSON object")
    if item.get("batch") is True:
        raise ParseError("batch body without a `data` list")
    et = event_type or item.get("event") or item.get("type")
    if not et or not isinstance(et, str):
        raise ParseError("no event type: X-Webhook-Event header missing")
    return parse_item(ws, et, item, received_at, idempotency_key, index)


def _error_text(msg: dict[str, Any]) -> str | None:
    kapso = msg.get("kapso") or {}
    errs = msg.get("errors") or kapso.get("errors") or kapso.get("error")
    if not errs:
        return None
    if isinstance(errs, list) and errs and isinstance(errs[0], dict):
        e = errs[0]
        return " ".join(str(x) for x in (e.get("code"), e.get("title"), e.get("message")) if x)
    return str(errs)


def _digits_as_text(phone: Any) -> str | None:
    """A number sent as a JSON number is read as its digits; any other non-text is refused."""
    if phone is None or isinstance(phone, str):
        return phone
    if isinstance(phone, int) and not isinstance(phone, bool):
        return str(phone)
    raise ParseError(f"contact phone is not text: {type(phone).__name__}")


def parse_item(
    ws: Workspace, event_type: str, item: dict[str, Any], received_at: datetime,
    idempotency_key: str | None = None, index: int = 0,
) -> InboundEvent:
    conv = item.get("conversation") or {}
    msg = item.get("message") or {}
    kapso = msg.get("kapso") or {}
    conversation_id = conv.get("id") or kapso.get("whatsapp_conversation_id")
    bsuid = conv.get("business_scoped_user_id") or item.get("business_scoped_user_id")
    contact_name = (
        kapso.get("contact_name") or conv.get("contact_name")
        or (conv.get("kapso") or {}).get("contact_name")
    )
    if event_type in MESSAGE_EVENTS:
        kind: Literal["message", "status"]
        kind, default_dir, status = MESSAGE_EVENTS[event_type]
        wamid = msg.get("id")
        if not wamid:
            raise ParseError(f"{event_type} without message.id")
        direction: Literal["inbound", "outbound"]
        raw_direction = kapso.get("direction") or default_dir
        if raw_direction == "inbound":
            direction = "inbound"
        elif raw_direction == "outbound":
            direction = "outbound"
        else:
            raise ParseError(f"unknown direction {raw_direction!r}")
        phone = _digits_as_text(conv.get("phone_number") or (
            msg.get("from") if direction == "inbound" else msg.get("to")
        ))
        is_wa_id = looks_like_wa_id(phone)
        key, identity, e164, wa_id = resolve_identity(ws, phone, bsuid, is_wa_id=is_wa_id)
        ts = parse_ts(msg.get("timestamp"), received_at)
        info = MessageInfo(
            wamid=str(wamid),
            direction=direction,
            type=str(msg.get("type") or "text"),
            text=render_text(msg),
            origin=kapso.get("origin"),
            status=status if kind == "status" else (kapso.get("status") or status),
            error=_error_text(msg) if status == "failed" else None,
            timestamp=ts,
        )
        return InboundEvent(
            event_id=f"kapso:{event_type}:{wamid}",
            kind=kind, event_type=event_type, workspace_id=ws.workspace_id, lead_key=key,
            identity=identity, phone_e164=e164, wa_id=wa_id, bsuid=bsuid,
            contact_name=contact_name if direction == "inbound" or kind == "message" else None,
            conversation_id=conversation_id, occurred_at=ts, received_at=received_at,
            message=info,
        )
    if event_type in IDENTITY_EVENTS:
        return _identity_changed(ws, event_type, item, conv, received_at, idempotency_key,
                                 index)
    if event_type in CONVERSATION_EVENTS:
        phone = _digits_as_text(conv.get("phone_number") or item.get("phone_number")
                                or item.get("wa_id"))
        is_wa_id = looks_like_wa_id(phone)
        key, identity, e164, wa_id = resolve_identity(ws, phone, bsuid, is_wa_id=is_wa_id)
        ts = parse_ts(
            item.get("occurred_at") or conv.get("updated_at") or conv.get("created_at"),
            received_at,
        )
        natural = conversation_id if event_type in CONVERSATION_EVENTS else None
        if natural:
            event_id = f"kapso:{event_type}:{natural}"
        elif idempotency_key:
            event_id = f"kapso:idem:{idempotency_key}:{index}"
        else:
            event_id = f"kapso:{event_type}:{content_id(item)}"
        return InboundEvent(
            event_id=event_id,
            kind="conversation" if event_type in CONVERSATION_EVENTS else "identity",
            event_type=event_type, workspace_id=ws.workspace_id, lead_key=key,
            identity=identity, phone_e164=e164, wa_id=wa_id, bsuid=bsuid,
            contact_name=contact_name, conversation_id=conversation_id,
            conversation_state=CONVERSATION_EVENTS.get(event_type),
            occurred_at=ts, received_at=received_at,
        )
    raise ParseError(f"unknown event type {event_type!r}")


def _identity_changed(ws: Workspace, event_type: str, item: dict[str, Any],
                      conv: dict[str, Any], received_at: datetime,
                      idempotency_key: str | None, index: int) -> InboundEvent:
    """`whatsapp.contact.identity_changed`: the ids are in a `contact` object (`wa_id`,
    `business_scoped_user_id`, `parent_business_scoped_user_id`, `username`), the previous
    values beside them (`previous_*` keys, or a `previous` object); older shapes put the
    contact's ids on the item or the conversation."""
    raw_contact = item.get("contact")
    contact: dict[str, Any] = raw_contact if isinstance(raw_contact, dict) else {}
    prev = contact.get("previous") or item.get("previous") or item.get("previous_contact")
    if not isinstance(prev, dict):
        prev = {k[len("previous_"):]: v for k, v in {**item, **contact}.items()
                if k.startswith("previous_")}
    phone = (contact.get("wa_id") or contact.get("phone_number") or conv.get("phone_number")
             or item.get("phone_number") or item.get("wa_id"))
    bsuid = (contact.get("business_scoped_user_id") or conv.get("business_scoped_user_id")
             or item.get("business_scoped_user_id"))
    (key, identity, e164, wa_id), new_phone, new_bsuid = identity_change(
        ws, _digits_as_text(prev.get("wa_id") or prev.get("phone_number")),
        prev.get("business_scoped_user_id"), _digits_as_text(phone), bsuid)
    ts = parse_ts(item.get("occurred_at") or contact.get("updated_at"), received_at)
    event_id = (f"kapso:idem:{idempotency_key}:{index}" if idempotency_key
                else f"kapso:{event_type}:{content_id(item)}")
    parent = (contact.get("parent_business_scoped_user_id")
              or item.get("parent_business_scoped_user_id"))
    username = contact.get("username") or item.get("username")
    return InboundEvent(
        event_id=event_id, kind="identity", event_type=event_type,
        workspace_id=ws.workspace_id, lead_key=key, identity=identity, phone_e164=e164,
        wa_id=wa_id, bsuid=text_or_none(prev.get("business_scoped_user_id") if new_bsuid
                                         else bsuid),
        parent_bsuid=str(parent) if parent else None,
        username=str(username) if username else None,
        new_phone_e164=new_phone, new_bsuid=new_bsuid,
        conversation_id=conv.get("id"), occurred_at=ts, received_at=received_at,
    )


def parse_kapso(
    ws: Workspace, event_type: str | None, body: Any, received_at: datetime,
    idempotency_key: str | None = None,
) -> list[InboundEvent]:
    """All events of one Kapso delivery of one workspace; raises ParseError for the whole
    delivery (the webhook routes and parses item by item instead: `route_items`)."""
    return [parse_routed_item(ws, event_type, item, received_at, idempotency_key, i)
            for i, (_, item) in enumerate(route_items(body)[0])]
