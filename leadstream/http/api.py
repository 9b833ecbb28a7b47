"""Bot and operator API (contract §2): bearer token -> one workspace and a role.

Writes validate with pydantic (422 with field errors), go to the broker as commands and
answer 202 once acknowledged. Reads come from the Postgres replica. Another workspace's lead
answers 404, not 403, so ids do not leak across workspaces.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, TypeVar

import asyncpg
import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from leadstream.db.leads import ACTIVE, NEEDS_REPLY
from leadstream.db.leads import status_counts as lead_status_counts
from leadstream.db.registry import TokenEntry, token_hash
from leadstream.db.reports import report as team_report_of
from leadstream.db.tasks import TASK_COUNTS_SQL
from leadstream.db.watermarks import watermarks
from leadstream.domain.days import day_of
from leadstream.domain.identity import lead_key as make_lead_key
from leadstream.domain.model import Command, SarahUpdate
from leadstream.domain.phone import InvalidPhone, normalize_phone
from leadstream.domain.reports import MAX_REPORT_DAYS
from leadstream.domain.tasks import due_before
from leadstream.domain.team import SARAH_MAX_TAG_CHANGES
from leadstream.http.export import TooManyExports
from leadstream.http.keys import (
    CLOCK,
    DIGESTS,
    DIRECTORY,
    EXPORTS,
    FEED,
    POOL,
    TIMEZONE,
    TOPICS,
    WRITE_POOL,
)
from leadstream.http.models import (
    AssignIn,
    LeadEditIn,
    LeadQuery,
    MergeIn,
    NoteIn,
    SarahStateIn,
    StatusIn,
    SyncFailureQuery,
    TagsIn,
    TaskIn,
    TaskQuery,
    TeamReportQuery,
)
from leadstream.http.queries import (
    CSV_COLUMNS,
    FAMILY_SQL,
    TIMELINE_SQL,
    csv_cell,
    lead_list_sql,
    lead_out,
    next_cursor,
    row_out,
    task_list_sql,
    task_out,
    timeline_args,
    timeline_cursor,
    timeline_item,
)
from leadstream.http.webhooks import publish_or_503, read_request_body
from leadstream.streams.records import encode

log = logging.getLogger(__name__)

IDEMPOTENCY_NS = uuid.UUID("0b6d1c1e-3f0e-5a44-9f2c-7d3b9c1a2e55")


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None
          ) -> web.Response:
    return web.Response(body=orjson.dumps(data, option=orjson.OPT_NAIVE_UTC),
                        status=status, content_type="application/json", headers=headers)


def _unprocessable(errors: Sequence[Mapping[str, Any]]) -> web.Response:
    return _json({"error": "invalid body", "fields": [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
        for e in errors]}, status=422)


async def _auth(request: web.Request) -> TokenEntry:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not header[7:].strip():
        raise web.HTTPUnauthorized(text='{"error": "missing bearer token"}',
                                   content_type="application/json")
    entry = await request.app[DIRECTORY].token(header[7:].strip())
    if entry is None:
        raise web.HTTPUnauthorized(text='{"error": "invalid token"}',
                                   content_type="application/json")
    return entry


async def _body(request: web.Request, model: type[BaseModel]) -> BaseModel | web.Response:
    try:
        raw = await read_request_body(request)
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        return _unprocessable(exc.errors(include_url=False))


def _event_id(request: web.Request, endpoint: str, lead_key: str) -> str:
    """The command's event id: from `X-Idempotency-Key` when given, scoped to the lead and
    the endpoint (the same key on two leads' notes, or on a note and a status move of one
    lead, names two commands, not one), else random."""
    key = request.headers.get("X-Idempotency-Key")
    if key:
        return str(uuid.uuid5(IDEMPOTENCY_NS, f"{lead_key}\x1f{endpoint}\x1f{key}"))
    return str(uuid.uuid4())


async def _publish(request: web.Request, topic: str, key: str, value: bytes) -> None:
    await publish_or_503(request, [(topic, key.encode(), value)])


def _require_role(tok: TokenEntry, allowed: tuple[str, ...]) -> None:
    """Roles per endpoint (contract §2): `sarah-bot` posts Sarah's extractions; `human` and
    `brain-bot` edit, note and move statuses; any role reads. Otherwise 403."""
    if tok.role not in allowed:
        raise web.HTTPForbidden(
            text=orjson.dumps({"error": f"a {tok.role} token may not do this; allowed: "
                                        + ", ".join(allowed)}).decode(),
            content_type="application/json")


def _region(request: web.Request, tok: TokenEntry) -> str:
    """The workspace's phone region (its numbers'), where a national number typed by a
    person is read: Sarah's contact phone, a person's phone edit, a phone search."""
    entry = next((n for n in request.app[DIRECTORY].numbers.values()
                  if n.workspace_id == tok.workspace_id), None)
    return entry.region if entry else "ID"


async def sarah_state(request: web.Request) -> web.Response:
    tok = await _auth(request)
    _require_role(tok, ("sarah-bot",))
    body = await _body(request, SarahStateIn)
    if isinstance(body, web.Response):
        return body
    assert isinstance(body, SarahStateIn)
    try:
        phone = normalize_phone(body.contact_phone, _region(request, tok))
    except InvalidPhone as exc:
        return _unprocessable([{"loc": ("contact_phone",), "msg": str(exc),
                                "type": "phone_invalid"}])
    key = make_lead_key(tok.workspace_id, phone)
    up = SarahUpdate(
        event_id=_event_id(request, "sarah", key), workspace_id=tok.workspace_id,
        lead_key=key, identity=phone, phone_e164=phone, occurred_at=datetime.now(UTC),
        chat_phase=body.phase, extracted=body.extracted_data, lead_score=body.lead_score,
        lead_temperature=body.lead_temperature,
    )
    await _publish(request, request.app[TOPICS].sarah, key, encode(up))
    # `success`, `sync`, `syncReason`: what the old endpoint answered (its callers read them)
    return _json({"accepted": True, "event_id": up.event_id, "lead_key": key,
                  "success": True, "sync": "queued", "syncReason": None,
                  "ignored": body.ignored}, status=202)


async def _lead_key_of(request: web.Request, tok: TokenEntry) -> str:
    try:
        lead_id = uuid.UUID(request.match_info["lead_id"])
    except ValueError as exc:
        raise web.HTTPNotFound(text='{"error": "unknown lead"}',
                               content_type="application/json") from exc
    key = await request.app[POOL].fetchval(
        "SELECT lead_key FROM leads WHERE lead_id = $1 AND workspace_id = $2",
        lead_id, tok.workspace_id)
    if key is None:
        raise web.HTTPNotFound(text='{"error": "unknown lead"}', content_type="application/json")
    return str(key)


#: who may send each command: Sarah may add notes to the timeline, as the old system let her
COMMAND_ROLES: dict[str, tuple[str, ...]] = {
    "edit": ("human", "brain-bot"), "status": ("human", "brain-bot"),
    "note": ("human", "brain-bot", "sarah-bot"),
    # the team's workflow (issue #29): Sarah may label a lead, not give it to someone
    "assign": ("human", "brain-bot"), "tags": ("human", "brain-bot", "sarah-bot"),
    "task": ("human", "brain-bot"), "task_done": ("human", "brain-bot"),
    "task_undone": ("human", "brain-bot"),
}

CommandKind = Literal["edit", "note", "status", "assign", "tags", "task", "task_done",
                      "task_undone"]


def _person(request: web.Request, tok: TokenEntry, name: str | None
            ) -> str | web.Response | None:
    """A person named in a body: `me` is the token's; anyone else must be one of the
    workspace's people (`workspace add --user`), else 422."""
    person = tok.user if name == "me" else name
    people = request.app[DIRECTORY].people(tok.workspace_id)
    if name is not None and person not in people:
        return _unprocessable([{"loc": ("owner",), "msg": (
            "not a person of this workspace (workspace add --user): "
            + (", ".join(people) or "it has none")), "type": "unknown_person"}])
    return person


