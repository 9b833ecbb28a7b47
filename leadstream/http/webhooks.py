"""`POST /webhooks/kapso`, `POST|GET /webhooks/whatsapp`: verify, validate, write, answer.

| situation                                         | answer                          |
| valid, acknowledged by the broker (acks=all)      | 200 after the ack               |
| bad/missing signature, unknown phone_number_id    | 401, nothing written            |
| body over the limit                               | 413, nothing written            |
| signed but unparseable / unknown event type       | 200, raw body to the DLQ        |
| broker unavailable                                | 503                             |
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import Counter, Histogram

from leadstream.db.registry import NumberEntry
from leadstream.domain.limits import MAX_FIELD, MAX_ID, MAX_ITEMS
from leadstream.domain.model import InboundEvent
from leadstream.http.guard import Busy, read_body
from leadstream.http.keys import (
    BODY_BUDGET,
    BODY_TIMEOUT,
    DIRECTORY,
    MAX_BODY,
    PUBLISHER,
    TOPICS,
)
from leadstream.http.publisher import BrokerUnavailable, RecordTooLarge
from leadstream.ingest.common import ParseError, Workspace
from leadstream.ingest.kapso import parse_routed_item, route_items
from leadstream.ingest.meta import parse_routed_value, route_values
from leadstream.ingest.signature import signature_ok
from leadstream.ops.logs import annotate
from leadstream.streams.records import DeadLetter, encode

log = logging.getLogger(__name__)



def signed_by(entry: NumberEntry, body: bytes, given: str | None) -> bool:
    """Whether the number's secret (or, during a rotation, its previous one) signed it."""
    return any(signature_ok(secret, body, given) for secret in entry.secrets())


#: refusals by reason (README, Operations): what an operator looks at when Kapso retries
REFUSALS = Counter("leadstream_webhook_refusals_total", "webhook deliveries refused",
                   ["reason"])
#: from the first record sent to the broker's last acknowledgement, per request
PRODUCE_SECONDS = Histogram("leadstream_webhook_produce_seconds",
                            "time for the broker to acknowledge a request's records",
                            buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))


def _error(status: int, message: str) -> web.Response:
    REFUSALS.labels(_REASONS.get(status, str(status))).inc()
    return web.json_response({"error": message}, status=status)


_REASONS = {401: "signature", 413: "too_large", 503: "broker_unavailable", 408: "timeout"}


async def read_request_body(request: web.Request) -> bytes:
    """The whole body, refused before a byte is read when it declares more than the limit
    (413) or more body bytes are in flight than the budget (503 with Retry-After), and cut
    off when it does not arrive in time (408): webhooks and API alike (http.guard)."""
    limit = request.app[MAX_BODY]
    if request.content_length is not None and request.content_length > limit:
        REFUSALS.labels("too_large").inc()
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    try:
        # aiohttp enforces client_max_size on a body without a length
        return await read_body(request, budget=request.app[BODY_BUDGET], max_bytes=limit,
                               timeout=request.app[BODY_TIMEOUT])
    except Busy:
        REFUSALS.labels("busy").inc()
        raise web.HTTPServiceUnavailable(
            text='{"error": "busy: too many bodies being received; retry"}',
            content_type="application/json", headers={"Retry-After": "1"}) from None


async def publish_or_503(request: web.Request,
                         records: list[tuple[str, bytes | None, bytes]]) -> None:
    """Publish and return once the broker has every record; 413 when the broker cannot
    take one, 503 with Retry-After while it is away. Webhooks and API alike."""
    try:
        with PRODUCE_SECONDS.time():
            await request.app[PUBLISHER].publish(records)
    except RecordTooLarge as exc:
        REFUSALS.labels("too_large").inc()
        log.warning("answering 413: %s", exc)
        raise web.HTTPRequestEntityTooLarge(
            max_size=request.app[MAX_BODY], actual_size=request.content_length or 0,
            text=orjson.dumps({"error": "too large for the broker"}).decode(),
            content_type="application/json") from exc
    except BrokerUnavailable as exc:
        REFUSALS.labels("broker_unavailable").inc()
        log.warning("answering 503: %s", exc)
        raise web.HTTPServiceUnavailable(
            text=orjson.dumps({"error": "broker unavailable, retry later"}).decode(),
            content_type="application/json", headers={"Retry-After": "5"},
        ) from exc


def _dead_letter_record(request: web.Request, original: bytes, reason: str,
                        workspace_id: str | None, source: str
                        ) -> tuple[str, bytes | None, bytes]:
    headers = {k: v for k, v in request.headers.items()
               if k.lower().startswith(("x-webhook", "x-idempotency", "content-type"))}
    dl = DeadLetter.of(stage="webhook", reason=reason[:MAX_FIELD], original=original,
                       topic=source, workspace_id=workspace_id, headers=headers)
    log.warning("webhook %s dead-lettered: %s", source, reason[:200])
    return request.app[TOPICS].dlq, (workspace_id or "").encode(), encode(dl)


async def _dead_letter(request: web.Request, body: bytes, reason: str, workspace_id: str | None,
                       source: str) -> web.Response:
    await publish_or_503(request, [_dead_letter_record(request, body, reason, workspace_id,
                                                        source)])
    return web.json_response({"accepted": 0, "dead_lettered": 1, "reasons": [reason]})


#: bytes of HMAC one unreadable body may cost (its length times the numbers tried): beyond
#: it, a body with no readable number is refused (401) rather than matched against every
#: secret, so unsigned garbage cannot buy seconds of CPU per request
MATCH_BUDGET_BYTES = 64 * 1024 * 1024


