"""One set of limits (issue #24): every value the API's request models accept at their
bounds is one the log's record models accept, so nothing the API answered 202 for can fail
in the worker (a 500 before: a reason of 501-2,000 characters, a chat phase over 256)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from leadstream.domain.limits import MAX_NAME
from leadstream.domain.model import Command, SarahUpdate
from leadstream.http.models import LeadEditIn, MergeIn, NoteIn, SarahStateIn, StatusIn

WIDE = "\U0001F600"  # a four-byte character: bounds count characters
NOW = datetime.now(UTC)


def _longest(model: type[Any], field: str) -> str:
    """The longest value the API model takes for `field` (its max_length)."""
    for meta in model.model_fields[field].metadata:
        if getattr(meta, "max_length", None):
            return WIDE * int(meta.max_length)
    raise AssertionError(f"{model.__name__}.{field} has no bound")


def _command(**kw: Any) -> Command:
    return Command(event_id="e", workspace_id="ws", lead_key="ws:+62", occurred_at=NOW,
                   actor_role="human", author=kw.pop("author", "Dewi"), **kw)


@pytest.mark.parametrize(("model", "field", "build"), [
    (StatusIn, "reason", lambda v: _command(kind="status", status="new", reason=v)),
    (MergeIn, "reason", lambda v: _command(kind="merge", reason=v, target_key="ws:+63")),
    (NoteIn, "content", lambda v: _command(kind="note", content=v)),
    (NoteIn, "author", lambda v: _command(kind="note", content="x", author=v)),
    (LeadEditIn, "name", lambda v: _command(kind="edit", edit_fields=["name"], name=v)),
])
def test_what_the_api_takes_the_log_takes(model: type[Any], field: str, build: Any) -> None:
    longest = _longest(model, field)
    build(longest)  # the record the API would publish validates
    with pytest.raises(ValidationError):  # and one more character is the API's 422
        model.model_validate({**_required(model), field: longest + "x"})


def test_sarah_phase_at_its_bound() -> None:
    phase = WIDE * MAX_NAME  # chat_phase is the domain's own `Name` type
    body = SarahStateIn.model_validate({"contact_phone": "0812", "state": phase})
    SarahUpdate(event_id="e", workspace_id="ws", lead_key="ws:+62", identity="+62",
                phone_e164="+62", occurred_at=NOW, chat_phase=body.phase)
    with pytest.raises(ValidationError):
        SarahStateIn.model_validate({"contact_phone": "0812", "chat_phase": phase + "x"})


def _required(model: type[Any]) -> dict[str, Any]:
    return {"status": {"status": "new"}, "duplicate_lead_id":
            {"duplicate_lead_id": "00000000-0000-0000-0000-000000000001"},
            "content": {"content": "x"}}.get(
        next((n for n, f in model.model_fields.items() if f.is_required()), ""), {})
