"""Follow-up tasks and the team report through the pipeline (issue #29): a task goes through
the log like every change, with roles (401/403/404/422); the lists say what is overdue and
due today; done and undone record who; converting the lead closes what is open; the report
counts the day's new lead, its first-response time and the conversion; and a replay rebuilds
the tasks equal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from leadstream.db.registry import add_workspace
from leadstream.sink.replay import replay_and_verify
from tests.support.pipeline import TOKEN, Pipeline, eventually, table_checksums

DEWI, BUDI, SARAH, OTHER = "tok-task-dewi", "tok-task-budi", "tok-task-sarah", "tok-task-ws2"
#: 2025-10-09 15:53:20 in Jakarta
TS = 1_760_000_000


async def _people(p: Pipeline) -> None:
    assert p.pool is not None
    async with p.pool.acquire() as conn:
        for token, role, user, ws in ((DEWI, "human", "Dewi", "ws1"),
                                      (BUDI, "human", "Budi", "ws1"),
                                      (SARAH, "sarah-bot", None, "ws1"),
                                      (OTHER, "human", "Eko", "ws2")):
            await add_workspace(conn, workspace_id=ws, phone_number_id=None,
                                webhook_secret=None, api_token=token, role=role, user=user)


async def test_tasks_and_the_team_report_through_the_log(pipeline: Pipeline) -> None:
    p = pipeline
    await _people(p)
    assert await p.message("6281277700001", "wamid.task-in", ts=TS) == 200
    assert await p.message("6281277700001", "wamid.task-out", ts=TS + 90,
                           direction="outbound") == 200
    lid = str(await eventually(lambda: p.fetchval_or_none(
        "SELECT lead_id FROM leads WHERE phone_e164 = '+6281277700001'"
        " AND last_outbound_at IS NOT NULL"), timeout=60))
    base = f"/api/leads/{lid}"
    assert (await p.api("POST", base + "/assign", DEWI, {"owner": "me"}))[0] == 202

    now = datetime.now(UTC)
    past = (now - timedelta(hours=2)).isoformat()
    later = (now + timedelta(days=3)).isoformat()
    # who may, and what a task must be
    assert (await p.api("POST", base + "/tasks", None, {"text": "x"}))[0] == 401
    assert (await p.api("POST", base + "/tasks", OTHER, {"text": "x"}))[0] == 404
    assert (await p.api("POST", base + "/tasks", SARAH, {"text": "x"}))[0] == 403
    assert (await p.api("POST", base + "/tasks", DEWI, {"text": "   "}))[0] == 422
    assert (await p.api("POST", base + "/tasks", DEWI, {"text": "x", "owner": "Eko"}))[0] == 422
    status, err = await p.api("POST", base + "/tasks", DEWI,
                              {"text": "x", "due_at": "2026-12-01T10:00:00"})
    assert status == 422 and err["fields"][0]["loc"] == ["due_at"]  # a time zone is needed
    status, t1 = await p.api("POST", base + "/tasks", DEWI,
                             {"text": "Telepon soal katalog", "due_at": past, "owner": "me"})
    assert status == 202 and t1["task_id"]
    status, t2 = await p.api("POST", base + "/tasks", TOKEN,
                             {"text": "Kirim penawaran", "due_at": later, "owner": "Budi"})
    assert status == 202
    status, t3 = await p.api("POST", base + "/tasks", DEWI, {"text": "Tanya kabar"})
    assert status == 202

    await eventually(lambda: p.fetchval_or_none(
        "SELECT 1 FROM lead_tasks WHERE lead_id = $1::uuid HAVING count(*) = 3", lid),
        timeout=60)
    # the lists: Dewi's overdue call; due today includes it; all three for the lead
    status, mine = await p.api("GET", "/api/tasks?due=overdue&owner=me", DEWI)
    assert status == 200 and [t["task_id"] for t in mine["tasks"]] == [t1["task_id"]]
    got = mine["tasks"][0]
    assert (got["overdue"], got["lead_id"], got["owner"], got["created_by"]) == (
        True, lid, "Dewi", "Dewi")
    assert mine["counts"] == {"overdue": 1, "today": 1}
    assert (await p.api("GET", "/api/tasks?due=today&owner=Budi"))[1]["tasks"] == []
    status, everything = await p.api("GET", f"/api/tasks?due=all&lead_id={lid}")
    assert [t["task_id"] for t in everything["tasks"]] == [t1["task_id"], t2["task_id"],
                                                           t3["task_id"]]
    assert everything["tasks"][2]["owner"] == "Dewi"  # the lead's owner by default
    assert (await p.api("GET", "/api/tasks?due=someday"))[0] == 422
    assert (await p.api("GET", "/api/tasks?owner=me"))[0] == 422  # a shared token has no "me"
    assert (await p.api("GET", "/api/tasks", OTHER))[1]["tasks"] == []  # another workspace
    status, detail = await p.api("GET", base)
    assert status == 200 and len(detail["tasks"]) == 3

    # done and undone, who and when
    done_url = f"/api/tasks/{t1['task_id']}/done"
    assert (await p.api("POST", done_url, SARAH))[0] == 403
    assert (await p.api("POST", done_url, OTHER))[0] == 404
    assert (await p.api("POST", "/api/tasks/no-such-task/done"))[0] == 404
    assert (await p.api("POST", done_url, BUDI))[0] == 202
    await eventually(lambda: p.fetchval_or_none(
        "SELECT 1 FROM lead_tasks WHERE task_id = $1 AND done_by = 'Budi'", t1["task_id"]),
        timeout=60)
    assert (await p.api("POST", f"/api/tasks/{t1['task_id']}/undone", DEWI))[0] == 202
    await eventually(lambda: p.fetchval_or_none(
        "SELECT 1 FROM lead_tasks WHERE task_id = $1 AND done_at IS NULL AND version = 3",
        t1["task_id"]), timeout=60)
    assert (await p.api("GET", "/api/tasks?due=overdue", DEWI))[1]["counts"]["overdue"] == 1

    # converting the lead closes every open task, done by whoever converted it
    assert (await p.api("POST", base + "/status", DEWI,
                        {"status": "converted", "reason": "deal"}))[0] == 202

    async def closed() -> Any:
        rows = await p.fetch("SELECT task_id, done_by FROM lead_tasks WHERE lead_id = $1::uuid"
                             " AND done_at IS NOT NULL", lid)
        return rows if len(rows) == 3 else None

    assert {r["done_by"] for r in await eventually(closed, timeout=60)} == {"Dewi"}
    notes = [r["content"] for r in await p.fetch(
        "SELECT content FROM lead_notes WHERE lead_id = $1::uuid ORDER BY created_at", lid)]
    assert notes[-1] == ("3 tugas terbuka ditutup karena lead converted / 3 open task(s) "
                         "closed: the lead is converted")
    assert sum(n.startswith("Tugas baru / new task") for n in notes) == 3
    assert (await p.api("GET", "/api/tasks?due=all&done=false"))[1]["tasks"] == []

    # the report: the day of the first contact, and today's conversion
    status, day = await p.api("GET", "/api/reports/team?from=2025-10-09&to=2025-10-09", DEWI)
    assert status == 200
    [cell] = day["days"][0]["owners"]
    assert (cell["owner"], cell["new_leads"], cell["first_response"]["answered"],
            cell["first_response"]["median_seconds"], cell["first_response"]["p90_seconds"]) == (
        "Dewi", 1, 1, 90, 90)
    status, now_report = await p.api("GET", "/api/reports/team", DEWI)
    today = datetime.now(ZoneInfo(p.settings.timezone)).date()
    assert status == 200 and now_report["to"] == today.isoformat()
    assert now_report["from"] == (today - timedelta(days=13)).isoformat()
    assert now_report["total"]["conversions"] == 1
    assert now_report["owners"] == [{**now_report["owners"][0], "owner": "Dewi"}]
    assert (await p.api("GET", "/api/reports/team?from=2026-12-02&to=2026-12-01"))[0] == 422
    assert (await p.api("GET", "/api/reports/team?from=2024-01-01&to=2026-01-01"))[0] == 422
    assert (await p.api("GET", "/api/reports/team", None))[0] == 401
    assert (await p.api("GET", "/api/reports/team", OTHER))[1]["total"]["new_leads"] == 0

    # the log holds it all: a replay rebuilds the same rows
    before = await table_checksums(p)
    verified = await replay_and_verify(p.settings)
    assert verified["equal"], verified["tables"]
    assert verified["tables"]["lead_tasks"]["live"][0] == 3
    assert await table_checksums(p) == before
