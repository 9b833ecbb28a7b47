"""The team's API (issue #17): who is signed in, the needs-reply queue, CSV export, the live
stream, dead letters and their resolution, the workspace digest, and the typed lead schema;
each new endpoint's 401, 403 for the wrong role and 404 across workspaces (real Postgres)."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from leadstream.db.registry import add_workspace
from leadstream.http.models import Lead
from leadstream.http.queries import CSV_COLUMNS
from tests.support.pipeline import TOKEN, Pipeline

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
DEWI, SARAH, OTHER = "tok-dewi", "tok-sarah", "tok-ws2"
INBOX = "https://app.kapso.ai/projects/p1/inbox/{conversation_id}?wa={phone}"


def _lead(i: int, ws: str = "ws1", **kw: Any) -> dict[str, Any]:
    row = {"lead_id": uuid.uuid5(uuid.NAMESPACE_URL, f"{ws}:{i}"), "workspace_id": ws,
           "lead_key": f"{ws}:+62812000{i:05d}", "phone_e164": f"+62812000{i:05d}",
           "name": f"Lead {i}", "lead_status": "new", "created_at": NOW - timedelta(days=1),
           "updated_at": NOW, "last_activity_at": NOW - timedelta(minutes=i), "version": 1}
    row.update(kw)
    return row


async def _insert(p: Pipeline, rows: list[dict[str, Any]]) -> None:
    for r in rows:
        cols = list(r)
        await p.pool.execute(  # type: ignore[union-attr]
            f"INSERT INTO leads ({', '.join(cols)}) VALUES "
            f"({', '.join(f'${i + 1}' for i in range(len(cols)))})", *r.values())


@pytest.fixture
async def web(web: Pipeline) -> Pipeline:
    """The shared `web` fixture, seeded for these tests."""
    p = web
    assert p.pool is not None
    async with p.pool.acquire() as conn:
        await add_workspace(conn, workspace_id="ws1", phone_number_id=None, webhook_secret=None,
                            api_token=DEWI, role="human", user="Dewi", inbox_url=INBOX)
        await add_workspace(conn, workspace_id="ws1", phone_number_id=None, webhook_secret=None,
                            api_token=SARAH, role="sarah-bot")
        await add_workspace(conn, workspace_id="ws2", phone_number_id=None, webhook_secret=None,
                            api_token=OTHER, role="human")
    h = timedelta(hours=1)
    await _insert(p, [
        # waiting: inbound after outbound (or no outbound); 3 waits longest
        _lead(1, last_inbound_at=NOW - 1 * h, last_outbound_at=NOW - 2 * h,
              kapso_conversation_id="conv/1"),
        _lead(2, last_inbound_at=NOW - 5 * h),
        _lead(3, last_inbound_at=NOW - 9 * h, last_outbound_at=NOW - 10 * h,
              lead_temperature="hot", lead_score=90),
        # answered: outbound after inbound, or no inbound at all
        _lead(4, last_inbound_at=NOW - 3 * h, last_outbound_at=NOW - 2 * h),
        _lead(5, name="=HYPERLINK(\"http://x\")", business_type="Kuliner, \"Bakso\"",
              pain_points=["stok", "kasir"], story="Baris satu\nbaris dua",
              sarah_extra='{"budget": "2jt"}'),
        _lead(6, "ws2", last_inbound_at=NOW - 20 * h),
    ])
    return p


async def _call(p: Pipeline, method: str, path: str, token: str = TOKEN,
                params: dict[str, Any] | None = None) -> tuple[int, Any]:
    assert p.session is not None
    async with p.session.request(method, f"{p.base}{path}", params=params or {},
                                 headers={"Authorization": f"Bearer {token}"}) as r:
        body = await r.read()
        return r.status, (orjson.loads(body) if r.content_type == "application/json"
                          else body.decode("utf-8-sig"))


def _id(i: int, ws: str = "ws1") -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{ws}:{i}"))


async def test_me_names_the_person_of_a_personal_token(web: Pipeline) -> None:
    assert await _call(web, "GET", "/api/me", DEWI) == (200, {
        "workspace_id": "ws1", "role": "human", "user": "Dewi", "inbox_url_pattern": INBOX,
        "timezone": "Asia/Jakarta"})
    status, body = await _call(web, "GET", "/api/me", SARAH)
    assert status == 200 and body["role"] == "sarah-bot" and body["user"] is None
    assert (await _call(web, "GET", "/api/me", "nope"))[0] == 401


async def test_needs_reply_lists_longest_waiting_first_and_the_header_counts_them(
        web: Pipeline) -> None:
    status, page = await _call(web, "GET", "/api/leads", params={"needs_reply": "true"})
    assert status == 200
    assert [x["lead_id"] for x in page["leads"]] == [_id(3), _id(2), _id(1)]
    assert page["leads"][0]["waiting_since"] is not None
    # paged one at a time, the order holds
    seen, cursor = [], None
    while True:
        _, pg = await _call(web, "GET", "/api/leads", params={
            "needs_reply": "true", "limit": 1, **({"cursor": cursor} if cursor else {})})
        seen += [x["lead_id"] for x in pg["leads"]]
        if not (cursor := pg["next_cursor"]):
            break
    assert seen == [_id(3), _id(2), _id(1)]
    _, answered = await _call(web, "GET", "/api/leads", params={"needs_reply": "false"})
    assert {x["lead_id"] for x in answered["leads"]} == {_id(4), _id(5)}
    assert all(x["waiting_since"] is None for x in answered["leads"])
    _, counts = await _call(web, "GET", "/api/leads/counts")
    assert counts["needs_reply"] == 3 and counts["total"] == 5
    _, other = await _call(web, "GET", "/api/leads/counts", OTHER)
    assert other["needs_reply"] == 1 and other["total"] == 1


async def test_lead_answers_carry_the_inbox_link_and_match_the_typed_schema(
        web: Pipeline) -> None:
    # (a new token reloads the directory: the pattern added with it is known at once)
    status, detail = await _call(web, "GET", f"/api/leads/{_id(1)}", DEWI)
    assert status == 200
    lead = Lead.model_validate(detail["lead"])  # the OpenAPI schema is what is answered
    assert lead.inbox_url == "https://app.kapso.ai/projects/p1/inbox/conv%2F1?wa=6281200000001"
    _, five = await _call(web, "GET", f"/api/leads/{_id(5)}")
    assert five["lead"]["inbox_url"] is None  # no conversation yet
    assert five["lead"]["sarah_extra"] == {"budget": "2jt"}
    columns = {r["column_name"] for r in await web.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'leads'"
        " AND table_schema = 'public'")}
    assert set(Lead.model_fields) - {"inbox_url", "waiting_since"} == columns
    _, page = await _call(web, "GET", "/api/leads")
    for x in page["leads"]:
        Lead.model_validate(x)
    # the other workspace's lead is unknown here
    assert (await _call(web, "GET", f"/api/leads/{_id(6, 'ws2')}"))[0] == 404


async def test_csv_export_is_the_whole_filtered_list_and_safe_in_a_spreadsheet(
        web: Pipeline) -> None:
    status, text = await _call(web, "GET", "/api/leads.csv", params={"limit": 1})
    assert status == 200
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    body = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    assert len(body) == 5  # every page, not the first (`limit` does not cut an export)
    _, page = await _call(web, "GET", "/api/leads")
    assert [r["lead_id"] for r in body] == [x["lead_id"] for x in page["leads"]]
    five = next(r for r in body if r["lead_id"] == _id(5))
    assert five["name"] == "'=HYPERLINK(\"http://x\")"  # not a formula
    assert five["business_type"] == "Kuliner, \"Bakso\"" and five["pain_points"] == "stok; kasir"
    assert five["story"] == "Baris satu\nbaris dua" and five["phone_e164"] == "+6281200000005"
    _, waiting = await _call(web, "GET", "/api/leads.csv", params={"needs_reply": "true"})
    assert [r[0] for r in list(csv.reader(io.StringIO(waiting)))[1:]] == [_id(3), _id(2), _id(1)]
    _, other = await _call(web, "GET", "/api/leads.csv", OTHER)
    assert [r[0] for r in list(csv.reader(io.StringIO(other)))[1:]] == [_id(6, "ws2")]
    assert (await _call(web, "GET", "/api/leads.csv", params={"status": "won"}))[0] == 422
    assert (await _call(web, "GET", "/api/leads.csv", "nope"))[0] == 401


async def _failure(p: Pipeline, ws: str | None, n: int) -> int:
    return int(await p.pool.fetchval(  # type: ignore[union-attr]
        "INSERT INTO sync_failures (event_id, stage, reason, source_topic, source_partition,"
        " source_offset, workspace_id, failed_at, original_b64)"
        " VALUES ($1, 'webhook', 'unknown event type', 'leadstream.dlq', 0, $2, $3, $4, $5)"
        " RETURNING id", f"dl-{ws}-{n}", n, ws, NOW - timedelta(minutes=n),
        "eyJ0eXBlIjogIndoYXRzYXBwLmZvbyJ9"))


async def test_the_sync_panel_lists_a_number_whose_reconciliation_keeps_failing(
        web: Pipeline) -> None:
    from leadstream.db import watermarks

    assert web.pool is not None
    for _ in range(2):
        await watermarks.failed(web.pool, "pnid-a", "ws1", "Kapso answered 401")
    _, page = await _call(web, "GET", "/api/sync-failures")
    assert page["reconcile_failing"] == []  # twice is a blip
    await watermarks.failed(web.pool, "pnid-a", "ws1", "Kapso answered 401")
    for _ in range(3):
        await watermarks.failed(web.pool, "pnid-b", "ws2", "unavailable")
    _, page = await _call(web, "GET", "/api/sync-failures")
    [failing] = page["reconcile_failing"]  # not the other workspace's number
    assert failing["phone_number_id"] == "pnid-a" and failing["failures"] == 3
    assert failing["last_error"] == "Kapso answered 401" and failing["complete_until"] is None
    await watermarks.advance(web.pool, "pnid-a", "ws1", NOW, read=5, missing=1)
    _, page = await _call(web, "GET", "/api/sync-failures")
    assert page["reconcile_failing"] == []  # a run that worked clears it


async def test_sync_failures_are_listed_and_resolved_with_who_and_when(web: Pipeline) -> None:
    a, b = await _failure(web, "ws1", 1), await _failure(web, "ws1", 2)
    theirs = await _failure(web, "ws2", 3)
    status, page = await _call(web, "GET", "/api/sync-failures")
    assert status == 200 and page["open"] == 2
    assert [f["id"] for f in page["failures"]] == [a, b]
    assert page["failures"][0]["original_preview"] == '{"type": "whatsapp.foo"}'
    # sarah-bot may read but not resolve; another workspace's dead letter is unknown
    assert (await _call(web, "GET", "/api/sync-failures", SARAH))[0] == 200
    assert (await _call(web, "POST", f"/api/sync-failures/{a}/resolve", SARAH))[0] == 403
    assert (await _call(web, "POST", f"/api/sync-failures/{theirs}/resolve", DEWI))[0] == 404
    assert (await _call(web, "POST", "/api/sync-failures/999999/resolve", DEWI))[0] == 404
    assert (await _call(web, "POST", "/api/sync-failures/abc/resolve", DEWI))[0] == 404
    assert (await _call(web, "POST", f"/api/sync-failures/{a}/resolve", "nope"))[0] == 401
    status, done = await _call(web, "POST", f"/api/sync-failures/{a}/resolve", DEWI)
    assert status == 200 and done["resolved_by"] == "Dewi" and done["resolved_at"]
    # resolving again keeps the first resolution
    _, again = await _call(web, "POST", f"/api/sync-failures/{a}/resolve", TOKEN)
    assert again["resolved_by"] == "Dewi" and again["resolved_at"] == done["resolved_at"]
    _, page = await _call(web, "GET", "/api/sync-failures")
    assert page["open"] == 1 and [f["id"] for f in page["failures"]] == [b]
    _, handled = await _call(web, "GET", "/api/sync-failures", params={"resolved": "true"})
    assert [f["id"] for f in handled["failures"]] == [a]
    _, ws2 = await _call(web, "GET", "/api/sync-failures", OTHER)
    assert [f["id"] for f in ws2["failures"]] == [theirs]
    assert (await _call(web, "GET", "/api/sync-failures", params={"limit": 0}))[0] == 422


async def _read_events(r: Any, into: list[tuple[str, Any]]) -> None:
    """Server-Sent Events of a response, as (event, data) pairs, until it ends."""
    event = None
    async for line in r.content:
        text = line.decode().rstrip("\n")
        if text.startswith("event: "):
            event = text[7:]
        elif text.startswith("data: "):
            into.append((event or "", orjson.loads(text[6:])))


async def test_the_stream_pushes_every_changed_lead_of_the_workspace_only(
        web: Pipeline) -> None:
    assert web.session is not None
    got: list[tuple[str, Any]] = []

    async def listen(token: str, into: list[tuple[str, Any]]) -> None:
        async with web.session.get(f"{web.base}/api/stream",  # type: ignore[union-attr]
                                   headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200 and r.content_type == "text/event-stream"
            await _read_events(r, into)

    theirs: list[tuple[str, Any]] = []
    tasks = [asyncio.create_task(listen(TOKEN, got)), asyncio.create_task(listen(OTHER, theirs))]
    try:
        for _ in range(100):
            if len(got) >= 1 and len(theirs) >= 1:
                break
            await asyncio.sleep(0.05)
        assert got[0][0] == "hello"
        await web.pool.execute(  # type: ignore[union-attr]
            "UPDATE leads SET message_count = 7, version = 2 WHERE lead_id = ANY($1)",
            [uuid.UUID(_id(1)), uuid.UUID(_id(2))])
        for _ in range(100):
            if len(got) >= 3:
                break
            await asyncio.sleep(0.05)
        leads = {d["lead_id"]: d for e, d in got if e == "lead"}
        assert set(leads) == {_id(1), _id(2)}
        assert leads[_id(1)]["message_count"] == 7 and leads[_id(1)]["inbox_url"]
        Lead.model_validate(leads[_id(2)])
        assert [e for e, _ in theirs] == ["hello"]  # nothing of ws1 leaks to ws2
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    async with web.session.get(f"{web.base}/api/stream",
                               headers={"Authorization": "Bearer nope"}) as r:
        assert r.status == 401


async def test_digest_is_computed_until_written_then_read_back(web: Pipeline) -> None:
    from datetime import time

    from leadstream.summarize.digest import Digests

    assert web.pool is not None
    await web.pool.execute(
        "INSERT INTO lead_status_history (event_id, lead_id, workspace_id, from_status,"
        " to_status, changed_by, actor, changed_at) VALUES ('h1', $1, 'ws1', 'new',"
        " 'qualified', 'human', 'Dewi', now())", uuid.UUID(_id(3)))
    today = datetime.now(UTC).astimezone(ZoneInfo("Asia/Jakarta")).date().isoformat()
    status, live = await _call(web, "GET", "/api/digest", params={"day": today})
    assert status == 200 and live["final"] is False
    facts = live["facts"]
    assert facts["waiting_total"] == 3 and [w["name"] for w in facts["waiting"]] == [
        "Lead 3", "Lead 2", "Lead 1"]
    assert facts["hot_total"] == 1 and facts["moves_total"] == 1
    assert "Lead 3 (baru → terkualifikasi, Dewi)" in live["content"]
    assert "3 lead menunggu balasan" in live["content"]
    digests = Digests(web.pool, "Asia/Jakarta", covers="today")
    late = datetime.now(UTC).replace(hour=23, minute=59)
    # before the configured time nothing is written; after it, once per workspace day
    assert await digests.write_due(time(23, 59, 59), now=late - timedelta(minutes=1)) == []
    from leadstream.summarize.digest import DigestService

    service = DigestService(lambda: web.pool, "Asia/Jakarta", time(0, 0), every=0.1,
                            covers="today")
    await service.start()
    try:
        for _ in range(100):
            if service.written == 2:
                break
            await asyncio.sleep(0.05)
    finally:
        await service.stop()
    assert service.written == 2  # ws1 and ws2, once each
    assert await digests.write_due(time(0, 0), now=datetime.now(UTC)) == []
    _, final = await _call(web, "GET", "/api/digest", params={"day": today})
    assert final["final"] is True and final["facts"]["waiting_total"] == 3
    assert final["writer"] == "builtin"
    _, theirs = await _call(web, "GET", "/api/digest", OTHER, params={"day": today})
    assert theirs["facts"]["waiting_total"] == 1 and theirs["facts"]["moves_total"] == 0
    assert (await _call(web, "GET", "/api/digest", params={"day": "kemarin"}))[0] == 422
    assert (await _call(web, "GET", "/api/digest", params={"day": "9999-12-31"}))[0] == 422
    _, old = await _call(web, "GET", "/api/digest", params={"day": "2020-01-01"})
    assert old["final"] is False and old["facts"]["new_leads"] == 0


async def test_a_feed_that_loses_postgres_tells_the_page_to_resync_and_carries_on(
        web: Pipeline) -> None:
    """The LISTEN connection is killed (a Postgres restart, a failover): every open stream
    gets `resync` (it may have missed changes), and changes after the reconnect flow again."""
    from leadstream.http.keys import FEED

    assert web.session is not None and web.server is not None and web.pool is not None
    feed = web.server.app[FEED]
    got: list[tuple[str, Any]] = []

    async def listen() -> None:
        async with web.session.get(f"{web.base}/api/stream",  # type: ignore[union-attr]
                                   headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            await _read_events(r, got)

    async def until(pred: Any) -> None:
        for _ in range(200):
            if pred():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"not seen; got {got}")

    task = asyncio.create_task(listen())
    try:
        await until(lambda: got and got[0][0] == "hello")
        killed = await web.pool.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'leadstream-live-feed'"
            " AND datname = current_database()")
        assert killed == 1
        await until(lambda: any(e == "resync" for e, _ in got))
        await until(feed.connected.is_set)
        await web.pool.execute("UPDATE leads SET message_count = 9, version = 3"
                               " WHERE lead_id = $1", uuid.UUID(_id(4)))
        await until(lambda: any(e == "lead" and d["lead_id"] == _id(4) for e, d in got))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_morning_digest_covers_yesterday_written_by_the_model_or_its_fallback(
        web: Pipeline) -> None:
    """The default: at 09:00 Jakarta time, over the previous calendar day, written by the
    language model when one is configured (its markdown removed), else or on its failure by
    the built-in text, with the reason recorded. The clock is fixed."""
    from datetime import time

    from aiohttp import web as aioweb
    from aiohttp.test_utils import TestServer

    from leadstream.summarize.digest import Digests
    from leadstream.summarize.llm import LLMSummarizer

    jkt = ZoneInfo("Asia/Jakarta")
    morning = datetime(2026, 11, 30, 9, 5, tzinfo=jkt)
    before = datetime(2026, 11, 30, 8, 55, tzinfo=jkt)
    assert web.pool is not None
    # yesterday (29 Nov, local): one new lead and a status move; today: another new lead
    await _insert(web, [
        _lead(11, created_at=datetime(2026, 11, 29, 15, 0, tzinfo=jkt), name="Pak Kemarin"),
        _lead(12, created_at=datetime(2026, 11, 30, 8, 0, tzinfo=jkt), name="Bu Hari Ini")])
    await web.pool.execute(
        "INSERT INTO lead_status_history (event_id, lead_id, workspace_id, from_status,"
        " to_status, changed_by, actor, changed_at) VALUES ('h-y', $1, 'ws1', 'new',"
        " 'qualified', 'human', 'Dewi', $2)", uuid.UUID(_id(11)),
        datetime(2026, 11, 29, 16, 0, tzinfo=jkt))

    answers: list[Any] = ["**Ringkasan 29 Nov**\n- 1 lead baru: Pak Kemarin.\n- Dewi memindahkan"
                          " Pak Kemarin ke terkualifikasi.", 500, 500, 500, 500]
    prompts: list[str] = []

    async def completions(request: aioweb.Request) -> aioweb.Response:
        body = await request.json()
        prompts.append(body["messages"][0]["content"])
        step = answers.pop(0)
        if isinstance(step, int):
            return aioweb.json_response({"error": "down"}, status=step)
        return aioweb.json_response({"choices": [{"message": {"content": step}}]})

    app = aioweb.Application()
    app.router.add_post("/v1/chat/completions", completions)
    server = TestServer(app)
    await server.start_server()
    model = LLMSummarizer("Asia/Jakarta", base_url=str(server.make_url("/v1")), model="m1",
                          api_key=None, backoff=0.01)
    try:
        digests = Digests(web.pool, "Asia/Jakarta", writer=model)  # the defaults
        assert digests.covered(morning) == digests.covered(before) == date(2026, 11, 29)
        assert await digests.write_due(time(9, 0), now=before) == []
        assert sorted(await digests.write_due(time(9, 0), now=morning)) == ["ws1", "ws2"]
        ws1 = await digests.get("ws1", date(2026, 11, 29))
        assert ws1["final"] is True and ws1["writer"] == "llm:m1"
        assert ws1["content"] == ("Ringkasan 29 Nov\n1 lead baru: Pak Kemarin.\nDewi memindahkan"
                                  " Pak Kemarin ke terkualifikasi.")
        assert ws1["facts"]["new_leads"] == 1 and ws1["facts"]["moves_total"] == 1
        assert all("tanpa markdown" in p for p in prompts)
        # the model failed for ws2 (every retry a 500): the built-in text, and why
        ws2 = await digests.get("ws2", date(2026, 11, 29))
        assert ws2["writer"].startswith("builtin (llm failed: gave up after 4 attempts")
        assert ws2["content"].startswith("Ringkasan tim 2026-11-29: 0 lead baru")
        # once per workspace day, whatever the clock says afterwards
        assert await digests.write_due(time(9, 0), now=morning + timedelta(hours=3)) == []
    finally:
        await model.close()
        await server.close()


async def test_phone_search_finds_a_lead_however_the_number_is_typed(web: Pipeline) -> None:
    """`q` with a number as people type it: national with the trunk 0, international with
    or without `+`, spaced and dashed, or a fragment; the same for "find duplicate", which
    searches through the list."""
    for typed in ("0812 0000 0003", "62812000 00003", "+62 812-0000-0003", "0812-00000003",
                  "000 00003"):
        status, page = await _call(web, "GET", "/api/leads", params={"q": typed})
        assert status == 200
        assert [lead["name"] for lead in page["leads"]] == ["Lead 3"], typed
    # text still searches as text; a number of another workspace is not found
    _, page = await _call(web, "GET", "/api/leads", params={"q": "Lead 4"})
    assert [lead["name"] for lead in page["leads"]] == ["Lead 4"]
    _, page = await _call(web, "GET", "/api/leads", params={"q": "0812 0000 0006"})
    assert page["leads"] == []
    # the phone a person typed for a lead is found too, and exported
    assert web.pool is not None
    await web.pool.execute("UPDATE leads SET contact_phone = '+6285700001111'"
                           " WHERE lead_id = $1", uuid.UUID(_id(4)))
    _, page = await _call(web, "GET", "/api/leads", params={"q": "0857-0000-1111"})
    assert [lead["name"] for lead in page["leads"]] == ["Lead 4"]
    _, text = await _call(web, "GET", "/api/leads.csv", params={"q": "0857 0000 1111"})
    rows = list(csv.reader(io.StringIO(text)))
    # the columns added later come last, so the ones before keep their places
    assert rows[0][-3:] == ["contact_phone", "owner", "tags"]
    assert rows[1][-3:] == ["+6285700001111", "", ""]


async def test_a_long_timeline_pages_to_its_first_item(web: Pipeline) -> None:
    """Issue #25: the detail stopped at fixed caps (50 messages); the timeline pages through
    all of a lead's messages, notes and status moves, newest first, items of equal time
    included, each exactly once; another workspace's token gets a 404."""
    assert web.pool is not None
    lid = uuid.UUID(_id(1))
    base = datetime(2026, 11, 1, tzinfo=UTC)
    want: list[tuple[str, str]] = []
    for i in range(240):
        at = base + timedelta(minutes=i // 3)  # three messages a minute: equal times
        await web.pool.execute(
            "INSERT INTO messages (message_id, lead_id, workspace_id, direction, type, text,"
            " sent_at, version) VALUES ($1, $2, 'ws1', 'inbound', 'text', $3, $4, 1)",
            f"wamid.tl.{i:03d}", lid, f"pesan {i}", at)
        want.append(("message", f"wamid.tl.{i:03d}"))
    for i in range(30):
        at = base + timedelta(minutes=i * 2)  # the same minutes as some messages
        await web.pool.execute(
            "INSERT INTO lead_notes (note_id, lead_id, workspace_id, author, author_type,"
            " content, created_at) VALUES ($1, $2, 'ws1', 'Dewi', 'human', 'catatan', $3)",
            f"note.tl.{i:02d}", lid, at)
        want.append(("note", f"note.tl.{i:02d}"))
    got: list[tuple[str, str]] = []
    times: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "37", **({"cursor": cursor} if cursor else {})}
        status, page = await _call(web, "GET", f"/api/leads/{lid}/timeline", params=params)
        assert status == 200, page
        got += [(x["kind"], x["id"]) for x in page["items"]]
        times += [x["at"] for x in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(got) == sorted(want) and len(got) == len(set(got)) == 270
    assert times == sorted(times, reverse=True) and pages == 8
    first = await _call(web, "GET", f"/api/leads/{lid}/timeline", params={"limit": "2"})
    assert [x["kind"] for x in first[1]["items"]] == ["message", "message"]
    assert first[1]["items"][0]["text"] == "pesan 239"
    assert (await _call(web, "GET", f"/api/leads/{lid}/timeline", OTHER))[0] == 404
    for bad in ({"limit": "0"}, {"limit": "501"}, {"cursor": "zz"}, {"limit": "x"}):
        assert (await _call(web, "GET", f"/api/leads/{lid}/timeline", params=bad))[0] == 422


async def test_a_stream_ends_once_its_token_is_revoked_and_streams_are_capped(
        web: Pipeline) -> None:
    """Issue #24: a stream opened before its token was revoked kept receiving; now it gets
    `revoked` and ends within the directory's reload period; a token holds at most
    STREAMS_PER_TOKEN streams (429 past it)."""
    from leadstream.db.registry import revoke
    from leadstream.http.api import STREAM_RECHECK, STREAMS_PER_TOKEN

    assert web.pool is not None and web.session is not None
    async with web.pool.acquire() as conn:
        await add_workspace(conn, workspace_id="ws1", phone_number_id=None, webhook_secret=None,
                            api_token="tok-leaving", role="human", user="Budi")
    got: list[tuple[str, Any]] = []

    async def listen() -> None:
        async with web.session.get(  # type: ignore[union-attr]
                f"{web.base}/api/stream", headers={"Authorization": "Bearer tok-leaving"}) as r:
            assert r.status == 200
            await _read_events(r, got)

    task = asyncio.create_task(listen())
    others: list[Any] = []
    try:
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.05)
        assert got[0][0] == "hello"
        # the cap: the ones beyond it are refused while these are open
        for _ in range(STREAMS_PER_TOKEN - 1):
            r = await web.session.get(f"{web.base}/api/stream",
                                      headers={"Authorization": "Bearer tok-leaving"})
            assert r.status == 200
            others.append(r)
        async with web.session.get(f"{web.base}/api/stream",
                                   headers={"Authorization": "Bearer tok-leaving"}) as r:
            assert r.status == 429 and r.headers["Retry-After"] == "5"
        async with web.pool.acquire() as conn:
            assert await revoke(conn, token="tok-leaving") == 1
        revoked_at = asyncio.get_running_loop().time()
        await asyncio.wait_for(task, 5.0 + STREAM_RECHECK + 3)  # the directory reloads every 5 s
        assert got[-1][0] == "revoked"
        assert asyncio.get_running_loop().time() - revoked_at < 5.0 + STREAM_RECHECK + 3
    finally:
        task.cancel()
        for r in others:
            r.close()


