"""The team's workflow through the pipeline (issue #29): assigning a lead and labelling it go
through the log like every change, with roles (401/403/404/422), show on the lead, its
timeline, the list's filters and the CSV, and a replay rebuilds them equal."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

from leadstream.config import Settings
from leadstream.db.registry import add_workspace
from leadstream.sink.replay import replay_and_verify
from tests.support.fixtures import StartPipeline
from tests.support.pipeline import TOKEN, Pipeline, eventually, table_checksums

DEWI, SARAH, OTHER = "tok-team-dewi", "tok-team-sarah", "tok-team-ws2"


async def test_owners_and_tags_through_the_log(pipeline: Pipeline) -> None:
    p = pipeline
    assert p.pool is not None
    async with p.pool.acquire() as conn:
        for token, role, user, ws in ((DEWI, "human", "Dewi", "ws1"),
                                      (SARAH, "sarah-bot", None, "ws1"),
                                      (OTHER, "human", "Eko", "ws2")):
            await add_workspace(conn, workspace_id=ws, phone_number_id=None,
                                webhook_secret=None, api_token=token, role=role, user=user)
    assert await p.message("6281277712345", "wamid.team1") == 200
    lid = str(await eventually(lambda: p.fetchval_or_none(
        "SELECT lead_id FROM leads WHERE phone_e164 = '+6281277712345'"), timeout=60))
    base = f"/api/leads/{lid}"

    assert await p.api("GET", "/api/people", DEWI) == (200, {"people": ["Dewi"]})
    # who may: no token, another workspace, the Sarah bot, someone who is not a person here
    assert (await p.api("POST", base + "/assign", None, {"owner": "Dewi"}))[0] == 401
    assert (await p.api("POST", base + "/assign", OTHER, {"owner": "Eko"}))[0] == 404
    assert (await p.api("POST", base + "/assign", SARAH, {"owner": "Dewi"}))[0] == 403
    status, err = await p.api("POST", base + "/assign", TOKEN, {"owner": "Eko"})
    assert status == 422 and "Dewi" in err["fields"][0]["msg"]
    assert (await p.api("POST", base + "/assign", TOKEN, {}))[0] == 422  # owner is required
    # a shared human token names the person; a personal one may say `me`
    assert (await p.api("POST", base + "/assign", DEWI, {"owner": "me"}))[0] == 202
    status, err = await p.api("POST", base + "/tags", SARAH, {"add": [f"t{i}" for i in range(6)]})
    assert status == 422  # the Sarah bot: at most 5 a request
    assert (await p.api("POST", base + "/tags", SARAH, {"add": ["VIP", "#minta katalog"]}))[
        0] == 202
    assert (await p.api("POST", base + "/tags", TOKEN, {"add": ["x" * 40]}))[0] == 422
    assert (await p.api("POST", base + "/tags", DEWI, {"remove": ["minta katalog"],
                                                         "add": ["reseller"]}))[0] == 202

    async def settled() -> Any:
        row = await p.fetchrow("SELECT owner, tags FROM leads WHERE lead_id = $1::uuid", lid)
        return row if row and row["tags"] == ["vip", "reseller"] else None

    row = await eventually(settled, timeout=60)
    assert row["owner"] == "Dewi"
    notes = [(r["author"], r["content"]) for r in await p.fetch(
        "SELECT author, content FROM lead_notes WHERE lead_id = $1::uuid ORDER BY created_at",
        lid)]
    assert notes == [("Dewi", "Ditugaskan ke Dewi / assigned to Dewi"),
                     ("sarah-bot", "Label: +vip +minta katalog"),
                     ("Dewi", "Label: +reseller \u2212minta katalog")]

    # the list's filters, the lead's answer and the CSV
    status, page = await p.api("GET", "/api/leads?owner=me", DEWI)
    assert status == 200 and [x["lead_id"] for x in page["leads"]] == [lid]
    assert page["leads"][0]["owner"] == "Dewi" and page["leads"][0]["tags"] == ["vip", "reseller"]
    assert (await p.api("GET", "/api/leads?owner=me", TOKEN))[0] == 422  # a shared token
    assert (await p.api("GET", "/api/leads?owner=Budi"))[1]["leads"] == []
    assert [x["lead_id"] for x in (await p.api("GET", "/api/leads?tag=%23VIP"))[1]["leads"]] \
        == [lid]
    assert (await p.api("GET", "/api/leads?tag=cold"))[1]["leads"] == []
    status, text = await p.api("GET", "/api/leads.csv?tag=reseller")
    [csv_row] = list(csv.DictReader(io.StringIO(text)))
    assert (csv_row["owner"], csv_row["tags"]) == ("Dewi", "vip; reseller")
    # unassigning
    assert (await p.api("POST", base + "/assign", TOKEN, {"owner": None}))[0] == 202
    await eventually(lambda: p.fetchval_or_none(
        "SELECT 1 FROM leads WHERE lead_id = $1::uuid AND owner IS NULL", lid), timeout=60)

    # the log holds it all: a replay rebuilds the same rows
    before = await table_checksums(p)
    verified = await replay_and_verify(p.settings)
    assert verified["equal"], verified["tables"]
    assert await table_checksums(p) == before


async def test_new_leads_are_assigned_in_turn_once(pipelines: StartPipeline,
                                                   settings: Settings) -> None:
    """`workspace add --auto-assign all`: the worker gives each new lead an owner in turn
    among the workspace's people, as `auto-assign` on the timeline; a lead a person then
    unassigns stays unassigned; leads from before the rule, and other workspaces', are left
    alone; with `hot`, only a lead Sarah calls hot gets one."""
    p = await pipelines(settings.model_copy(update={"auto_assign_seconds": 0.5}))
    assert p.pool is not None
    assert await p.message("6281277720000", "wamid.before") == 200  # before the rule
    await eventually(lambda: p.fetchval_or_none(
        "SELECT 1 FROM leads WHERE phone_e164 = '+6281277720000'"), timeout=60)
    async with p.pool.acquire() as conn:
        for token, user in ((DEWI, "Dewi"), ("tok-team-budi", "Budi")):
            await add_workspace(conn, workspace_id="ws1", phone_number_id=None,
                                webhook_secret=None, api_token=token, role="human", user=user)
        await add_workspace(conn, workspace_id="ws1", phone_number_id=None,
                            webhook_secret=None, api_token=None, auto_assign="all")
    phones = [f"+62812777200{i:02d}" for i in range(1, 5)]
    for i, phone in enumerate(phones):  # live messages: their leads are created now
        assert await p.message(phone.lstrip("+"), f"wamid.auto{i}", ts=int(time.time())) == 200

    async def owners() -> Any:
        rows = await p.fetch("SELECT phone_e164, owner FROM leads WHERE phone_e164 = ANY($1)"
                             " AND owner IS NOT NULL ORDER BY created_at, lead_id", phones)
        return rows if len(rows) == len(phones) else None

    got = [r["owner"] for r in await eventually(owners, timeout=60)]
    assert sorted(got) == ["Budi", "Budi", "Dewi", "Dewi"]  # in turn: two each
    assert await p.fetchval_or_none(
        "SELECT owner FROM leads WHERE phone_e164 = '+6281277720000'") is None
    notes = await p.fetch("SELECT author FROM lead_notes WHERE content LIKE 'Ditugaskan ke %'")
    assert [n["author"] for n in notes] == ["auto-assign"] * 4
    # a person takes one back: it stays unassigned
    lid = await p.fetchval_or_none("SELECT lead_id FROM leads WHERE phone_e164 = $1", phones[0])
    assert (await p.api("POST", f"/api/leads/{lid}/assign", DEWI, {"owner": None}))[0] == 202
    await eventually(lambda: p.fetchval_or_none(
        "SELECT 1 FROM leads WHERE lead_id = $1 AND owner IS NULL", lid), timeout=60)
    # only hot leads under `hot`: a new lead waits until Sarah calls it hot
    async with p.pool.acquire() as conn:
        await add_workspace(conn, workspace_id="ws1", phone_number_id=None,
                            webhook_secret=None, api_token=None, auto_assign="hot")
        await add_workspace(conn, workspace_id="ws1", phone_number_id=None,
                            webhook_secret=None, api_token="tok-team-sarah2", role="sarah-bot")
    assert await p.message("6281277729999", "wamid.auto-hot", ts=int(time.time())) == 200
    await eventually(lambda: p.fetchval_or_none(
        "SELECT 1 FROM leads WHERE phone_e164 = '+6281277729999'"), timeout=60)
    assert (await p.api("POST", "/api/sarah/state", "tok-team-sarah2", {
        "contact_phone": "+6281277729999", "lead_temperature": "hot"}))[0] == 202
    await eventually(lambda: p.fetchval_or_none(
        "SELECT owner FROM leads WHERE phone_e164 = '+6281277729999'"), timeout=60)
    assert await p.fetchval_or_none(
        "SELECT owner FROM leads WHERE lead_id = $1", lid) is None  # still as Dewi left it
    assert await p.fetchval_or_none(
        "SELECT auto_assign_turn FROM workspaces WHERE workspace_id = 'ws1'") == 5