def command_author(tok: TokenEntry, claimed: str | None) -> str:
    """Who a change is shown as: a personal token's person; a bot's role (`sarah-bot`,
    `brain-bot`: a bot cannot sign as someone else); a shared human token's `author` as
    the body gives it, else `human`."""
    if tok.user:
        return tok.user
    if tok.role != "human":
        return tok.role
    return claimed or tok.role


async def _command(request: web.Request, kind: CommandKind, model: type[BaseModel] | None,
                   *, task_id: str | None = None) -> web.Response:
    """A command on one lead: the lead in the path, or the task `task_id`'s lead."""
    tok = await _auth(request)
    _require_role(tok, COMMAND_ROLES[kind])
    key = (await _lead_key_of(request, tok) if task_id is None
           else await _task_lead_key(request, tok, task_id))
    body = await _body(request, model) if model is not None else None
    if isinstance(body, web.Response):
        return body
    event_id = _event_id(request, kind, key)
    fields: dict[str, Any] = {}
    if isinstance(body, LeadEditIn):
        fields["edit_fields"] = sorted(body.model_fields_set)
        fields["name"] = body.name
        if body.phone:
            try:
                fields["phone"] = normalize_phone(body.phone, _region(request, tok))
            except InvalidPhone as exc:
                return _unprocessable([{"loc": ("phone",), "msg": str(exc),
                                        "type": "phone_invalid"}])
    elif isinstance(body, NoteIn):
        fields["content"] = body.content
    elif isinstance(body, StatusIn):
        fields["status"] = body.status
        fields["reason"] = body.reason
    elif isinstance(body, AssignIn | TaskIn):
        owner = _person(request, tok, body.owner)
        if isinstance(owner, web.Response):
            return owner
        fields["owner"] = owner
        if isinstance(body, TaskIn):
            fields.update(task_id=event_id, content=body.text, due_at=body.due_at)
    elif isinstance(body, TagsIn):
        if tok.role == "sarah-bot" and len(body.add) + len(body.remove) > SARAH_MAX_TAG_CHANGES:
            return _unprocessable([{"loc": ("add",), "msg": (
                f"the Sarah bot changes at most {SARAH_MAX_TAG_CHANGES} tags a request"),
                "type": "too_many"}])
        fields["tags_add"] = body.add
        fields["tags_remove"] = body.remove
    if task_id is not None:
        fields["task_id"] = task_id
    author = command_author(tok, getattr(body, "author", None))
    cmd = Command(event_id=event_id, workspace_id=tok.workspace_id,
                  lead_key=key, occurred_at=datetime.now(UTC), kind=kind,
                  actor_role=tok.role,  # type: ignore[arg-type]
                  author=author, actor=tok.user, **fields)
    await _publish(request, request.app[TOPICS].commands, key, encode(cmd))
    answer = {"accepted": True, "event_id": cmd.event_id}
    if kind == "task":
        answer["task_id"] = event_id
    return _json(answer, status=202)


