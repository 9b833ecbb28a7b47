"""The existing Sarah client as it is (issue #25): her state save's body verbatim (the phase
as `state`, keys leadstream does not use), the answer the old endpoint gave, her states
mapped to statuses as the old system did, and her notes on the timeline."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.pipeline import Pipeline, eventually

pytestmark = pytest.mark.integration

#: the state save as the existing Sarah workflow sends it: `state`, not `chat_phase`, and the
#: keys of its own session bookkeeping besides
OLD_STATE_SAVE: dict[str, Any] = {
    "contact_phone": "081377776666",
    "state": "qualifying",
    "extracted_data": {"name": "Pak Joko", "business_type": "bengkel motor",
                       "domisili": "Semarang", "business_duration": "5 tahun",
                       "pain_points": ["antrian panjang"]},
    "lead_score": 64,
    "lead_temperature": "Warm",
    "session_id": "sess-8841",
    "conversation_history": [{"role": "user", "content": "halo"}],
    "updated_at": "2026-11-30T09:12:00+07:00",
    "bot_version": "sarah-2.3",
}


async def _post(p: Pipeline, path: str, token: str, body: dict[str, Any]
                ) -> tuple[int, Any]:
    assert p.session is not None
    async with p.session.post(p.base + path, json=body,
                              headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status, await r.json()


async def _tokens(p: Pipeline) -> None:
    from leadstream.db.registry import add_workspace

    assert p.pool is not None
    async with p.pool.acquire() as conn:
        await add_workspace(conn, workspace_id="ws1", phone_number_id=None,
                            webhook_secret=None, api_token="tok-sarah", role="sarah-bot")


async def test_the_old_state_save_verbatim(pipeline: Pipeline) -> None:
    await _tokens(pipeline)
    status, answer = await _post(pipeline, "/api/sarah/state", "tok-sarah", OLD_STATE_SAVE)
    assert status == 202, answer
    assert answer["accepted"] is True and answer["success"] is True
    assert answer["sync"] == "queued" and answer["syncReason"] is None
    assert answer["ignored"] == ["bot_version", "conversation_history", "session_id",
                                 "updated_at"]
    assert answer["lead_key"] == "ws1:+6281377776666"
    lead = await eventually(lambda: pipeline.fetchrow(
        "SELECT * FROM leads WHERE phone_e164 = '+6281377776666'"), timeout=60)
    assert lead["chat_phase"] == "qualifying" and lead["lead_status"] == "qualified"
    assert (lead["name"], lead["business_type"], lead["domisili"], lead["business_duration"]) \
        == ("Pak Joko", "bengkel motor", "Semarang", "5 tahun")
    assert lead["pain_points"] == ["antrian panjang"]
    assert (lead["lead_score"], lead["lead_temperature"]) == (64, "warm")
    # nothing of the session bookkeeping is stored as one of Sarah's fields
    assert lead["sarah_extra"] in ("{}", {}, None)

    # both names for the phase: chat_phase wins, and `state` is named as ignored
    status, answer = await _post(pipeline, "/api/sarah/state", "tok-sarah", {
        "contact_phone": "+62 813-7777-6666", "state": "greeting", "chat_phase": "handoff"})
    assert status == 202 and answer["ignored"] == ["state"]
    await eventually(lambda: pipeline.fetchrow(
        "SELECT 1 FROM leads WHERE phone_e164 = '+6281377776666' AND chat_phase = 'handoff'"
        " AND lead_status = 'contacted'"), timeout=30)
    status, answer = await _post(pipeline, "/api/sarah/state", "tok-sarah", {
        "contact_phone": "6281377776666", "state": "completed", "extracted_data": None})
    assert status == 202 and answer["ignored"] == []
    await eventually(lambda: pipeline.fetchrow(
        "SELECT 1 FROM leads WHERE phone_e164 = '+6281377776666' AND lead_status = 'converted'"),
        timeout=30)
    history = await pipeline.fetch(
        "SELECT from_status, to_status, changed_by FROM lead_status_history h JOIN leads l"
        " USING (lead_id) WHERE l.phone_e164 = '+6281377776666' ORDER BY changed_at")
    assert [tuple(h) for h in history] == [("new", "qualified", "sarah-bot"),
                                           ("qualified", "contacted", "sarah-bot"),
                                           ("contacted", "converted", "sarah-bot")]


async def test_sarah_adds_notes_that_show_as_hers(pipeline: Pipeline) -> None:
    await _tokens(pipeline)
    status, _ = await _post(pipeline, "/api/sarah/state", "tok-sarah",
                            {"contact_phone": "081377775555", "state": "greeting"})
    assert status == 202
    lead = await eventually(lambda: pipeline.fetchrow(
        "SELECT lead_id FROM leads WHERE phone_e164 = '+6281377775555'"), timeout=60)
    # a bot cannot sign as a person: the note is Sarah's whatever `author` says
    status, _ = await _post(pipeline, f"/api/leads/{lead['lead_id']}/notes", "tok-sarah",
                            {"content": "Minta dihubungi sore", "author": "Dewi"})
    assert status == 202
    note = await eventually(lambda: pipeline.fetchrow(
        "SELECT author, author_type, content FROM lead_notes WHERE lead_id = $1",
        lead["lead_id"]), timeout=30)
    assert tuple(note) == ("sarah-bot", "bot", "Minta dihubungi sore")
    # Sarah may note, not move a lead by hand or edit it
    for path, body in (("/status", {"status": "archived"}),):
        status, _ = await _post(pipeline, f"/api/leads/{lead['lead_id']}{path}", "tok-sarah",
                                body)
        assert status == 403
