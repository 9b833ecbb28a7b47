"""`POST /webhooks/kapso`, `POST|GET /webhooks/whatsapp`: verify, validate, write, answer.

| situation                                         | answer                          |
| valid, acknowledged by the broker (acks=all)      | 200 after the ack               |
| bad/missing signature, unknown phone_number_id    | 401, nothing written            |
| body over the limit                               | 413, nothing written            |
| signed but unparseable / unknown event type       | 200, raw body to the DLQ        |
| broker unavailable                                | 503                             |
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from leadstream.db.registry import NumberEntry
from leadstream.domain.identity import lead_key
from leadstream.domain.model import InboundEvent
from leadstream.http.directory import Directory
from leadstream.http.publisher import BrokerUnavailable, Publisher
from leadstream.ingest.common import ParseError, Workspace, content_id
from leadstream.ingest.kapso import parse_kapso, phone_number_id_of
from leadstream.ingest.meta import parse_meta, phone_number_ids
from leadstream.streams.records import DeadLetter, encode
from leadstream.streams.topics import TopicNames

log = logging.getLogger(__name__)

DIRECTORY = web.AppKey("directory", Directory)
PUBLISHER = web.AppKey("publisher", Publisher)
TOPICS = web.AppKey("topics", TopicNames)
MAX_BODY = web.AppKey("max_body", int)
POOL = web.AppKey("pool", asyncpg.Pool)


def sign(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of the raw body: what Kapso sends in X-Webhook-Signature."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_ok(secret: str, body: bytes, given: str | None) -> bool:
    if not given:
        return False
    given = given.strip()
    if given.startswith("sha256="):
        given = given[len("sha256="):]
    return hmac.compare_digest(sign(secret, body), given.lower())


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _read_body(request: web.Request) -> bytes:
    limit = request.app[MAX_BODY]
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    return await request.read()  # aiohttp enforces client_max_size too


async def _publish_or_503(request: web.Request,
                          records: list[tuple[str, bytes | None, bytes]]) -> None:
    try:
        await request.app[PUBLISHER].publish(records)
    except BrokerUnavailable as exc:
        log.warning("answering 503: %s", exc)
        raise web.HTTPServiceUnavailable(
            text=orjson.dumps({"error": "broker unavailable, retry later"}).decode(),
            content_type="application/json", headers={"Retry-After": "5"},
        ) from exc


async def _dead_letter(request: web.Request, body: bytes, reason: str, workspace_id: str | None,
                       source: str) -> web.Response:
    headers = {k: v for k, v in request.headers.items()
               if k.lower().startswith(("x-webhook", "x-idempotency", "content-type"))}
    dl = DeadLetter(
        event_id=f"{source}:dlq:{content_id(body.decode('utf-8', 'replace'))}",
        reason=reason, stage="webhook", source_topic=source, workspace_id=workspace_id,
        headers=headers, original_b64=DeadLetter.b64(body),
    )
    topics = request.app[TOPICS]
    await _publish_or_503(request, [(topics.dlq, (workspace_id or "").encode(), encode(dl))])
    log.warning("webhook body dead-lettered: %s", reason)
    return web.json_response({"accepted": 0, "dead_lettered": True, "reason": reason})


async def _match_any_secret(request: web.Request, body: bytes, sig: str | None
                            ) -> NumberEntry | None:
    """For a body we cannot read the phone_number_id from: is it signed by any workspace?"""
    directory = request.app[DIRECTORY]
    await directory.refresh()
    for entry in directory.numbers.values():
        if signature_ok(entry.webhook_secret, body, sig):
            return entry
    return None


Parse = Callable[[Workspace, Any], list[InboundEvent]]


async def _ingest(request: web.Request, *, source: str, signature: str | None,
                  find: Callable[[Any], Awaitable[NumberEntry | None]], parse: Parse
                  ) -> web.Response:
    """What both webhook flavours do: verify, parse, route, publish, answer."""
    body = await _read_body(request)
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    entry = await find(parsed)
    if entry is None:
        if parsed is None and (matched := await _match_any_secret(request, body, signature)):
            return await _dead_letter(request, body, "body is not JSON", matched.workspace_id,
                                      source)
        return _error(401, "unknown or missing phone_number_id")
    if not signature_ok(entry.webhook_secret, body, signature):
        return _error(401, "bad signature")
    ws = Workspace(entry.workspace_id, entry.region)
    try:
        events = parse(ws, parsed)
    except (ParseError, ValueError) as exc:
        return await _dead_letter(request, body, str(exc), ws.workspace_id, source)
    events = await route_known_bsuids(request, events)
    topic = request.app[TOPICS].events
    if events:
        await _publish_or_503(request, [(topic, e.lead_key.encode(), encode(e)) for e in events])
    return web.json_response({"accepted": len(events)})


async def kapso_webhook(request: web.Request) -> web.Response:
    directory = request.app[DIRECTORY]

    async def find(parsed: Any) -> NumberEntry | None:
        pnid = phone_number_id_of(parsed)
        return await directory.number(pnid) if pnid else None

    return await _ingest(
        request, source="kapso", signature=request.headers.get("X-Webhook-Signature"),
        find=find,
        parse=lambda ws, parsed: parse_kapso(
            ws, request.headers.get("X-Webhook-Event"), parsed, datetime.now(UTC),
            request.headers.get("X-Idempotency-Key")),
    )


async def meta_webhook(request: web.Request) -> web.Response:
    directory = request.app[DIRECTORY]

    async def find(parsed: Any) -> NumberEntry | None:
        for pnid in sorted(phone_number_ids(parsed)):
            if entry := await directory.number(pnid):
                return entry
        return None

    return await _ingest(
        request, source="meta", signature=request.headers.get("X-Hub-Signature-256"),
        find=find, parse=lambda ws, parsed: parse_meta(ws, parsed, datetime.now(UTC)),
    )


async def meta_verify(request: web.Request) -> web.Response:
    """Meta's subscription handshake: echo hub.challenge when hub.verify_token is known."""
    q = request.query
    if q.get("hub.mode") != "subscribe" or not q.get("hub.verify_token"):
        return _error(400, "expected hub.mode=subscribe and hub.verify_token")
    directory = request.app[DIRECTORY]
    token = q["hub.verify_token"]
    for attempt in range(2):
        if any(e.verify_token and hmac.compare_digest(e.verify_token, token)
               for e in directory.numbers.values()):
            return web.Response(text=q.get("hub.challenge", ""))
        if attempt == 0:
            await directory.refresh()
    return _error(403, "verify token does not match")