async def edit_lead(request: web.Request) -> web.Response:
    return await _command(request, "edit", LeadEditIn)


async def add_note(request: web.Request) -> web.Response:
    return await _command(request, "note", NoteIn)


async def set_status(request: web.Request) -> web.Response:
    return await _command(request, "status", StatusIn)


async def assign_lead(request: web.Request) -> web.Response:
    return await _command(request, "assign", AssignIn)


async def tag_lead(request: web.Request) -> web.Response:
    return await _command(request, "tags", TagsIn)


async def add_task(request: web.Request) -> web.Response:
    return await _command(request, "task", TaskIn)


async def _task_lead_key(request: web.Request, tok: TokenEntry, task_id: str) -> str:
    """The key of the lead a task follows up (the command goes to its partition; a merged
    duplicate's key forwards to the survivor)."""
    key = await request.app[POOL].fetchval(
        "SELECT l.lead_key FROM lead_tasks t JOIN leads l ON l.lead_id = t.lead_id"
        " WHERE t.task_id = $1 AND t.workspace_id = $2", task_id, tok.workspace_id)
    if key is None:
        raise web.HTTPNotFound(text='{"error": "unknown task"}', content_type="application/json")
    return str(key)


async def task_done(request: web.Request) -> web.Response:
    return await _command(request, "task_done", None, task_id=request.match_info["task_id"])


async def task_undone(request: web.Request) -> web.Response:
    return await _command(request, "task_undone", None, task_id=request.match_info["task_id"])


async def list_tasks(request: web.Request) -> web.Response:
    """Tasks of the workspace with their leads (`http.models.TaskQuery`), and the open ones
    overdue and due today for the same owner (the header's count)."""
    tok = await _auth(request)
    tq = _query(request, TaskQuery)
    if isinstance(tq, web.Response):
        return tq
    owner = tok.user if tq.owner == "me" else tq.owner
    if tq.owner == "me" and owner is None:
        return _unprocessable([{"loc": ("owner",), "msg": "`me` needs a personal token",
                                "type": "no_person"}])
    now = request.app[CLOCK].now()
    tz = request.app[TIMEZONE]
    before = due_before(tq.due, now, tz)
    done = tq.done if tq.due == "all" else False
    sql, args = task_list_sql(tok.workspace_id, owner=owner, done=done, due_before=before,
                              lead_ids=[tq.lead_id] if tq.lead_id else None, limit=tq.limit)
    pool = request.app[POOL]
    rows = await pool.fetch(sql, *args)
    counts = await pool.fetchrow(TASK_COUNTS_SQL, tok.workspace_id, now,
                                 due_before("today", now, tz), owner)
    return _json({"tasks": [task_out(r, now) for r in rows],
                  "counts": {"overdue": int(counts["overdue"]), "today": int(counts["today"])}})


