"""An API message goes through the webhook's parser as the webhook delivery of the same
message would: the same lead key, event id, text, direction and status."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from leadstream.ingest.common import Workspace
from leadstream.ingest.kapso import parse_routed_item
from leadstream.ingest.kapso_api import behind, webhook_items
from leadstream.simulate import kapso_message
from leadstream.simulate.kapso_api import api_message

WS = Workspace("ws1", "ID")
NOW = datetime(2026, 12, 1, tzinfo=UTC)
PNID = "pnid-1"


def _parse(event: str, item: dict) -> object:
    return parse_routed_item(WS, event, item, NOW)


@pytest.mark.parametrize("direction", ["inbound", "outbound"])
def test_the_same_event_as_the_webhook_delivery(direction: str) -> None:
    api = api_message(wa_id="6281312345678", wamid="wamid.A", text="halo kak", ts=1_764_000_000,
                      direction=direction, name="Budi",
                      status="delivered" if direction == "inbound" else "sent")
    hook = kapso_message(PNID, wa_id="6281312345678", wamid="wamid.A", text="halo kak",
                         ts=1_764_000_000, direction=direction, name="Budi",
                         status="delivered" if direction == "inbound" else "sent")
    event = "whatsapp.message.received" if direction == "inbound" else "whatsapp.message.sent"
    [(got_event, item)] = webhook_items(api, PNID)
    assert got_event == event
    a, b = _parse(event, item), _parse(event, hook)
    same = ("event_id", "lead_key", "identity", "phone_e164", "wa_id", "kind", "contact_name")
    assert {k: getattr(a, k) for k in same} == {k: getattr(b, k) for k in same}
    assert a.message == b.message  # type: ignore[attr-defined]


@pytest.mark.parametrize(("status", "events"), [
    ("sent", ["whatsapp.message.sent"]),
    ("delivered", ["whatsapp.message.sent", "whatsapp.message.delivered"]),
    ("read", ["whatsapp.message.sent", "whatsapp.message.read"]),
    ("failed", ["whatsapp.message.sent", "whatsapp.message.failed"]),
])
def test_an_outbound_message_brings_its_current_status(status: str, events: list[str]) -> None:
    api = api_message(wa_id="6281312345678", wamid="wamid.B", text="promo", ts=1_764_000_000,
                      direction="outbound", status=status)
    items = webhook_items(api, PNID)
    assert [e for e, _ in items] == events
    parsed = [_parse(e, i) for e, i in items]
    assert parsed[-1].message.status == status  # type: ignore[attr-defined]
    assert len({p.lead_key for p in parsed}) == 1  # type: ignore[attr-defined]


def test_a_plus_number_is_the_same_lead_as_its_wa_id() -> None:
    api = api_message(wa_id="6281312345678", wamid="wamid.C", text="x", ts=1_764_000_000)
    del api["from"]  # only kapso.phone_number ("+62...") names the customer
    [(event, item)] = webhook_items(api, PNID)
    hook = kapso_message(PNID, wa_id="6281312345678", wamid="wamid.C", text="x",
                         ts=1_764_000_000)
    assert _parse(event, item).lead_key == _parse(event, hook).lead_key  # type: ignore[attr-defined]


def test_what_is_not_a_message_object_gives_nothing() -> None:
    assert webhook_items("nope", PNID) == []
    assert webhook_items(None, PNID) == []


@pytest.mark.parametrize(("replica", "api", "want"), [
    ("sent", "delivered", True), ("delivered", "read", True), ("read", "delivered", False),
    ("read", "read", False), (None, "sent", True), ("sent", None, False),
    ("sent", "bogus", False), ("received", "read", True), ("failed", "read", False),
])
def test_behind_follows_the_rules_order(replica: str | None, api: str | None,
                                        want: bool) -> None:
    assert behind(replica, api) is want
