"""Kapso's list-messages API (`GET /meta/whatsapp/v24.0/{phone_number_id}/messages`) as
webhook items, so what the reconciler reads goes through the very parser, keying and
producing a webhook delivery does (`ingest.kapso.parse_routed_item`).

The API answers Meta-style message objects with the `kapso(...)` fields, the shape a Kapso
v2 webhook carries under `message`; the webhook's `conversation` object is rebuilt from the
`kapso` fields. A message's current status comes as a status event after it, which the
rules apply only forwards (a message already read stays read).
"""

from __future__ import annotations

from typing import Any

from leadstream.domain.rules import STATUS_RANK

#: the `kapso(...)` fields the reconciler asks for
FIELDS = ("kapso(direction,status,contact_name,phone_number,whatsapp_conversation_id,origin,"
          "content,has_media)")
#: statuses after "sent" that an outbound message reaches, and their webhook events
STATUS_EVENTS = {"delivered": "whatsapp.message.delivered", "read": "whatsapp.message.read",
                 "failed": "whatsapp.message.failed"}


def _digits(phone: Any) -> str | None:
    """The customer's number as a webhook carries it (a wa_id: digits, no `+`)."""
    if phone is None:
        return None
    text = str(phone).strip()
    return text[1:] if text.startswith("+") else text


def webhook_items(message: Any, phone_number_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(event type, webhook item) for one API message: the message itself (received or
    sent) and, for an outbound one past "sent", its status. [] for what is not a message
    object (the parser says why for anything else it cannot read)."""
    if not isinstance(message, dict):
        return []
    raw = message.get("kapso")
    kapso: dict[str, Any] = raw if isinstance(raw, dict) else {}
    direction = kapso.get("direction") or ("inbound" if message.get("from") else "outbound")
    customer = _digits(kapso.get("phone_number") or (
        message.get("from") if direction == "inbound" else message.get("to")))
    conversation = {"id": kapso.get("whatsapp_conversation_id"), "phone_number": customer,
                    "phone_number_id": phone_number_id}
    item = {"message": message, "conversation": conversation,
            "phone_number_id": phone_number_id}
    if direction == "inbound":
        return [("whatsapp.message.received", item)]
    events = [("whatsapp.message.sent", item)]
    status = kapso.get("status")
    if status in STATUS_EVENTS:
        events.append((STATUS_EVENTS[status], item))
    return events


def behind(replica_status: str | None, api_status: str | None) -> bool:
    """Whether Kapso knows a later status of a message than the replica shows (the rules'
    order of statuses)."""
    if api_status not in STATUS_RANK:
        return False
    return STATUS_RANK[api_status] > STATUS_RANK.get(replica_status or "", -1)