async def team_report(request: web.Request) -> web.Response:
    """`GET /api/reports/team`: the figures `domain.reports` defines, from the replica."""
    tok = await _auth(request)
    rq = _query(request, TeamReportQuery)
    if isinstance(rq, web.Response):
        return rq
    tz = request.app[TIMEZONE]
    end = rq.date_to or day_of(request.app[CLOCK].now(), tz)
    start = rq.date_from or end - timedelta(days=13)
    if start > end or (end - start).days >= MAX_REPORT_DAYS:
        return _unprocessable([{"loc": ("from",), "type": "range", "msg": (
            f"`from` must be on or before `to`, at most {MAX_REPORT_DAYS} days")}])
    return _json(await team_report_of(request.app[POOL], tok.workspace_id, start, end, tz))


async def people(request: web.Request) -> web.Response:
    """Who a lead may be assigned to: the workspace's people (any role may read)."""
    tok = await _auth(request)
    return _json({"people": request.app[DIRECTORY].people(tok.workspace_id)})


def _query_errors(exc: ValidationError) -> web.Response:
    return _unprocessable([{"loc": ("query", *e["loc"]), "msg": e["msg"], "type": e["type"]}
                           for e in exc.errors(include_url=False, include_context=False)])


Q = TypeVar("Q", bound=BaseModel)


def _query(request: web.Request, model: type[Q]) -> Q | web.Response:
    """The request's query string as `model`, or the 422 naming each bad parameter."""
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        return _query_errors(exc)


def _inbox(request: web.Request, tok: TokenEntry) -> str | None:
    return request.app[DIRECTORY].inbox_urls.get(tok.workspace_id)


def _lead_query(request: web.Request, tok: TokenEntry, *, paged: bool = True
                ) -> tuple[LeadQuery, str, list[Any]] | web.Response:
    try:
        lq = LeadQuery.model_validate(dict(request.query))
        if lq.owner == "me":  # the token's person; a token of no one has no leads of its own
            if not tok.user:
                return _unprocessable([{"loc": ("query", "owner"), "msg": (
                    "`me` needs a personal token (workspace add --user)"),
                    "type": "value_error"}])
            lq = lq.model_copy(update={"owner": tok.user})
        sql, args = lead_list_sql(tok.workspace_id, lq, paged=paged,
                                  region=_region(request, tok))
    except ValidationError as exc:
        return _query_errors(exc)
    except (ValueError, IndexError, TypeError):
        return _unprocessable([{"loc": ("query", "cursor"), "msg": "bad cursor",
                                "type": "value_error"}])
    return lq, sql, args


async def list_leads(request: web.Request) -> web.Response:
    """Filters, sort and keyset pagination (`cursor` = last row's sort value and lead_id)."""
    tok = await _auth(request)
    got = _lead_query(request, tok)
    if isinstance(got, web.Response):
        return got
    lq, sql, args = got
    rows = await request.app[POOL].fetch(sql, *args)
    more = len(rows) > lq.limit
    rows = rows[:lq.limit]
    pattern = _inbox(request, tok)
    return _json({"leads": [lead_out(r, pattern) for r in rows],
                  "next_cursor": next_cursor(dict(rows[-1])) if more and rows else None})


#: rows fetched per round trip while exporting
CSV_CHUNK = 500


