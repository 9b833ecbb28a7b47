"""Merges and identity changes through the whole pipeline (issue #18): the merge API, a
business-scoped id before a phone, a Meta number change, and a replay after merges that
rebuilds an equal replica."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
import pytest

from leadstream.db.registry import add_workspace
from leadstream.domain.identity import lead_id_for
from leadstream.simulate import kapso_message
from leadstream.simulate.kapso import signed
from tests.support.pipeline import PNID, SECRET, TOKEN, Pipeline, eventually, table_checksums

pytestmark = pytest.mark.integration

P1, P2 = "6281355550001", "6281355550002"


async def _call(p: Pipeline, method: str, path: str, body: Any = None,
                token: str = TOKEN) -> tuple[int, Any]:
    assert p.session is not None
    async with p.session.request(method, f"{p.base}{path}", json=body,
                                 headers={"Authorization": f"Bearer {token}"}) as r:
        raw = await r.read()
        return r.status, orjson.loads(raw) if raw else None


async def _meta(p: Pipeline, message: dict[str, Any]) -> int:
    assert p.session is not None
    body = {"object": "whatsapp_business_account", "entry": [{"id": "waba", "changes": [{
        "field": "messages", "value": {"messaging_product": "whatsapp",
                                       "metadata": {"phone_number_id": PNID},
                                       "messages": [message]}}]}]}
    raw, sig = signed(SECRET, body)
    async with p.session.post(f"{p.base}/webhooks/whatsapp", data=raw, headers={
            "X-Hub-Signature-256": f"sha256={sig}",
            "Content-Type": "application/json"}) as r:
        await r.read()
        return r.status


def _id(phone: str) -> str:
    return lead_id_for(f"ws1:+{phone}")


async def _active(p: Pipeline) -> list[Any]:
    return await p.fetch("SELECT * FROM leads WHERE merged_into IS NULL ORDER BY lead_key")


async def test_merge_then_later_messages_then_replay_is_equal(pipeline: Pipeline) -> None:
    for i in range(3):
        assert await pipeline.message(P1, f"wamid.s{i}", name="Budi", ts=1_760_000_000 + i,
                                      text=f"survivor {i}") == 200
    for i in range(2):
        assert await pipeline.message(P2, f"wamid.d{i}", name="Budi (HP lain)",
                                      ts=1_760_000_100 + i, text=f"duplicate {i}") == 200
    await eventually(lambda: pipeline.fetchrow(
        "SELECT 1 FROM leads HAVING count(*) = 2 AND sum(message_count) = 5"), timeout=60)
    status, _ = await _call(pipeline, "POST", f"/api/leads/{_id(P2)}/notes",
                            {"content": "catatan di lead duplikat"})
    assert status == 202
    await eventually(lambda: pipeline.fetchrow("SELECT 1 FROM lead_notes"))
    status, _ = await _call(pipeline, "POST", f"/api/leads/{_id(P1)}/merge",
                            {"duplicate_lead_id": _id(P2), "reason": "nomor kedua Budi"})
    assert status == 202
    survivor = await eventually(lambda: pipeline.fetchrow(
        "SELECT * FROM leads WHERE lead_id = $1 AND message_count = 5",
        uuid.UUID(_id(P1))), timeout=60)
    assert survivor["merged_into"] is None
    dup = await pipeline.fetchrow("SELECT * FROM leads WHERE lead_id = $1", uuid.UUID(_id(P2)))
    assert dup is not None and str(dup["merged_into"]) == _id(P1)
    # the list shows one lead; the survivor's detail has both leads' messages and notes
    status, page = await _call(pipeline, "GET", "/api/leads")
    assert [x["lead_id"] for x in page["leads"]] == [_id(P1)]
    _, detail = await _call(pipeline, "GET", f"/api/leads/{_id(P1)}")
    texts = {m["text"] for m in detail["messages"]}
    assert {"survivor 0", "duplicate 1"} <= texts and len(texts) == 5
    notes = [n["content"] for n in detail["notes"]]
    assert "catatan di lead duplikat" in notes
    assert any("digabung ke lead ini" in n and "nomor kedua Budi" in n for n in notes)
    assert [m["lead_id"] for m in detail["merged"]] == [_id(P2)]
    # SQL readers reach the survivor through the view
    rows = await pipeline.fetch("SELECT lead_id::text, survivor_id::text FROM lead_survivors")
    assert {r["lead_id"]: r["survivor_id"] for r in rows} == {_id(P1): _id(P1),
                                                             _id(P2): _id(P1)}
    # later messages from the duplicate's number count on the survivor; a redelivery of one
    # the duplicate had counted does not
    assert await pipeline.message(P2, "wamid.d-late", text="masih ada?",
                                  ts=1_760_000_300) == 200
    assert await pipeline.message(P2, "wamid.d0", text="duplicate 0", ts=1_760_000_100) == 200
    await eventually(lambda: pipeline.fetchrow(
        "SELECT 1 FROM leads WHERE lead_id = $1 AND message_count = 6", uuid.UUID(_id(P1))),
        timeout=60)
    # a second merge of the same duplicate is refused
    status, _ = await _call(pipeline, "POST", f"/api/leads/{_id(P1)}/merge",
                            {"duplicate_lead_id": _id(P2)})
    assert status == 409
    await asyncio.sleep(1.0)
    assert (await pipeline.fetchrow("SELECT message_count FROM leads WHERE lead_id = $1",
                                    uuid.UUID(_id(P1))))["message_count"] == 6  # type: ignore[index]
    before = await table_checksums(pipeline)
    pipeline.worker.stop()
    from leadstream.sink.replay import replay_and_verify

    verified = await replay_and_verify(pipeline.settings)
    assert verified["equal"], verified["tables"]
    assert await table_checksums(pipeline) == before


async def test_merge_api_roles_and_workspaces(pipeline: Pipeline) -> None:
    assert pipeline.pool is not None
    async with pipeline.pool.acquire() as conn:
        await add_workspace(conn, workspace_id="ws1", phone_number_id=None, webhook_secret=None,
                            api_token="tok-sarah-m", role="sarah-bot")
        await add_workspace(conn, workspace_id="ws2", phone_number_id=None, webhook_secret=None,
                            api_token="tok-ws2-m", role="human")
    for phone, wamid in ((P1, "wamid.a"), (P2, "wamid.b")):
        assert await pipeline.message(phone, wamid) == 200
    await eventually(lambda: pipeline.fetchrow("SELECT 1 FROM leads HAVING count(*) = 2"),
                     timeout=60)
    body = {"duplicate_lead_id": _id(P2)}
    path = f"/api/leads/{_id(P1)}/merge"
    assert (await _call(pipeline, "POST", path, body, "tok-sarah-m"))[0] == 403
    assert (await _call(pipeline, "POST", path, body, "tok-ws2-m"))[0] == 404
    assert (await _call(pipeline, "POST", path, body, "nope"))[0] == 401
    assert (await _call(pipeline, "POST", path, {"duplicate_lead_id": _id(P1)}))[0] == 422
    assert (await _call(pipeline, "POST", path, {"duplicate_lead_id": "x"}))[0] == 422
    assert (await _call(pipeline, "POST", path,
                        {"duplicate_lead_id": str(uuid.uuid4())}))[0] == 404
    assert (await _call(pipeline, "POST", "/api/leads/nope/merge", body))[0] == 404


async def test_a_business_scoped_id_first_and_its_phone_later_make_one_lead(
        pipeline: Pipeline) -> None:
    for i in range(2):
        only = kapso_message(PNID, wa_id="", wamid=f"wamid.bs{i}", text="halo",
                             ts=1_760_000_000 + i)
        only["conversation"].pop("phone_number")
        only["message"].pop("from")
        only["conversation"]["business_scoped_user_id"] = "ID.5151"
        assert await pipeline.kapso("whatsapp.message.received", only) == 200
    await eventually(lambda: pipeline.fetchrow(
        "SELECT 1 FROM leads WHERE lead_key = 'ws1:ID.5151' AND message_count = 2"), timeout=60)
    both = kapso_message(PNID, wa_id=P1, wamid="wamid.bs-phone", text="ini nomor saya",
                         ts=1_760_000_010)
    both["conversation"]["business_scoped_user_id"] = "ID.5151"
    assert await pipeline.kapso("whatsapp.message.received", both) == 200
    lead = await eventually(lambda: pipeline.fetchrow(
        "SELECT * FROM leads WHERE lead_key = $1 AND message_count = 3", f"ws1:+{P1}"),
        timeout=60)
    assert lead["bsuid"] == "ID.5151"
    assert [r["lead_key"] for r in await _active(pipeline)] == [f"ws1:+{P1}"]


async def test_after_a_meta_number_change_the_new_number_counts_on_the_same_lead(
        pipeline: Pipeline) -> None:
    def text(frm: str, wamid: str, ts: int) -> dict[str, Any]:
        return {"from": frm, "id": wamid, "timestamp": str(ts), "type": "text",
                "text": {"body": "halo dari " + frm}}

    assert await _meta(pipeline, text(P1, "wamid.n1", 1_760_000_000)) == 200
    await eventually(lambda: pipeline.fetchrow("SELECT 1 FROM leads WHERE message_count = 1"),
                     timeout=60)
    assert await _meta(pipeline, {
        "from": P1, "id": "wamid.sys", "timestamp": "1760000100", "type": "system",
        "system": {"body": "User Budi changed number", "wa_id": P2,
                   "type": "user_changed_number"}}) == 200
    await eventually(lambda: pipeline.fetchrow(
        "SELECT 1 FROM leads WHERE lead_key = $1 AND phone_e164 = $2", f"ws1:+{P1}", f"+{P2}"),
        timeout=60)
    assert await _meta(pipeline, text(P2, "wamid.n2", 1_760_000_200)) == 200
    await eventually(lambda: pipeline.fetchrow(
        "SELECT 1 FROM leads WHERE lead_key = $1 AND message_count = 2", f"ws1:+{P1}"),
        timeout=60)
    assert [r["lead_key"] for r in await _active(pipeline)] == [f"ws1:+{P1}"]
