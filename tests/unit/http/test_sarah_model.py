"""`SarahStateIn` (the old state save's body) and who a command is shown as: pure."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from leadstream.db.registry import TokenEntry
from leadstream.http.api import command_author
from leadstream.http.models import IGNORED_NAMED, SarahStateIn


@pytest.mark.parametrize(("body", "phase", "ignored"), [
    ({"state": "scoring"}, "scoring", []),
    ({"chat_phase": "C"}, "C", []),
    ({"state": "greeting", "chat_phase": "handoff"}, "handoff", ["state"]),
    ({"state": {"phase": "x"}}, None, ["state"]),  # not a phase name: kept out, named
    ({"state": ""}, None, ["state"]),
    ({"state": "x" * 257}, None, ["state"]),
    ({"state": None, "session": 1, "b": 2}, None, ["b", "session"]),
])
def test_phase_and_ignored(body: dict[str, Any], phase: str | None, ignored: list[str]) -> None:
    m = SarahStateIn.model_validate({"contact_phone": "0812", **body})
    assert (m.phase, m.ignored) == (phase, ignored)


def test_ignored_names_are_bounded() -> None:
    m = SarahStateIn.model_validate({"contact_phone": "0812",
                                     **{f"k{i:03d}" + "y" * 100: i for i in range(500)}})
    assert len(m.ignored) == IGNORED_NAMED and all(len(k) == 64 for k in m.ignored)


def test_lenient_where_the_old_client_was_loose_strict_where_it_matters() -> None:
    m = SarahStateIn.model_validate({"contact_phone": "0812", "lead_temperature": " HOT ",
                                     "extracted_data": None})
    assert m.lead_temperature == "hot" and m.extracted_data.name is None
    for bad in ({"lead_temperature": "tepid"}, {"lead_score": 101}, {"chat_phase": "x" * 257},
                {"contact_phone": None}):
        with pytest.raises(ValidationError):
            SarahStateIn.model_validate({"contact_phone": "0812", **bad})


@pytest.mark.parametrize(("role", "user", "claimed", "shown"), [
    ("human", "Dewi", "Someone", "Dewi"),  # a personal token is its person
    ("human", None, "Ani", "Ani"),  # a shared human token: as the body says
    ("human", None, None, "human"),
    ("sarah-bot", None, "Dewi", "sarah-bot"),  # a bot never signs as a person
    ("brain-bot", None, None, "brain-bot"),
])
def test_command_author(role: str, user: str | None, claimed: str | None, shown: str) -> None:
    tok = TokenEntry(workspace_id="ws", role=role, user=user)
    assert command_author(tok, claimed) == shown
