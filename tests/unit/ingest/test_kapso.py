"""Kapso v2 and Meta payloads to InboundEvents."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from leadstream.ingest.common import ParseError, Workspace, render_text
from leadstream.ingest.kapso import parse_kapso, route_items
from leadstream.ingest.meta import parse_meta, route_values
from leadstream.simulate import kapso_message

WS = Workspace("ws1")
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def test_received_message() -> None:
    body = kapso_message("p1", wa_id="6281312345678", wamid="wamid.1", text="Halo", ts=1_760_000_000,
                         name="Budi")
    (ev,) = parse_kapso(WS, "whatsapp.message.received", body, NOW)
    assert ev.lead_key == "ws1:+6281312345678" and ev.kind == "message"
    assert ev.message is not None and ev.message.direction == "inbound"
    assert ev.message.text == "Halo" and ev.contact_name == "Budi"
    assert ev.occurred_at == datetime.fromtimestamp(1_760_000_000, UTC)
    assert ev.event_id == "kapso:whatsapp.message.received:wamid.1"
    assert ev.wa_id == "6281312345678"


def test_batch_and_routing_key() -> None:
    items = [kapso_message("p1", wa_id=f"62812000000{i}", wamid=f"w{i}", text="x",
                           ts=1_760_000_000 + i) for i in range(3)]
    body = {"type": "whatsapp.message.received", "batch": True, "data": items}
    assert route_items(body)[1] == {"p1"}
    evs = parse_kapso(WS, "whatsapp.message.received", body, NOW)
    assert [e.message.wamid for e in evs if e.message] == ["w0", "w1", "w2"]


def test_outbound_sent_and_statuses() -> None:
    body = kapso_message("p1", wa_id="6281312345678", wamid="w9", text="Promo", ts=1_760_000_005,
                         direction="outbound", origin="business_app")
    (sent,) = parse_kapso(WS, "whatsapp.message.sent", body, NOW)
    assert sent.kind == "message" and sent.message and sent.message.origin == "business_app"
    body["message"]["errors"] = [{"code": 131026, "title": "Message undeliverable"}]
    (failed,) = parse_kapso(WS, "whatsapp.message.failed", body, NOW)
    assert failed.kind == "status" and failed.message and failed.message.status == "failed"
    assert failed.message.error == "131026 Message undeliverable"


def test_bsuid_only_contact_uses_business_scoped_id() -> None:
    body = kapso_message("p1", wa_id="", wamid="w1", text="hi", ts=1_760_000_001)
    body["conversation"].pop("phone_number")
    body["message"].pop("from")
    body["conversation"]["business_scoped_user_id"] = "ID.123456"
    (ev,) = parse_kapso(WS, "whatsapp.message.received", body, NOW)
    assert ev.lead_key == "ws1:ID.123456" and ev.phone_e164 is None and ev.bsuid == "ID.123456"


def test_conversation_events() -> None:
    body = {"conversation": {"id": "conv-1", "phone_number": "+62 813-1234-5678",
                             "phone_number_id": "p1"}, "phone_number_id": "p1"}
    (ev,) = parse_kapso(WS, "whatsapp.conversation.ended", body, NOW)
    assert ev.kind == "conversation" and ev.conversation_state == "ended"
    assert ev.lead_key == "ws1:+6281312345678"


@pytest.mark.parametrize("event,body,reason", [
    ("whatsapp.message.received", {"message": {}, "phone_number_id": "p1"}, "without message.id"),
    ("whatsapp.unknown", {"phone_number_id": "p1"}, "unknown event type"),
    (None, {"phone_number_id": "p1"}, "no event type"),
    ("whatsapp.message.received", {"message": {"id": "w", "from": "12"}, "phone_number_id": "p1"},
     "invalid contact phone"),
    ("whatsapp.message.received", {"message": {"id": "w"}, "phone_number_id": "p1"},
     "neither a phone"),
    ("whatsapp.message.received", {"batch": True, "data": "x"}, "data"),
])
def test_unparseable_items_raise_with_reason(event: str | None, body: dict, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_kapso(WS, event, body, NOW)


@pytest.mark.parametrize("msg,text", [
    ({"type": "text", "text": {"body": "hi"}}, "hi"),
    ({"type": "image", "image": {"caption": "menu"}}, "[image] menu"),
    ({"type": "video", "video": {}}, "[video]"),
    ({"type": "document", "document": {"filename": "price.pdf"}}, "[document] price.pdf"),
    ({"type": "audio", "audio": {}, "kapso": {"transcript": {"text": "halo kak"}}},
     "[audio] halo kak"),
    ({"type": "location", "location": {"latitude": -6.9, "longitude": 107.6, "name": "Toko"}},
     "[location] Toko (-6.9, 107.6)"),
    ({"type": "template", "template": {"name": "promo_nov"}}, "[template] promo_nov"),
    ({"type": "interactive", "interactive": {"button_reply": {"title": "Ya"}}}, "Ya"),
    ({"type": "reaction", "reaction": {"emoji": "👍"}}, "[reaction] 👍"),
    ({"type": "contacts", "contacts": [{"name": {"formatted_name": "Ani"}}]}, "[contacts] Ani"),
    ({"type": "image", "kapso": {"content": "Kapso text"}}, "Kapso text"),
])
def test_every_message_type_has_a_text_rendering(msg: dict, text: str) -> None:
    assert render_text(msg) == text


def test_meta_payload() -> None:
    body = {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {
        "metadata": {"phone_number_id": "p1"},
        "contacts": [{"wa_id": "6281312345678", "profile": {"name": "Budi"}}],
        "messages": [{"from": "6281312345678", "id": "wamid.M1", "timestamp": "1760000000",
                      "type": "text", "text": {"body": "Halo"}}],
        "statuses": [{"id": "wamid.O1", "status": "delivered", "timestamp": "1760000005",
                      "recipient_id": "6281312345678"}],
    }}]}]}
    assert route_values(body)[1] == {"p1"}
    msg, st = parse_meta(WS, body, NOW)
    assert msg.kind == "message" and msg.contact_name == "Budi" and msg.message
    assert msg.message.text == "Halo" and msg.lead_key == "ws1:+6281312345678"
    assert st.kind == "status" and st.message and st.message.status == "delivered"


def test_meta_rejects_other_objects() -> None:
    with pytest.raises(ParseError):
        parse_meta(WS, {"object": "page"}, NOW)