async def export_leads(request: web.Request) -> web.StreamResponse:
    """The filtered list as CSV, whole (not a page), streamed from a server-side cursor in
    one snapshot so a list of 100k leads costs neither memory nor a consistent view."""
    tok = await _auth(request)
    got = _lead_query(request, tok, paged=False)
    if isinstance(got, web.Response):
        return got
    _, sql, args = got
    pattern = _inbox(request, tok)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    resp = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="leads-{tok.workspace_id[:40]}-{stamp}.csv"'})
    buf = io.StringIO()
    out = csv.writer(buf)
    out.writerow(CSV_COLUMNS)
    gate = request.app[EXPORTS]

    async def write(data: bytes) -> None:
        # a client that does not take a chunk in time is cut off (http.export)
        await asyncio.wait_for(resp.write(data), gate.write_timeout)

    try:
        async with gate.connection(tok.workspace_id) as conn, conn.transaction(readonly=True):
            cur = await conn.cursor(sql, *args)
            rows = await cur.fetch(CSV_CHUNK)  # a failure before the first byte is a clean 503
            await resp.prepare(request)
            await write(b"\xef\xbb\xbf")  # BOM: spreadsheets then read UTF-8 names right
            try:
                while rows:
                    for r in rows:
                        lead = lead_out(r, pattern)
                        out.writerow([csv_cell(lead.get(c)) for c in CSV_COLUMNS])
                    await write(buf.getvalue().encode())
                    buf.seek(0)
                    buf.truncate()
                    rows = await cur.fetch(CSV_CHUNK)
            except (OSError, TimeoutError, asyncpg.PostgresError,
                    asyncpg.InterfaceError) as exc:
                # the status is sent: cut the connection so the download fails visibly
                # instead of ending like a complete (but short) file
                log.warning("CSV export of %s cut: %r", tok.workspace_id, exc)
                if request.transport is not None:
                    request.transport.abort()
                return resp
    except TooManyExports:
        return _json({"error": "too many exports running for this workspace; retry"},
                     status=429, headers={"Retry-After": "10"})
    await write(buf.getvalue().encode())
    await resp.write_eof()
    return resp


async def status_counts(request: web.Request) -> web.Response:
    """Leads per status for the pipeline header (every status present, zeros included), and
    how many wait for a reply."""
    tok = await _auth(request)
    pool = request.app[POOL]
    counts = await lead_status_counts(pool, tok.workspace_id)
    waiting = await pool.fetchval(
        f"SELECT count(*) FROM leads WHERE workspace_id = $1 AND {ACTIVE} AND {NEEDS_REPLY}",
        tok.workspace_id)
    return _json({"counts": counts, "total": sum(counts.values()), "needs_reply": int(waiting)})


async def get_lead(request: web.Request) -> web.Response:
    tok = await _auth(request)
    pool = request.app[POOL]
    try:
        lead_id = uuid.UUID(request.match_info["lead_id"])
    except ValueError:
        return _json({"error": "unknown lead"}, status=404)
    lead = await pool.fetchrow("SELECT * FROM leads WHERE lead_id = $1 AND workspace_id = $2",
                               lead_id, tok.workspace_id)
    if lead is None:
        return _json({"error": "unknown lead"}, status=404)
    # the lead and every lead merged into it (down its merge chains): their rows are its rows
    family = await pool.fetch(FAMILY_SQL, lead_id, tok.workspace_id)
    ids = [lead_id, *(r["lead_id"] for r in family)]
    notes = await pool.fetch("SELECT * FROM lead_notes WHERE lead_id = ANY($1)"
                             " ORDER BY created_at DESC LIMIT 200", ids)
    history = await pool.fetch("SELECT * FROM lead_status_history WHERE lead_id = ANY($1)"
                               " ORDER BY changed_at DESC LIMIT 200", ids)
    daily = await pool.fetch("SELECT * FROM lead_daily_activity WHERE lead_id = ANY($1)"
                             " ORDER BY day DESC, lead_id LIMIT 90", ids)
    messages = await pool.fetch("SELECT * FROM messages WHERE lead_id = ANY($1)"
                                " ORDER BY sent_at DESC LIMIT 50", ids)
    sql, args = task_list_sql(tok.workspace_id, owner=None, done=None, due_before=None,
                              lead_ids=ids, limit=200)
    now = request.app[CLOCK].now()
    tasks = [task_out(t, now) for t in await pool.fetch(sql, *args)]
    pattern = _inbox(request, tok)
    return _json({"lead": lead_out(lead, pattern),
                  "notes": [row_out(n) for n in notes],
                  "status_history": [row_out(h) for h in history],
                  "daily_summaries": [row_out(d) for d in daily],
                  "messages": [row_out(m) for m in messages],
                  "tasks": tasks,
                  "merged": [lead_out(r, pattern) for r in family]})


#: items per timeline page at most
TIMELINE_MAX = 500