async def test_stalled_exports_of_a_large_workspace_starve_no_one(web: Pipeline) -> None:
    """Issue #24: clients that start a CSV download of 40,000 leads and never read it held
    the API pool's connections; now each export has its own connection, a workspace runs at
    most two at a time (429 past it), a client that takes no chunk within the write timeout
    is cut off, and another workspace's list answers throughout."""
    import socket

    from leadstream.http.keys import EXPORTS

    assert web.pool is not None and web.server is not None
    await web.pool.execute(
        "INSERT INTO leads (lead_id, workspace_id, lead_key, phone_e164, name, lead_status,"
        " created_at, updated_at, last_activity_at, version, story)"
        " SELECT gen_random_uuid(), 'ws1', 'ws1:+6281' || g, '+6281' || g, 'Lead ' || g,"
        " 'new', now(), now(), now(), 1, repeat('cerita panjang ', 20)"
        " FROM generate_series(10000000, 10039999) g")
    gate = web.server.app[EXPORTS]
    gate.write_timeout = 2.0
    port = web.server.port

    async def stalled() -> asyncio.StreamWriter:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        _, writer = await asyncio.open_connection(sock=sock)
        writer.write(f"GET /api/leads.csv HTTP/1.1\r\nHost: x\r\n"
                     f"Authorization: Bearer {TOKEN}\r\n\r\n".encode())
        await writer.drain()
        return writer

    held = [await stalled() for _ in range(2)]
    try:
        for _ in range(100):  # both exports running
            if gate.running.get("ws1") == 2:
                break
            await asyncio.sleep(0.05)
        assert gate.running.get("ws1") == 2
        status, _ = await _call(web, "GET", "/api/leads.csv")
        assert status == 429
        # another workspace works, and so does this one's list, while they stall
        for _ in range(5):
            started = asyncio.get_running_loop().time()
            assert (await _call(web, "GET", "/api/leads", OTHER))[0] == 200
            assert (await _call(web, "GET", "/api/leads", params={"limit": "5"}))[0] == 200
            assert asyncio.get_running_loop().time() - started < 2
            await asyncio.sleep(0.2)
        # the stalled ones are cut after the write timeout, and their connections closed
        for _ in range(100):
            if not gate.running:
                break
            await asyncio.sleep(0.1)
        assert gate.running == {}
        assert await web.pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'leadstream-export'"
        ) == 0
    finally:
        for w in held:
            w.close()


