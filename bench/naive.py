"""The naive design, for comparison only (issue 7): the previous system's shape.

Each webhook request is handled in the request: verify the signature, parse the Kapso
delivery (the same parser as ours), then, per event, as separate round trips to Postgres:
find the contact, create it if missing, insert the message, update the lead; answer 200
after the last one. No broker, no batching; a row is visible when the 200 leaves.

    python bench/naive.py   # DATABASE_URL, LEADSTREAM_HTTP_PORT from the environment
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime

import asyncpg
import orjson
from aiohttp import web

from leadstream.ingest.common import ParseError, Workspace
from leadstream.ingest.kapso import parse_kapso
from leadstream.ingest.signature import signature_ok

SECRET = "bench-secret"
SCHEMA = """
CREATE TABLE IF NOT EXISTS naive_leads (
  lead_id bigserial PRIMARY KEY, workspace_id text NOT NULL, phone_e164 text NOT NULL,
  name text, message_count int NOT NULL DEFAULT 0, last_message_at timestamptz,
  created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
  UNIQUE (workspace_id, phone_e164));
CREATE TABLE IF NOT EXISTS naive_messages (
  message_id text PRIMARY KEY, lead_id bigint NOT NULL, direction text, text text,
  sent_at timestamptz);
"""
POOL = web.AppKey("pool", asyncpg.Pool)


async def handle(request: web.Request) -> web.Response:
    body = await request.read()
    if not signature_ok(SECRET, body, request.headers.get("X-Webhook-Signature")):
        return web.json_response({"error": "bad signature"}, status=401)
    try:
        events = parse_kapso(Workspace("naive"), request.headers.get("X-Webhook-Event"),
                             orjson.loads(body), datetime.now(UTC))
    except (ParseError, orjson.JSONDecodeError) as exc:
        return web.json_response({"error": str(exc)}, status=422)
    pool = request.app[POOL]
    async with pool.acquire() as conn:
        for ev in events:
            if ev.message is None or ev.phone_e164 is None:
                continue
            lead_id = await conn.fetchval(
                "SELECT lead_id FROM naive_leads WHERE workspace_id = $1 AND phone_e164 = $2",
                ev.workspace_id, ev.phone_e164)
            if lead_id is None:
                lead_id = await conn.fetchval(
                    "INSERT INTO naive_leads (workspace_id, phone_e164, name, created_at,"
                    " updated_at) VALUES ($1, $2, $3, now(), now())"
                    " ON CONFLICT (workspace_id, phone_e164) DO UPDATE SET updated_at = now()"
                    " RETURNING lead_id", ev.workspace_id, ev.phone_e164, ev.contact_name)
            inserted = await conn.execute(
                "INSERT INTO naive_messages (message_id, lead_id, direction, text, sent_at)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                ev.message.wamid, lead_id, ev.message.direction, ev.message.text,
                ev.message.timestamp)
            if inserted.endswith(" 1"):
                await conn.execute(
                    "UPDATE naive_leads SET message_count = message_count + 1,"
                    " last_message_at = greatest(last_message_at, $2), name = coalesce($3, name),"
                    " updated_at = now() WHERE lead_id = $1",
                    lead_id, ev.message.timestamp, ev.contact_name)
    return web.json_response({"accepted": len(events)})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def main() -> None:
    pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=4, max_size=10)
    assert pool is not None
    await pool.execute(SCHEMA)
    app = web.Application(client_max_size=3 * 1024 * 1024)
    app[POOL] = pool
    app.router.add_post("/webhooks/kapso", handle)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(os.environ["LEADSTREAM_HTTP_PORT"])).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