async def route_known_bsuids(request: web.Request, events: list[InboundEvent]
                             ) -> list[InboundEvent]:
    """A business-scoped id is the identity only until a phone is seen for it.

    Events that name only a bsuid go to the lead whose phone is already known for that bsuid
    (from the replica). If Postgres cannot answer, they keep the bsuid identity.
    """
    wanted = {(e.workspace_id, e.bsuid) for e in events if e.phone_e164 is None and e.bsuid}
    if not wanted:
        return events
    pool = request.app[POOL]
    try:
        rows = await pool.fetch(
            "SELECT DISTINCT ON (workspace_id, bsuid) workspace_id, bsuid, phone_e164 FROM leads"
            " WHERE (workspace_id, bsuid) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
            " AND phone_e164 IS NOT NULL ORDER BY workspace_id, bsuid, last_activity_at DESC",
            [w for w, _ in wanted], [b for _, b in wanted])
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        log.warning("bsuid lookup failed, keeping bsuid identities: %s", exc)
        return events
    phones = {(r["workspace_id"], r["bsuid"]): r["phone_e164"] for r in rows}
    out = []
    for e in events:
        phone = phones.get((e.workspace_id, e.bsuid)) if e.phone_e164 is None else None
        if phone:
            e = e.model_copy(update={"phone_e164": phone, "identity": phone,
                                     "wa_id": phone.lstrip("+"),
                                     "lead_key": lead_key(e.workspace_id, phone)})
        out.append(e)
    return out


def add_routes(app: web.Application) -> None:
    app.router.add_post("/webhooks/kapso", kapso_webhook)
    app.router.add_post("/webhooks/whatsapp", meta_webhook)
    app.router.add_get("/webhooks/whatsapp", meta_verify)
