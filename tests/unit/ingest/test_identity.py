"""Identity changes as Kapso and Meta send them (issue #18): the lead is the old identity's;
the new number and business-scoped id are what it follows; the full identity is kept."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from leadstream.ingest.common import ParseError, Workspace
from leadstream.ingest.kapso import parse_kapso
from leadstream.ingest.meta import parse_meta

WS = Workspace("ws1")
NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
EVENT = "whatsapp.contact.identity_changed"


def _meta(message: dict[str, Any]) -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{"id": "waba", "changes": [{
        "field": "messages", "value": {"messaging_product": "whatsapp",
                                       "metadata": {"phone_number_id": "pnid-1"},
                                       "messages": [message]}}]}]}


def test_kapso_identity_changed_with_a_contact_object_and_previous_values() -> None:
    (ev,) = parse_kapso(WS, EVENT, {"phone_number_id": "pnid-1", "contact": {
        "wa_id": "6281399990002", "business_scoped_user_id": "ID.new",
        "parent_business_scoped_user_id": "ID.parent", "username": "@budi",
        "previous_wa_id": "6281399990001", "previous_business_scoped_user_id": "ID.old"}}, NOW)
    assert ev.kind == "identity" and ev.lead_key == "ws1:+6281399990001"
    assert (ev.new_phone_e164, ev.new_bsuid) == ("+6281399990002", "ID.new")
    assert (ev.bsuid, ev.parent_bsuid, ev.username) == ("ID.old", "ID.parent", "@budi")


def test_kapso_identity_changed_with_a_previous_object_bsuid_only() -> None:
    (ev,) = parse_kapso(WS, EVENT, {"contact": {
        "business_scoped_user_id": "ID.new", "username": "budi",
        "previous": {"business_scoped_user_id": "ID.old"}}}, NOW)
    assert ev.lead_key == "ws1:ID.old" and ev.new_bsuid == "ID.new"
    assert ev.new_phone_e164 is None and ev.phone_e164 is None


def test_kapso_identity_changed_without_previous_values_names_the_contact_as_it_is() -> None:
    """Before: dead-lettered as "names no contact". Now: the lead of the number, which
    learns the business-scoped id (and claims it)."""
    (ev,) = parse_kapso(WS, EVENT, {"contact": {
        "wa_id": "6281399990001", "business_scoped_user_id": "ID.x", "username": "budi"}}, NOW)
    assert ev.lead_key == "ws1:+6281399990001" and ev.bsuid == "ID.x"
    assert ev.new_phone_e164 is None and ev.new_bsuid is None and ev.username == "budi"


def test_kapso_identity_changed_naming_nobody_is_still_refused() -> None:
    with pytest.raises(ParseError, match="names no contact"):
        parse_kapso(WS, EVENT, {"contact": {"username": "budi"}}, NOW)


def test_meta_user_changed_number() -> None:
    (ev,) = parse_meta(WS, _meta({
        "from": "6281399990001", "id": "wamid.sys1", "timestamp": "1764403200",
        "type": "system", "system": {
            "body": "User Budi changed from 62 813-9999-0001 to 62 813-9999-0002",
            "wa_id": "6281399990002", "type": "user_changed_number",
            "user_id": "ID.new", "previous_user_id": "ID.old"}}), NOW)
    assert ev.kind == "identity" and ev.lead_key == "ws1:+6281399990001"
    assert ev.event_id == "meta:system:wamid.sys1"
    assert (ev.new_phone_e164, ev.new_bsuid, ev.bsuid) == ("+6281399990002", "ID.new", "ID.old")


def test_meta_user_changed_number_in_the_older_shape() -> None:
    (ev,) = parse_meta(WS, _meta({
        "from": "6281399990001", "id": "wamid.sys2", "timestamp": "1764403200",
        "type": "system", "system": {"body": "...", "new_wa_id": "6281399990002",
                                     "type": "user_changed_number"}}), NOW)
    assert ev.new_phone_e164 == "+6281399990002" and ev.new_bsuid is None


def test_meta_user_changed_user_id_has_no_number() -> None:
    (ev,) = parse_meta(WS, _meta({
        "id": "wamid.sys3", "timestamp": "1764403200", "type": "system",
        "system": {"body": "...", "type": "user_changed_user_id", "user_id": "ID.new",
                   "parent_user_id": "ID.p", "previous_user_id": "ID.old"}}), NOW)
    assert ev.lead_key == "ws1:ID.old" and ev.new_bsuid == "ID.new"
    assert ev.parent_bsuid == "ID.p" and ev.new_phone_e164 is None


def test_meta_unknown_system_message_is_refused_with_the_reason() -> None:
    with pytest.raises(ParseError, match="unknown system message type"):
        parse_meta(WS, _meta({"from": "6281399990001", "id": "wamid.sys4",
                              "timestamp": "1764403200", "type": "system",
                              "system": {"type": "something_else"}}), NOW)
