"""A fake of Kapso's list-messages API (`GET /meta/whatsapp/v24.0/{phone_number_id}/messages`)
for the tests and the benchmark, faithful to what the reconciler relies on: the `X-API-Key`
header, `since` / `until` (ISO 8601, inclusive, on the time Kapso stored the message),
newest first, `limit` 1..100, an opaque base64 `after` cursor, the `kapso(...)` field
selector (no Kapso fields unless asked), 429 with `Retry-After`, and 5xx bursts on demand.

`python -m leadstream.simulate.kapso_api --port 9100 --numbers 3 --messages 10000` serves
seeded numbers in a process of its own (bench/reconcile.py)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

ROUTE = "/meta/whatsapp/v24.0/{phone_number_id}/messages"


def api_message(*, wa_id: str, wamid: str, text: str, ts: int, direction: str = "inbound",
                name: str | None = None, status: str | None = None,
                conversation_id: str | None = None) -> dict[str, Any]:
    """A message as the API returns it with every `kapso(...)` field."""
    msg: dict[str, Any] = {
        "id": wamid, "timestamp": str(ts), "type": "text", "text": {"body": text},
        "kapso": {"direction": direction,
                  "status": status or ("delivered" if direction == "inbound" else "sent"),
                  "processing_status": "completed", "origin": "cloud_api",
                  "phone_number": "+" + wa_id, "has_media": False,
                  "whatsapp_conversation_id": conversation_id or f"conv-{wa_id}",
                  "content": text},
    }
    msg["from" if direction == "inbound" else "to"] = wa_id
    if name:
        msg["kapso"]["contact_name"] = name
    return msg


@dataclass
class Stored:
    created_at: datetime
    seq: int
    message: dict[str, Any]


@dataclass
class FakeKapsoApi:
    """Numbers (`phone_number_id` -> API key) and their messages; fault knobs."""

    keys: dict[str, str] = field(default_factory=dict)
    messages: dict[str, list[Stored]] = field(default_factory=dict)
    #: every n-th call answers 429 with `Retry-After: retry_after` (0: never)
    throttle_every: int = 0
    retry_after: str = "1"
    #: the next so many calls answer 503 without `Retry-After` (a 5xx burst)
    fail_next: int = 0
    calls: int = 0
    throttled: int = 0
    failed: int = 0
    _seq: int = 0

    def add(self, phone_number_id: str, message: dict[str, Any],
            created_at: datetime | None = None) -> None:
        self._seq += 1
        self.messages.setdefault(phone_number_id, []).append(
            Stored(created_at or datetime.now(UTC), self._seq, message))

    def set_status(self, phone_number_id: str, wamid: str, status: str) -> None:
        for s in self.messages.get(phone_number_id, []):
            if s.message["id"] == wamid:
                s.message["kapso"]["status"] = status

    def all_messages(self) -> list[dict[str, Any]]:
        return [s.message for stored in self.messages.values() for s in stored]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(ROUTE, self.list_messages)
        return app

    async def list_messages(self, request: web.Request) -> web.Response:
        self.calls += 1
        if self.fail_next > 0:
            self.fail_next -= 1
            self.failed += 1
            return web.json_response({"error": "upstream unavailable"}, status=503)
        if self.throttle_every and self.calls % self.throttle_every == 0:
            self.throttled += 1
            return web.json_response({"error": "rate limited"}, status=429,
                                     headers={"Retry-After": self.retry_after})
        pnid = request.match_info["phone_number_id"]
        if pnid not in self.keys or request.headers.get("X-API-Key") != self.keys[pnid]:
            return web.json_response({"error": "invalid API key"}, status=401)
        q = request.query
        try:
            limit = int(q.get("limit", "20"))
            since = _time(q.get("since"))
            until = _time(q.get("until"))
            cursor = _decode_cursor(q["after"]) if q.get("after") else None
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if not 1 <= limit <= 100:
            return web.json_response({"error": "limit must be 1..100"}, status=400)
        rows = sorted(self.messages.get(pnid, []), key=lambda s: (s.created_at, s.seq),
                      reverse=True)
        rows = [s for s in rows if (since is None or s.created_at >= since)
                and (until is None or s.created_at <= until)
                and (cursor is None or (s.created_at, s.seq) < cursor)]
        page = rows[:limit]
        fields = _kapso_fields(q.get("fields"))
        body: dict[str, Any] = {"data": [_select(s.message, fields) for s in page],
                                "paging": {"cursors": {}}}
        if page:
            last = page[-1]
            body["paging"]["cursors"]["after"] = _encode_cursor(last.created_at, last.seq)
            if len(rows) > limit:
                body["paging"]["next"] = body["paging"]["cursors"]["after"]
        return web.Response(body=orjson.dumps(body), content_type="application/json")


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise ValueError(f"time without a zone: {value}")
    return t


def _encode_cursor(created_at: datetime, seq: int) -> str:
    raw = orjson.dumps({"values": [created_at.isoformat(), str(seq)],
                        "columns": ["created_at", "id"]})
    return base64.b64encode(raw).decode()


def _decode_cursor(value: str) -> tuple[datetime, int]:
    try:
        raw = orjson.loads(base64.b64decode(value))
        return datetime.fromisoformat(raw["values"][0]), int(raw["values"][1])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"bad cursor: {exc}") from None


def _kapso_fields(spec: str | None) -> set[str] | None:
    """The `kapso(...)` fields asked for: None for all, an empty set for none."""
    m = re.search(r"kapso\(([^)]*)\)", spec or "")
    if m is None:
        return set()
    names = {f.strip() for f in m.group(1).split(",") if f.strip()}
    return None if names & {"default", "*", "all"} else names


def _select(message: dict[str, Any], fields: set[str] | None) -> dict[str, Any]:
    out = {k: v for k, v in message.items() if k != "kapso"}
    kapso = message.get("kapso") or {}
    chosen = kapso if fields is None else {k: v for k, v in kapso.items() if k in fields}
    if chosen:
        out["kapso"] = dict(chosen)
    return out


def seeded(numbers: int, messages: int, *, key: str = "bench-key",
           start: datetime | None = None) -> FakeKapsoApi:
    """`messages` inbound messages spread over `numbers` numbers (`pnid-0`...) and 50
    customers each, one a second from `start` (default: an hour before now)."""
    api = FakeKapsoApi(keys={f"pnid-{i}": key for i in range(numbers)})
    t0 = start or datetime.now(UTC) - timedelta(hours=1)
    for n in range(messages):
        pnid = f"pnid-{n % numbers}"
        wa_id = f"62812{20000000 + (n % numbers) * 1000 + n % 50:08d}"
        at = t0 + timedelta(seconds=n * 3600 / max(messages, 1))
        api.add(pnid, api_message(wa_id=wa_id, wamid=f"wamid.rc.{n}", text=f"halo {n}",
                                  ts=int(at.timestamp())), created_at=at)
    return api


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9100)
    ap.add_argument("--numbers", type=int, default=3)
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--key", default="bench-key")
    args = ap.parse_args()
    api = seeded(args.numbers, args.messages, key=args.key)

    async def serve() -> None:
        runner = web.AppRunner(api.app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, args.host, args.port).start()
        print(f"fake Kapso API on http://{args.host}:{args.port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
