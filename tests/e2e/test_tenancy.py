"""Tenant safety through the whole pipeline (issue #14): message ids per workspace,
idempotency keys scoped to the lead and the endpoint, personal tokens as actors."""

from __future__ import annotations

import pytest

from leadstream.db.registry import add_workspace
from leadstream.simulate import kapso_message, post_kapso
from tests.support.pipeline import Pipeline, eventually

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
async def tenants(pipeline: Pipeline) -> None:
    """A second workspace with its own number, and Sari's personal token in ws1."""
    assert pipeline.pool is not None
    async with pipeline.pool.acquire() as conn:
        await add_workspace(conn, workspace_id="ws2", phone_number_id="pnid-2",
                            webhook_secret="s2", api_token=None)
        await add_workspace(conn, workspace_id="ws1", phone_number_id=None, webhook_secret=None,
                            api_token="tok-sari", role="human", user="Sari")


async def _post(p: Pipeline, path: str, token: str, json: dict, idem: str | None = None) -> int:
    assert p.session is not None
    headers = {"Authorization": f"Bearer {token}"}
    if idem:
        headers["X-Idempotency-Key"] = idem
    async with p.session.post(f"{p.base}{path}", json=json, headers=headers) as r:
        await r.read()
        return r.status


async def test_the_same_wamid_in_two_workspaces_is_two_message_rows(pipeline: Pipeline) -> None:
    """Before: `messages.message_id` was unique across workspaces, so ws2's message with the
    same id overwrote ws1's row."""
    assert pipeline.session is not None
    assert await pipeline.message("6281311110001", "wamid.SAME", text="dari ws1") == 200
    other = kapso_message("pnid-2", wa_id="6281322220002", wamid="wamid.SAME", text="dari ws2",
                          ts=1_760_000_100)
    assert await post_kapso(pipeline.session, pipeline.base, "s2",
                            "whatsapp.message.received", other) == 200
    rows = await eventually(lambda: _two(pipeline))
    assert {(r["workspace_id"], r["text"]) for r in rows} == {("ws1", "dari ws1"),
                                                             ("ws2", "dari ws2")}


async def _two(p: Pipeline) -> list:
    rows = await p.fetch("SELECT workspace_id, text FROM messages WHERE message_id = 'wamid.SAME'")
    return rows if len(rows) == 2 else []


async def test_one_idempotency_key_on_two_leads_notes_keeps_both_and_a_person_is_the_actor(
    pipeline: Pipeline,
) -> None:
    """Before: the key was scoped to the workspace only, so the second lead's note (same key)
    was taken for a redelivery of the first and dropped after its 202."""
    for phone, wamid in (("6281333330001", "wamid.A"), ("6281333330002", "wamid.B")):
        assert await pipeline.message(phone, wamid) == 200
    leads = await eventually(lambda: _leads(pipeline, 2))
    for lead in leads:
        path = f"/api/leads/{lead['lead_id']}/notes"
        assert await _post(pipeline, path, "tok-sari", {"content": "telepon besok",
                                                        "author": "someone else"},
                           idem="same-key") == 202
        # the same delivery again (a retry): still one note for this lead
        assert await _post(pipeline, path, "tok-sari", {"content": "telepon besok"},
                           idem="same-key") == 202
        assert await _post(pipeline, f"/api/leads/{lead['lead_id']}/status", "tok-sari",
                           {"status": "contacted", "reason": "ditelepon"},
                           idem="same-key") == 202
    notes = await eventually(lambda: _rows(pipeline, "SELECT lead_id, author FROM lead_notes", 2))
    assert len(notes) == 2
    assert {n["lead_id"] for n in notes} == {lead["lead_id"] for lead in leads}
    assert {n["author"] for n in notes} == {"Sari"}  # the token's person, not the body's
    history = await eventually(lambda: _rows(
        pipeline, "SELECT lead_id, actor, changed_by FROM lead_status_history", 2))
    assert {(h["actor"], h["changed_by"]) for h in history} == {("Sari", "human")}


async def _leads(p: Pipeline, n: int) -> list:
    rows = await p.fetch("SELECT lead_id FROM leads ORDER BY phone_e164")
    return rows if len(rows) == n else []


async def _rows(p: Pipeline, sql: str, n: int) -> list:
    rows = await p.fetch(sql)
    return rows if len(rows) >= n else []
