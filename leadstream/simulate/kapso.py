"""Signed Kapso v2 traffic: payload builders and an open-loop sender, for the sales line
(`simulate.salesline`), the benchmark and the tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import orjson

from leadstream.ingest.signature import sign


def phone_for(i: int) -> str:
    """A valid Indonesian mobile number (Telkomsel 0812 range), as a wa_id."""
    return f"62812{10000000 + i:08d}"


def kapso_message(pnid: str, *, wa_id: str, wamid: str, text: str, ts: int,
                  direction: str = "inbound", name: str | None = None,
                  conversation_id: str | None = None, origin: str = "cloud_api",
                  status: str | None = None) -> dict[str, Any]:
    """One Kapso v2 `whatsapp.message.*` item (a message, or with `status` a delivery
    status about an outbound one)."""
    msg: dict[str, Any] = {
        "id": wamid, "timestamp": str(ts), "type": "text", "text": {"body": text},
        "kapso": {"direction": direction, "status": status or (
                  "received" if direction == "inbound" else "sent"), "origin": origin,
                  "content": text},
    }
    msg["from" if direction == "inbound" else "to"] = wa_id
    if name:
        msg["kapso"]["contact_name"] = name
    return {
        "message": msg,
        "conversation": {"id": conversation_id or f"conv-{wa_id}", "phone_number": wa_id,
                         "phone_number_id": pnid},
        "is_new_conversation": False,
        "phone_number_id": pnid,
    }


def signed(secret: str, body: dict[str, Any] | list[Any]) -> tuple[bytes, str]:
    raw = orjson.dumps(body)
    return raw, sign(secret, raw)


async def post_kapso(session: aiohttp.ClientSession, base: str, secret: str, event: str,
                     body: dict[str, Any]) -> int:
    raw, sig = signed(secret, body)
    async with session.post(f"{base}/webhooks/kapso", data=raw, headers={
            "X-Webhook-Event": event, "X-Webhook-Signature": sig,
            "Content-Type": "application/json"}) as resp:
        await resp.read()
        return resp.status


async def open_loop(rate: float, total: int,
                    one: Callable[[int], Coroutine[Any, Any, None]]) -> float:
    """Start `one(i)` on schedule, `rate` per second, whether or not earlier ones finished;
    returns the seconds the sending took (open-loop load, as real traffic arrives)."""
    started = time.perf_counter()
    tasks: list[asyncio.Task[None]] = []
    for i in range(total):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return time.perf_counter() - started