async def _match_any_secret(request: web.Request, body: bytes, sig: str | None
                            ) -> NumberEntry | None:
    """For a body we cannot read the phone_number_id from: is it signed by any workspace?

    Uses the directory as it is (no reload: a flood of garbage must not cost Postgres), and
    only within `MATCH_BUDGET_BYTES`."""
    directory = request.app[DIRECTORY]
    if not sig or len(body) * max(1, len(directory.numbers)) > MATCH_BUDGET_BYTES:
        return None
    for entry in directory.numbers.values():
        if signed_by(entry, body, sig):
            return entry
    return None


#: (workspace, one routed unit, its index) -> its events; raises on a unit it cannot read
ParseUnit = Callable[[Workspace, Any, int], list[InboundEvent]]
#: what a signed unit that cannot be read raises (the parsers are defensive, but any JSON
#: shape can come in: a wrong type deep inside is a dead letter, never a 500)
UNREADABLE = (ParseError, ValueError, TypeError, AttributeError, KeyError, IndexError)


async def _ingest(request: web.Request, *, source: str, signature: str | None,
                  split: Callable[[Any], tuple[list[tuple[str | None, Any]], set[str]]],
                  parse: ParseUnit
                  ) -> web.Response:
    """What both webhook flavours do: verify, parse, route, publish, answer.

    Each unit (a Kapso batch item, a Meta change value) is filed under the workspace of its
    own phone_number_id, and only if the request's signature verifies with that number's
    secret; a unit that fails this, or cannot be read, is dead-lettered with the reason
    (under the signer's workspace) while the others are accepted. A body signed by none of
    the numbers it names is refused (401) before anything else is read from it.
    """
    body = await read_request_body(request)
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    units, named = split(parsed) if parsed is not None else ([], set())
    directory = request.app[DIRECTORY]
    entries = await directory.numbers_for(named)
    known = {p: e for p, e in entries.items() if e is not None}
    secrets = {sec for e in known.values() for sec in e.secrets()}
    if len(body) * len(secrets) > MATCH_BUDGET_BYTES:
        return _error(401, f"the body names too many numbers to verify ({len(known)})")
    verified = {sec: signature_ok(sec, body, signature) for sec in secrets}  # once each
    signed = {p: e for p, e in known.items() if any(verified[s] for s in e.secrets())}
    if not signed:
        if parsed is None and (matched := await _match_any_secret(request, body, signature)):
            return await _dead_letter(request, body, "body is not JSON", matched.workspace_id,
                                      source)
        if any(e is not None for e in entries.values()):
            return _error(401, "bad signature")
        return _error(401, "unknown or missing phone_number_id")
    signer = signed[min(signed)]
    annotate(workspace=signer.workspace_id)
    if len(units) > MAX_ITEMS:
        return await _dead_letter(request, body, f"more than {MAX_ITEMS} items in one body",
                                  signer.workspace_id, source)
    events: list[InboundEvent] = []
    letters: list[tuple[str, bytes | None, bytes]] = []
    reasons: list[str] = []
    for i, (pnid, unit) in enumerate(units):
        entry = signed.get(pnid) if pnid else None
        if entry is None:
            reason = (f"item names phone_number_id {pnid[:MAX_ID]!r}, whose secret did not "
                      "sign this request" if pnid else "item names no phone_number_id")
        else:
            try:
                parsed_events = parse(Workspace(entry.workspace_id, entry.region), unit, i)
                if len(events) + len(parsed_events) <= MAX_ITEMS:
                    events += parsed_events
                    continue
                # the events of one body are bounded too, whatever shape holds them
                reason = f"more than {MAX_ITEMS} events in one body"
            except UNREADABLE as exc:
                reason = str(exc) or type(exc).__name__
        reasons.append(reason)
        original = body if len(units) == 1 else orjson.dumps(unit)
        letters.append(_dead_letter_record(
            request, original, reason, (entry or signer).workspace_id, source))
    topic = request.app[TOPICS].events
    records = [(topic, e.lead_key.encode(), encode(e)) for e in events] + letters
    if records:
        await publish_or_503(request, records)
    answer: dict[str, Any] = {"accepted": len(events)}
    if letters:
        answer.update(dead_lettered=len(letters), reasons=reasons[:20])
    return web.json_response(answer)


async def kapso_webhook(request: web.Request) -> web.Response:
    event = request.headers.get("X-Webhook-Event")
    idem = request.headers.get("X-Idempotency-Key")
    now = datetime.now(UTC)
    return await _ingest(
        request, source="kapso", signature=request.headers.get("X-Webhook-Signature"),
        split=route_items,
        parse=lambda ws, item, i: [parse_routed_item(ws, event, item, now, idem, i)],
    )


async def meta_webhook(request: web.Request) -> web.Response:
    now = datetime.now(UTC)
    return await _ingest(
        request, source="meta", signature=request.headers.get("X-Hub-Signature-256"),
        split=route_values, parse=lambda ws, value, i: parse_routed_value(ws, value, now),
    )


async def meta_verify(request: web.Request) -> web.Response:
    """Meta's subscription handshake: echo hub.challenge when hub.verify_token is known."""
    q = request.query
    if q.get("hub.mode") != "subscribe" or not q.get("hub.verify_token"):
        return _error(400, "expected hub.mode=subscribe and hub.verify_token")
    directory = request.app[DIRECTORY]
    token = q["hub.verify_token"]
    for attempt in range(2):
        if any(e.verify_token and hmac.compare_digest(
                e.verify_token.encode(), token.encode("utf-8", "replace"))
               for e in directory.numbers.values()):
            return web.Response(text=q.get("hub.challenge", ""))
        if attempt == 0:
            await directory.refresh()
    return _error(403, "verify token does not match")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/webhooks/kapso", kapso_webhook)
    app.router.add_post("/webhooks/whatsapp", meta_webhook)
    app.router.add_get("/webhooks/whatsapp", meta_verify)