async def lead_timeline(request: web.Request) -> web.Response:
    """`GET /api/leads/{lead_id}/timeline?limit=N&cursor=C`: all of a lead's messages, notes
    and status moves (its merged duplicates' too), newest first, page by page to the first;
    `next_cursor` is null on the last page. The detail (`GET /api/leads/{id}`) keeps its
    newest items; this is how the page reads the rest."""
    tok = await _auth(request)
    pool = request.app[POOL]
    try:
        lead_id = uuid.UUID(request.match_info["lead_id"])
        limit = int(request.query.get("limit", "100"))
        at, kind, item_id = timeline_args(request.query.get("cursor"))
    except ValueError as exc:
        return _unprocessable([{"loc": ("query",), "msg": str(exc), "type": "value_error"}])
    if not 1 <= limit <= TIMELINE_MAX:
        return _unprocessable([{"loc": ("query", "limit"), "msg": f"1 to {TIMELINE_MAX}",
                                "type": "range"}])
    if not await pool.fetchval("SELECT 1 FROM leads WHERE lead_id = $1 AND workspace_id = $2",
                               lead_id, tok.workspace_id):
        return _json({"error": "unknown lead"}, status=404)
    family = await pool.fetch(FAMILY_SQL, lead_id, tok.workspace_id)
    ids = [lead_id, *(r["lead_id"] for r in family)]
    rows = await pool.fetch(TIMELINE_SQL, ids, at, kind, item_id, limit + 1)
    page = rows[:limit]
    return _json({"items": [timeline_item(r) for r in page],
                  "next_cursor": timeline_cursor(page[-1]) if len(rows) > limit else None})


async def merge_leads(request: web.Request) -> web.Response:
    """Merge the duplicate into the lead in the path (irreversible). The command goes to
    the duplicate's key, so it is ordered with the duplicate's own records; the worker then
    hands the duplicate's state to the survivor (`domain.merge`). 404 for a lead of another
    workspace, 409 when either lead is merged already, 422 for a lead merged into itself."""
    tok = await _auth(request)
    _require_role(tok, ("human", "brain-bot"))
    try:
        survivor_id = uuid.UUID(request.match_info["lead_id"])
    except ValueError:
        return _json({"error": "unknown lead"}, status=404)
    body = await _body(request, MergeIn)
    if isinstance(body, web.Response):
        return body
    assert isinstance(body, MergeIn)
    if body.duplicate_lead_id == survivor_id:
        return _unprocessable([{"loc": ("duplicate_lead_id",), "type": "value_error",
                                "msg": "a lead cannot be merged into itself"}])
    rows = {r["lead_id"]: r for r in await request.app[POOL].fetch(
        "SELECT lead_id, lead_key, merged_into FROM leads WHERE workspace_id = $1"
        " AND lead_id = ANY($2)", tok.workspace_id, [survivor_id, body.duplicate_lead_id])}
    survivor, duplicate = rows.get(survivor_id), rows.get(body.duplicate_lead_id)
    if survivor is None:
        return _json({"error": "unknown lead"}, status=404)
    if duplicate is None:
        return _json({"error": "unknown duplicate lead"}, status=404)
    for r, what in ((survivor, "the lead"), (duplicate, "the duplicate")):
        if r["merged_into"] is not None:
            return _json({"error": f"{what} is already merged into {r['merged_into']}"},
                         status=409)
    key = str(duplicate["lead_key"])
    cmd = Command(event_id=_event_id(request, "merge", key), workspace_id=tok.workspace_id,
                  lead_key=key, occurred_at=datetime.now(UTC), kind="merge",
                  actor_role=tok.role,  # type: ignore[arg-type]
                  author=_actor(tok), actor=tok.user, reason=body.reason,
                  target_key=str(survivor["lead_key"]))
    await _publish(request, request.app[TOPICS].commands, key, encode(cmd))
    return _json({"accepted": True, "event_id": cmd.event_id}, status=202)


async def me(request: web.Request) -> web.Response:
    """Who the token is: the page shows the person signed in and builds inbox links."""
    tok = await _auth(request)
    return _json({"workspace_id": tok.workspace_id, "role": tok.role, "user": tok.user,
                  "inbox_url_pattern": _inbox(request, tok),
                  # the page shows times in the workspace's zone, not the browser's
                  "timezone": request.app[DIGESTS].tz})


#: seconds between keep-alive comments on an idle stream (proxies close silent connections)
STREAM_KEEPALIVE = 15.0


#: how often an open stream checks that its token still stands (the directory reloads about
#: as often), and how many streams one token may hold open
STREAM_RECHECK = 2.0
STREAMS_PER_TOKEN = 8
#: open streams per token hash (this process)
_OPEN_STREAMS: dict[str, int] = {}


