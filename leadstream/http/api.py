"""Bot and operator API (contract §2): bearer token -> one workspace and a role.

Writes validate with pydantic (422 with field errors), go to the broker as commands and
answer 202 once acknowledged. Reads come from the Postgres replica. Another workspace's lead
answers 404, not 403, so ids do not leak across workspaces.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from leadstream.db.registry import TokenEntry
from leadstream.domain.identity import lead_key as make_lead_key
from leadstream.domain.model import Command, LeadStatus, SarahFields, SarahUpdate, Temperature
from leadstream.domain.phone import InvalidPhone, normalize_phone
from leadstream.http.publisher import BrokerUnavailable, RecordTooLarge
from leadstream.http.webhooks import DIRECTORY, POOL, PUBLISHER, TOPICS
from leadstream.streams.records import encode

IDEMPOTENCY_NS = uuid.UUID("0b6d1c1e-3f0e-5a44-9f2c-7d3b9c1a2e55")


class SarahStateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contact_phone: str
    chat_phase: str | None = None
    extracted_data: SarahFields = Field(default_factory=SarahFields)
    lead_score: int | None = Field(default=None, ge=0, le=100)
    lead_temperature: Temperature | None = None


class LeadEditIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=40)


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content: str = Field(min_length=1, max_length=10_000)
    author: str | None = Field(default=None, max_length=200)

    @field_validator("content")
    @classmethod
    def not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("content must not be blank")
        return v


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: LeadStatus
    reason: str | None = Field(default=None, max_length=2000)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data, option=orjson.OPT_NAIVE_UTC),
                        status=status, content_type="application/json")


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
        raw = await request.read()
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
    try:
        await request.app[PUBLISHER].publish([(topic, key.encode(), value)])
    except RecordTooLarge as exc:
        raise web.HTTPRequestEntityTooLarge(max_size=0, actual_size=len(value),
                                            text='{"error": "too large for the broker"}',
                                            content_type="application/json") from exc
    except BrokerUnavailable as exc:
        raise web.HTTPServiceUnavailable(text='{"error": "broker unavailable"}',
                                         content_type="application/json") from exc


def _require_role(tok: TokenEntry, allowed: tuple[str, ...]) -> None:
    """Roles per endpoint (contract §2): `sarah-bot` posts Sarah's extractions; `human` and
    `brain-bot` edit, note and move statuses; any role reads. Otherwise 403."""
    if tok.role not in allowed:
        raise web.HTTPForbidden(
            text=orjson.dumps({"error": f"a {tok.role} token may not do this; allowed: "
                                        + ", ".join(allowed)}).decode(),
            content_type="application/json")


async def sarah_state(request: web.Request) -> web.Response:
    tok = await _auth(request)
    _require_role(tok, ("sarah-bot",))
    body = await _body(request, SarahStateIn)
    if isinstance(body, web.Response):
        return body
    assert isinstance(body, SarahStateIn)
    entry = next((n for n in request.app[DIRECTORY].numbers.values()
                  if n.workspace_id == tok.workspace_id), None)
    region = entry.region if entry else "ID"
    try:
        phone = normalize_phone(body.contact_phone, region)
    except InvalidPhone as exc:
        return _unprocessable([{"loc": ("contact_phone",), "msg": str(exc),
                                "type": "phone_invalid"}])
    key = make_lead_key(tok.workspace_id, phone)
    up = SarahUpdate(
        event_id=_event_id(request, "sarah", key), workspace_id=tok.workspace_id,
        lead_key=key, identity=phone, phone_e164=phone, occurred_at=datetime.now(UTC),
        chat_phase=body.chat_phase, extracted=body.extracted_data, lead_score=body.lead_score,
        lead_temperature=body.lead_temperature,
    )
    await _publish(request, request.app[TOPICS].sarah, key, encode(up))
    return _json({"accepted": True, "event_id": up.event_id, "lead_key": key}, status=202)


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


async def _command(request: web.Request, kind: Literal["edit", "note", "status"],
                   model: type[BaseModel]) -> web.Response:
    tok = await _auth(request)
    _require_role(tok, ("human", "brain-bot"))
    key = await _lead_key_of(request, tok)
    body = await _body(request, model)
    if isinstance(body, web.Response):
        return body
    fields: dict[str, Any] = {}
    if isinstance(body, LeadEditIn):
        fields["edit_fields"] = sorted(body.model_fields_set)
        fields["name"] = body.name
        if body.phone:
            try:
                fields["phone"] = normalize_phone(body.phone)
            except InvalidPhone as exc:
                return _unprocessable([{"loc": ("phone",), "msg": str(exc),
                                        "type": "phone_invalid"}])
    elif isinstance(body, NoteIn):
        fields["content"] = body.content
    elif isinstance(body, StatusIn):
        fields["status"] = body.status
        fields["reason"] = body.reason
    # a personal token's person is the author and actor, whatever the body says
    author = tok.user or getattr(body, "author", None) or tok.role
    cmd = Command(event_id=_event_id(request, kind, key), workspace_id=tok.workspace_id,
                  lead_key=key, occurred_at=datetime.now(UTC), kind=kind,
                  actor_role=tok.role,  # type: ignore[arg-type]
                  author=author, actor=tok.user, **fields)
    await _publish(request, request.app[TOPICS].commands, key, encode(cmd))
    return _json({"accepted": True, "event_id": cmd.event_id}, status=202)


async def edit_lead(request: web.Request) -> web.Response:
    return await _command(request, "edit", LeadEditIn)


async def add_note(request: web.Request) -> web.Response:
    return await _command(request, "note", NoteIn)


async def set_status(request: web.Request) -> web.Response:
    return await _command(request, "status", StatusIn)


#: sort name -> (SQL expression, its type); every one has an index led by workspace_id
LIST_SORTS = {
    "last_activity_at": ("last_activity_at", "timestamptz"),
    "lead_score": ("coalesce(lead_score, -1)", "integer"),  # no score sorts last
    "created_at": ("created_at", "timestamptz"),
}
SEARCH_EXPR = ("(coalesce(name, '') || ' ' || coalesce(phone_e164, '') || ' ' "
               "|| coalesce(business_type, ''))")


def _csv(v: Any) -> Any:
    return [x for x in v.split(",") if x] if isinstance(v, str) else v


class LeadQuery(BaseModel):
    """`GET /api/leads` query parameters (lists are comma-separated)."""

    model_config = ConfigDict(extra="forbid")
    status: list[LeadStatus] | None = None
    temperature: list[Temperature] | None = None
    urgency: list[str] | None = Field(default=None, description="urgency_level values")
    domisili: str | None = Field(default=None, max_length=200,
                                 description="exact, case-insensitive")
    business_type: str | None = Field(default=None, max_length=200,
                                      description="exact, case-insensitive")
    min_score: int | None = Field(default=None, ge=0, le=100)
    max_score: int | None = Field(default=None, ge=0, le=100)
    created_from: datetime | None = None
    created_to: datetime | None = None
    active_from: datetime | None = Field(default=None, description="last activity at or after")
    active_to: datetime | None = Field(default=None, description="last activity before")
    q: str | None = Field(default=None, min_length=1, max_length=200,
                          description="substring of name, phone or business type")
    sort: Literal["last_activity_at", "lead_score", "created_at"] = "last_activity_at"
    cursor: str | None = Field(default=None, description="next_cursor of the previous page")
    limit: int = Field(default=50, ge=1, le=200)

    _split = field_validator("status", "temperature", "urgency", mode="before")(_csv)


class LeadPage(BaseModel):
    leads: list[dict[str, Any]]
    next_cursor: str | None


class StatusCounts(BaseModel):
    counts: dict[str, int]
    total: int


class Accepted(BaseModel):
    accepted: bool
    event_id: str
    lead_key: str | None = Field(default=None, description="POST /api/sarah/state only")


class LeadDetail(BaseModel):
    lead: dict[str, Any]
    notes: list[dict[str, Any]] = Field(description="newest first")
    status_history: list[dict[str, Any]] = Field(description="newest first")
    daily_summaries: list[dict[str, Any]] = Field(description="newest day first")
    messages: list[dict[str, Any]] = Field(description="the 50 newest")


def _query_errors(exc: ValidationError) -> web.Response:
    return _unprocessable([{"loc": ("query", *e["loc"]), "msg": e["msg"], "type": e["type"]}
                           for e in exc.errors(include_url=False, include_context=False)])


def lead_list_sql(workspace_id: str, lq: LeadQuery) -> tuple[str, list[Any]]:
    """The list query: filters, then keyset pagination on (sort key, lead_id), both desc.

    A page walk never repeats a lead; a lead that gets new activity meanwhile moves to the
    top (the next refresh shows it), and new leads appear at the top, not in later pages.
    """
    where = ["workspace_id = $1"]
    args: list[Any] = [workspace_id]

    def arg(v: Any) -> str:
        args.append(v)
        return f"${len(args)}"

    if lq.status:
        where.append(f"lead_status = ANY({arg(list(lq.status))}::text[])")
    if lq.temperature:
        where.append(f"lead_temperature = ANY({arg(list(lq.temperature))}::text[])")
    if lq.urgency:
        where.append(f"urgency_level = ANY({arg(lq.urgency)}::text[])")
    if lq.domisili:
        where.append(f"lower(domisili) = lower({arg(lq.domisili)})")
    if lq.business_type:
        where.append(f"lower(business_type) = lower({arg(lq.business_type)})")
    if lq.min_score is not None:
        where.append(f"lead_score >= {arg(lq.min_score)}")
    if lq.max_score is not None:
        where.append(f"lead_score <= {arg(lq.max_score)}")
    for col, op, v in (("created_at", ">=", lq.created_from), ("created_at", "<", lq.created_to),
                       ("last_activity_at", ">=", lq.active_from),
                       ("last_activity_at", "<", lq.active_to)):
        if v is not None:
            where.append(f"{col} {op} {arg(v)}")
    if lq.q:
        pat = "%" + lq.q.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"
        where.append(f"{SEARCH_EXPR} ILIKE {arg(pat)}")
    col, typ = LIST_SORTS[lq.sort]
    if lq.cursor:
        cur = orjson.loads(bytes.fromhex(lq.cursor))
        if not isinstance(cur, list) or len(cur) != 2 or not isinstance(cur[1], str):
            raise ValueError("bad cursor")
        if typ == "timestamptz":
            value: Any = datetime.fromisoformat(cur[0])
            if value.tzinfo is None:
                raise ValueError("bad cursor")
        else:
            value = int(cur[0])
            if not -2**31 <= value < 2**31:
                raise ValueError("bad cursor")
        where.append(f"({col}, lead_id) < ({arg(value)}::{typ}, {arg(uuid.UUID(cur[1]))})")
    sql = (f"SELECT *, {col} AS _sort FROM leads WHERE {' AND '.join(where)}"
           f" ORDER BY {col} DESC, lead_id DESC LIMIT {lq.limit + 1}")
    return sql, args


async def list_leads(request: web.Request) -> web.Response:
    """Filters, sort and keyset pagination (`cursor` = last row's sort value and lead_id)."""
    tok = await _auth(request)
    try:
        lq = LeadQuery.model_validate(dict(request.query))
        sql, args = lead_list_sql(tok.workspace_id, lq)
    except ValidationError as exc:
        return _query_errors(exc)
    except (ValueError, IndexError, TypeError):
        return _unprocessable([{"loc": ("query", "cursor"), "msg": "bad cursor",
                                "type": "value_error"}])
    rows = [dict(r) for r in await request.app[POOL].fetch(sql, *args)]
    more = len(rows) > lq.limit
    rows = rows[:lq.limit]
    next_cursor = None
    if more and rows:
        v = rows[-1]["_sort"]
        next_cursor = orjson.dumps([v.isoformat() if hasattr(v, "isoformat") else v,
                                    str(rows[-1]["lead_id"])]).hex()
    for r in rows:
        r.pop("_sort", None)
    return _json({"leads": [_row(r) for r in rows], "next_cursor": next_cursor})


async def status_counts(request: web.Request) -> web.Response:
    """Leads per status for the pipeline header (every status present, zeros included)."""
    tok = await _auth(request)
    rows = await request.app[POOL].fetch(
        "SELECT lead_status, count(*) AS n FROM leads WHERE workspace_id = $1 GROUP BY 1",
        tok.workspace_id)
    counts = {s: 0 for s in ("new", "qualified", "contacted", "converted", "archived")}
    counts.update({r["lead_status"]: int(r["n"]) for r in rows})
    return _json({"counts": counts, "total": sum(counts.values())})


def _row(r: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in r.items()}


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
    notes = await pool.fetch("SELECT * FROM lead_notes WHERE lead_id = $1"
                             " ORDER BY created_at DESC LIMIT 200", lead_id)
    history = await pool.fetch("SELECT * FROM lead_status_history WHERE lead_id = $1"
                               " ORDER BY changed_at DESC LIMIT 200", lead_id)
    daily = await pool.fetch("SELECT * FROM lead_daily_activity WHERE lead_id = $1"
                             " ORDER BY day DESC LIMIT 90", lead_id)
    messages = await pool.fetch("SELECT * FROM messages WHERE lead_id = $1"
                                " ORDER BY sent_at DESC LIMIT 50", lead_id)
    return _json({"lead": _row(dict(lead)), "notes": [_row(dict(n)) for n in notes],
                  "status_history": [_row(dict(h)) for h in history],
                  "daily_summaries": [_row(dict(d)) for d in daily],
                  "messages": [_row(dict(m)) for m in messages]})


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
    app.router.add_get("/api/leads", list_leads)
    app.router.add_get("/api/leads/counts", status_counts)
    app.router.add_get("/api/leads/{lead_id}", get_lead)
    app.router.add_patch("/api/leads/{lead_id}", edit_lead)
    app.router.add_post("/api/leads/{lead_id}/notes", add_note)
    app.router.add_post("/api/leads/{lead_id}/status", set_status)
