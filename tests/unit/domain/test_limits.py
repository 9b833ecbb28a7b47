"""`limits.JsonDecoder`: the models' own validation without `strip_nul` when the JSON holds no
NUL, the model itself otherwise; the same values, the same refusals."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from pydantic import ValidationError

from leadstream.domain.limits import MAX_ID, JsonDecoder
from leadstream.domain.model import InboundEvent, LeadState, MessageInfo, SarahUpdate
from leadstream.domain.rules import apply_inbound
from leadstream.streams.records import encode

AT = datetime(2026, 11, 1, 9, tzinfo=UTC)


def _event(text: str = "Halo kak", **kw: object) -> InboundEvent:
    return InboundEvent(
        event_id="ws1:e1", kind="message", event_type="whatsapp.message.received",
        workspace_id="ws1", lead_key="ws1:+6281312345678", identity="+6281312345678",
        phone_e164="+6281312345678", contact_name="Budi", occurred_at=AT, received_at=AT,
        message=MessageInfo(wamid="wamid.1", direction="inbound", text=text, timestamp=AT),
        **kw)  # type: ignore[arg-type]


def test_the_fast_validator_is_built_without_strip_nul() -> None:
    for model in (InboundEvent, LeadState, SarahUpdate):
        fast = repr(JsonDecoder(model).fast)
        assert "Prebuilt" not in fast and "strip_nul" not in fast
        assert "max_length_validator" not in fast and "max_length" in fast
        assert model.__dict__["__pydantic_complete__"] is True  # restored


def test_same_values_as_the_model() -> None:
    raw = encode(_event())
    got = JsonDecoder(InboundEvent)(raw)
    want = InboundEvent.model_validate_json(raw)
    assert got == want and type(got) is InboundEvent and type(got.message) is MessageInfo
    assert got.model_fields_set == want.model_fields_set
    lead = apply_inbound(None, None, want).lead
    lead_raw = encode(lead)
    assert JsonDecoder(LeadState).python(lead_raw, orjson.loads(lead_raw)) == lead


def test_a_nul_is_stripped_as_the_model_strips_it() -> None:
    raw = encode(_event()).replace(b"Halo kak", b"Ha\\u0000lo kak")
    assert JsonDecoder(InboundEvent)(raw).message.text == "Halo kak"  # type: ignore[union-attr]


def test_a_value_out_of_bounds_is_refused_with_the_models_error() -> None:
    raw = encode(_event()).replace(b'"wamid.1"', b'"' + b"w" * (MAX_ID + 1) + b'"')
    with pytest.raises(ValidationError) as fast:
        JsonDecoder(InboundEvent)(raw)
    with pytest.raises(ValidationError) as model:
        InboundEvent.model_validate_json(raw)
    assert str(fast.value) == str(model.value)