async def stream(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events of the token's workspace: `event: lead` with the lead as
    `GET /api/leads` shows it, for every change of a lead row; `event: resync` when the
    stream may have a gap (reload the list). Authenticated by the bearer header, like every
    endpoint (the page reads it with fetch, not EventSource, which cannot send one).

    A stream follows its token (issue #24): once the token is revoked it gets
    `event: revoked` and ends, within the directory's reload period and `STREAM_RECHECK`;
    one token holds at most `STREAMS_PER_TOKEN` streams (429 past it)."""
    tok = await _auth(request)
    held = token_hash(request.headers["Authorization"][7:].strip())
    if _OPEN_STREAMS.get(held, 0) >= STREAMS_PER_TOKEN:
        return _json({"error": f"at most {STREAMS_PER_TOKEN} open streams per token"},
                     status=429, headers={"Retry-After": "5"})
    _OPEN_STREAMS[held] = _OPEN_STREAMS.get(held, 0) + 1
    directory = request.app[DIRECTORY]
    feed = request.app[FEED]
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    sub = feed.subscribe(tok.workspace_id)
    loop = asyncio.get_running_loop()
    try:
        await resp.prepare(request)
        await resp.write(b"retry: 1000\nevent: hello\ndata: {}\n\n")
        written = loop.time()
        while True:
            try:
                event, data = await asyncio.wait_for(sub.queue.get(), STREAM_RECHECK)
            except TimeoutError:
                if held not in directory.tokens:
                    await resp.write(b"event: revoked\ndata: {}\n\n")
                    break
                if loop.time() - written >= STREAM_KEEPALIVE:
                    await resp.write(b": keep-alive\n\n")
                    written = loop.time()
                continue
            if event == "close" or held not in directory.tokens:
                if event != "close":
                    await resp.write(b"event: revoked\ndata: {}\n\n")
                break
            chunk = [f"event: {event}\ndata: ".encode() + orjson.dumps(
                data, option=orjson.OPT_NAIVE_UTC) + b"\n\n"]
            while not sub.queue.empty() and len(chunk) < 500:  # a burst in one write
                event, data = sub.queue.get_nowait()
                if event == "close":
                    break
                chunk.append(f"event: {event}\ndata: ".encode() + orjson.dumps(
                    data, option=orjson.OPT_NAIVE_UTC) + b"\n\n")
            await resp.write(b"".join(chunk))
            written = loop.time()
            if event == "close":
                break
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        feed.unsubscribe(sub)
        left = _OPEN_STREAMS.get(held, 1) - 1
        if left > 0:
            _OPEN_STREAMS[held] = left
        else:
            _OPEN_STREAMS.pop(held, None)
    return resp


def _actor(tok: TokenEntry) -> str:
    return tok.user or tok.role


async def sync_failures(request: web.Request) -> web.Response:
    """The workspace's dead letters, newest first (open ones by default)."""
    tok = await _auth(request)
    q = _query(request, SyncFailureQuery)
    if isinstance(q, web.Response):
        return q
    pool = request.app[POOL]
    cond = "resolved_at IS NULL" if q.resolved is False else (
        "resolved_at IS NOT NULL" if q.resolved else "true")
    rows = await pool.fetch(
        f"SELECT {FAILURE_FIELDS} FROM sync_failures WHERE workspace_id = $1 AND {cond}"
        f" ORDER BY failed_at DESC, id DESC LIMIT {q.limit}", tok.workspace_id)
    n_open = await pool.fetchval("SELECT count(*) FROM sync_failures WHERE workspace_id = $1"
                                 " AND resolved_at IS NULL", tok.workspace_id)
    failing = [{k: m[k] for k in ("phone_number_id", "complete_until", "failures", "last_error")}
               for m in await watermarks(pool, tok.workspace_id) if m["failing"]]
    return _json({"failures": [_failure(r) for r in rows], "open": int(n_open),
                  "reconcile_failing": failing})


#: a dead letter as the API answers it (`models.SyncFailure`; `b64`: enough for the preview)
FAILURE_FIELDS = ("id, event_id, stage, reason, source_topic, source_partition, source_offset,"
                  " failed_at, resolved_at, resolved_by, left(original_b64, 700) AS b64")


def _failure(r: Any) -> dict[str, Any]:
    d = dict(r)
    raw = d.pop("b64", None) or d.pop("original_b64", None) or ""
    try:
        preview = base64.b64decode(raw[: len(raw) - len(raw) % 4])[:500]
    except ValueError:
        preview = b""
    d["original_preview"] = preview.decode("utf-8", "replace")
    return d


async def resolve_sync_failure(request: web.Request) -> web.Response:
    """Mark a dead letter handled, recording who and when. Dead letters are the operator's
    worklist in the replica (a replay rebuilds leads, not this list), so this writes Postgres
    directly and answers 200 with the row. Resolving twice keeps the first resolution."""
    tok = await _auth(request)
    _require_role(tok, ("human", "brain-bot"))
    try:
        failure_id = int(request.match_info["failure_id"])
    except ValueError:
        return _json({"error": "unknown sync failure"}, status=404)
    if not 0 < failure_id < 2**63:
        return _json({"error": "unknown sync failure"}, status=404)
    row = await request.app[WRITE_POOL].fetchrow(
        "UPDATE sync_failures SET resolved_at = coalesce(resolved_at, now()),"
        " resolved_by = coalesce(resolved_by, $3)"
        " WHERE id = $1 AND workspace_id = $2"
        f" RETURNING {FAILURE_FIELDS}",
        failure_id, tok.workspace_id, _actor(tok))
    if row is None:
        return _json({"error": "unknown sync failure"}, status=404)
    return _json(_failure(row))


async def digest(request: web.Request) -> web.Response:
    """The manager's digest of a day (`?day=YYYY-MM-DD`, default the day the current digest
    covers: yesterday, or today with LEADSTREAM_DIGEST_DAY=today): the one written at the
    configured time, or, before then, computed now."""
    tok = await _auth(request)
    raw = request.query.get("day")
    try:
        day = date.fromisoformat(raw) if raw else None
    except ValueError:
        return _unprocessable([{"loc": ("query", "day"), "msg": "not a date (YYYY-MM-DD)",
                                "type": "date_parsing"}])
    if day is not None and not DIGEST_DAYS[0] <= day <= DIGEST_DAYS[1]:
        # 9999-12-31 has no next day to end it: a 422, never an overflow
        return _unprocessable([{"loc": ("query", "day"), "msg": "a day from "
                                f"{DIGEST_DAYS[0]} to {DIGEST_DAYS[1]}", "type": "date_range"}])
    return _json(await request.app[DIGESTS].get(tok.workspace_id, day))


#: the days a digest can be asked for
DIGEST_DAYS = (date(2000, 1, 1), date(2999, 12, 31))


async def openapi_json(request: web.Request) -> web.Response:
    from leadstream.http.openapi import document

    return _json(document())


async def dashboard(request: web.Request) -> web.Response:
    """The lead dashboard: one static page; it logs in with an API token and reads the API."""
    from importlib.resources import files

    page = files("leadstream.http").joinpath("static/dashboard.html").read_bytes()
    return web.Response(body=page, content_type="text/html", charset="utf-8")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", dashboard)
    app.router.add_post("/api/sarah/state", sarah_state)
    app.router.add_get("/api/openapi.json", openapi_json)
    app.router.add_get("/api/me", me)
    app.router.add_get("/api/stream", stream)
    app.router.add_get("/api/digest", digest)
    app.router.add_get("/api/sync-failures", sync_failures)
    app.router.add_post("/api/sync-failures/{failure_id}/resolve", resolve_sync_failure)
    app.router.add_get("/api/leads", list_leads)
    app.router.add_get("/api/leads.csv", export_leads)
    app.router.add_get("/api/leads/counts", status_counts)
    app.router.add_get("/api/leads/{lead_id}", get_lead)
    app.router.add_get("/api/leads/{lead_id}/timeline", lead_timeline)
    app.router.add_patch("/api/leads/{lead_id}", edit_lead)
    app.router.add_post("/api/leads/{lead_id}/notes", add_note)
    app.router.add_post("/api/leads/{lead_id}/status", set_status)
    app.router.add_post("/api/leads/{lead_id}/assign", assign_lead)
    app.router.add_post("/api/leads/{lead_id}/tags", tag_lead)
    app.router.add_get("/api/people", people)
    app.router.add_post("/api/leads/{lead_id}/tasks", add_task)
    app.router.add_post("/api/tasks/{task_id}/done", task_done)
    app.router.add_post("/api/tasks/{task_id}/undone", task_undone)
    app.router.add_get("/api/tasks", list_tasks)
    app.router.add_get("/api/reports/team", team_report)
    app.router.add_post("/api/leads/{lead_id}/merge", merge_leads)