async def test_the_digest_reminds_of_overdue_tasks_and_has_the_days_figures(
        web: Pipeline) -> None:
    """Issue #29: the manager's digest lists the open tasks past due (with whose they are),
    counts those due by the day's end, and carries the team report's figures of the day:
    first-response median and p90, unanswered leads, conversions, and per person."""
    from leadstream.summarize.digest import Digests

    assert web.pool is not None
    now = datetime.now(UTC)
    day = now.astimezone(ZoneInfo("Asia/Jakarta")).date()
    start = datetime.combine(day, datetime.min.time(), tzinfo=ZoneInfo("Asia/Jakarta"))
    t0 = max(start + timedelta(minutes=1), now - timedelta(hours=1))
    # lead 1 (Dewi's) answered after 2 minutes, lead 2 after 10, lead 4 not yet
    await web.pool.execute("UPDATE leads SET owner = 'Dewi', created_at = $1"
                           " WHERE lead_key IN ('ws1:+6281200000001', 'ws1:+6281200000002')", t0)
    msgs = [("m1", 1, "inbound", t0), ("m1r", 1, "outbound", t0 + timedelta(minutes=2)),
            ("m2", 2, "inbound", t0), ("m2r", 2, "outbound", t0 + timedelta(minutes=10)),
            ("m4", 4, "inbound", t0)]
    for mid, i, direction, at in msgs:
        await web.pool.execute(
            "INSERT INTO messages (message_id, lead_id, workspace_id, direction, type, sent_at,"
            " version) VALUES ($1, $2, 'ws1', $3, 'text', $4, 1)",
            mid, uuid.UUID(_id(i)), direction, at)
    await web.pool.execute("UPDATE leads SET last_inbound_at = $1 WHERE lead_id = ANY($2)",
                           t0, [uuid.UUID(_id(i)) for i in (1, 2, 4)])
    await web.pool.execute(
        "INSERT INTO lead_status_history (event_id, lead_id, workspace_id, from_status,"
        " to_status, changed_by, actor, changed_at) VALUES ('conv1', $1, 'ws1', 'contacted',"
        " 'converted', 'human', 'Dewi', $2)", uuid.UUID(_id(1)), t0)
    for tid, i, due, done in (("T1", 1, now - timedelta(hours=3), None),
                              ("T2", 2, now - timedelta(minutes=5), None),
                              ("T3", 2, now - timedelta(hours=9), now),  # done: not a reminder
                              ("T4", 3, now + timedelta(days=9), None)):
        await web.pool.execute(
            "INSERT INTO lead_tasks (task_id, lead_id, workspace_id, text, due_at, owner,"
            " created_by, created_at, done_at) VALUES ($1, $2, 'ws1', $3, $4, 'Dewi', 'Dewi',"
            " $5, $6)", tid, uuid.UUID(_id(i)), f"telepon {tid}", due, now, done)
    got = await Digests(web.pool, "Asia/Jakarta", covers="today").get("ws1", day)
    f = got["facts"]
    assert (f["tasks_overdue_total"], f["tasks_due_today"]) == (2, 2)
    assert [(t["name"], t["text"]) for t in f["tasks_overdue"]] == [
        ("Lead 1", "telepon T1"), ("Lead 2", "telepon T2")]  # longest overdue first
    assert (f["first_response_answered"], f["first_response_unanswered"]) == (2, 1)
    assert (f["first_response_median_s"], f["first_response_p90_s"]) == (360, 552)
    assert f["conversions"] == 1
    text = got["content"]
    assert "Waktu balas pertama: median 6 mnt, p90 9 mnt (2 lead; 1 belum dibalas)." in text
    assert "1 lead menjadi pelanggan (converted)." in text
    assert "2 tugas terlambat: Lead 1: telepon T1 (Dewi), Lead 2: telepon T2 (Dewi)." in text
    assert "Per orang: Dewi: 2 baru, 1 converted, balas 6 mnt" in text
    # another workspace's digest says nothing of these
    theirs = (await Digests(web.pool, "Asia/Jakarta", covers="today").get("ws2", day))["facts"]
    assert theirs["tasks_overdue_total"] == 0 and theirs["conversions"] == 0
