"""Fuzzing both webhooks with the real broker, Postgres and worker (issue #14).

Seeded and property-based: valid Kapso and Meta deliveries are mutated (a random subtree
replaced by a random JSON value of any type, size and Unicode, keys dropped, types swapped),
or replaced by random bytes, truncated JSON, invalid UTF-8 and huge numbers, and sent with a
correct, wrong, foreign, non-ASCII or missing signature. Properties, for every case:

* the answer is one of the contract's (200, 401, 413): no 5xx (the broker is up);
* a case signed with the secret of the number it is filed under is answered 200 (413 over
  the body limit), and every one of its items is accepted or dead-lettered;
* afterwards the pipeline still works: a probe message becomes visible in the replica.

Bounded: `LEADSTREAM_FUZZ_CASES` (8,000) cases, 16 in flight; the figures print at the end
of `make test`.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from leadstream.config import Settings
from leadstream.db.registry import add_workspace
from leadstream.ingest.signature import sign
from leadstream.simulate import kapso_message
from tests.support.figures import FUZZ
from tests.support.fixtures import StartPipeline
from tests.support.pipeline import PNID, SECRET, eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CASES = int(os.environ.get("LEADSTREAM_FUZZ_CASES", "8000"))
#: figures for the terminal summary (conftest)

EVENTS = ["whatsapp.message.received", "whatsapp.message.sent", "whatsapp.message.delivered",
          "whatsapp.message.read", "whatsapp.message.failed", "whatsapp.conversation.created",
          "whatsapp.contact.identity_changed", "whatsapp.unknown", "", "x" * 300]
#: what decides where a delivery is filed: kept intact in the cases counted as signed
ROUTING = {"phone_number_id", "metadata", "object", "entry", "changes", "value", "batch", "data"}


def _routing(path: tuple[Any, ...]) -> bool:
    last = path[-1]
    return last in ROUTING or (isinstance(last, int) and len(path) > 1 and path[-2] in ROUTING)


def rand_text(rng: random.Random) -> str:
    n = rng.choice([0, 1, 5, 40, 300, 3000, 20_000])
    pools = ["abc ", "\x00\x01\t\n\"\\", "éü漢字😀", "\u202e\ufeff\u200b", "0123456789+-"]
    pool = rng.choice(pools)
    return "".join(rng.choice(pool) for _ in range(min(n, 3000))) * max(1, n // 3000)


def rand_json(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["null", "bool", "int", "float", "str", "list", "dict"]
    if depth > 3:
        kinds = kinds[:5]
    kind = rng.choice(kinds)
    if kind == "null":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice([0, -1, 1, 2**31, -2**63, 2**63 - 1, 1_760_000_000, 253402300800])
    if kind == "float":
        return rng.choice([0.5, -1e308, 1e308, 1.76e9, float("1e-300")])
    if kind == "str":
        return rand_text(rng)
    if kind == "list":
        return [rand_json(rng, depth + 1) for _ in range(rng.choice([0, 1, 3, 50]))]
    return {rand_text(rng)[:20] or "k": rand_json(rng, depth + 1)
            for _ in range(rng.choice([0, 1, 4]))}


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def mutate(rng: random.Random, body: Any, keep_routing: bool) -> Any:
    """A copy of `body` with 1-3 random changes (routing fields untouched if asked)."""
    body = orjson.loads(orjson.dumps(body))
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _paths(body) if p and not (keep_routing and _routing(p))]
        if not paths:
            break
        path = rng.choice(paths)
        parent = body
        for k in path[:-1]:
            parent = parent[k]
        if isinstance(parent, dict) and rng.random() < 0.3:
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = rand_json(rng)
    return body


def kapso_single(rng: random.Random, pnid: str = PNID) -> dict[str, Any]:
    return kapso_message(pnid, wa_id=f"62813{rng.randint(10**7, 10**8 - 1)}",
                         wamid=f"wamid.fz{rng.getrandbits(48)}", text="halo",
                         ts=int(time.time()) - rng.randint(0, 86400))


def kapso_batch(rng: random.Random) -> dict[str, Any]:
    items = [kapso_single(rng, rng.choice([PNID, PNID, "pnid-2", "pnid-unknown"]))
             for _ in range(rng.choice([0, 1, 3, 10]))]
    return {"type": "whatsapp.message.received", "batch": True, "data": items,
            "phone_number_id": PNID}


def meta_body(rng: random.Random) -> dict[str, Any]:
    def change(pnid: str) -> dict[str, Any]:
        wa = f"62813{rng.randint(10**7, 10**8 - 1)}"
        return {"field": "messages", "value": {
            "messaging_product": "whatsapp", "metadata": {"phone_number_id": pnid},
            "contacts": [{"wa_id": wa, "profile": {"name": "Budi"}}],
            "messages": [{"from": wa, "id": f"wamid.fm{rng.getrandbits(48)}",
                          "timestamp": str(int(time.time())), "type": "text",
                          "text": {"body": "halo"}}]}}

    return {"object": "whatsapp_business_account", "entry": [
        {"id": "waba", "changes": [change(PNID)] + [change(rng.choice([PNID, "pnid-2"]))
                                                    for _ in range(rng.choice([0, 1]))]}]}


def raw_garbage(rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return rng.randbytes(rng.choice([0, 1, 100, 5000]))
    if kind == 1:
        return orjson.dumps(kapso_single(rng))[: rng.randint(1, 200)]
    if kind == 2:
        return b'{"phone_number_id": "pnid-1", "message": {"timestamp": ' + b"9" * 400 + b"}}"
    if kind == 3:
        return b"\xef\xbb\xbf" + orjson.dumps(kapso_single(rng))  # a BOM
    if kind == 4:
        return orjson.dumps(kapso_single(rng)).replace(b"halo", b"\xff\xfe\xc3")
    return b"[" * 5000 + b"]" * 5000


def make_case(rng: random.Random) -> tuple[str, bytes, dict[str, str], bool]:
    """(path, body, headers, signed): `signed` when the body is signed with the secret of
    the number every item names (routing untouched), so it must be accepted or
    dead-lettered."""
    meta = rng.random() < 0.35
    roll = rng.random()
    routing_kept = roll < 0.5
    if roll < 0.85:
        base = meta_body(rng) if meta else (kapso_batch(rng) if rng.random() < 0.3
                                            else kapso_single(rng))
        raw = orjson.dumps(mutate(rng, base, keep_routing=routing_kept)
                           if rng.random() < 0.9 else base)
    else:
        raw, routing_kept = raw_garbage(rng), False
    how = rng.choices(["ok", "wrong", "foreign", "non-ascii", "missing"],
                      weights=[5, 2, 1, 1, 1])[0]
    secret = {"ok": SECRET, "foreign": "s2"}.get(how, "nope")
    sig = sign(secret, raw)
    if how == "non-ascii":
        sig = "é" * 64
    headers: dict[str, str] = {"Content-Type": "application/json"}
    if how != "missing":
        if meta:
            headers["X-Hub-Signature-256"] = f"sha256={sig}"
        else:
            headers["X-Webhook-Signature"] = sig
    if not meta:
        headers["X-Webhook-Event"] = rng.choice(EVENTS)
    signed = how == "ok" and routing_kept
    return ("/webhooks/whatsapp" if meta else "/webhooks/kapso"), raw, headers, signed


async def test_fuzzed_webhooks_never_answer_5xx_and_the_pipeline_goes_on(pipelines: StartPipeline,
    settings: Settings, tmp_path: Path,
) -> None:
    p = await pipelines(settings)
    assert p.pool is not None and p.session is not None
    async with p.pool.acquire() as conn:
        await add_workspace(conn, workspace_id="ws2", phone_number_id="pnid-2",
                            webhook_secret="s2", api_token=None)
    rng = random.Random(20261129)
    statuses: Counter[int] = Counter()
    dead_lettered = accepted = signed_cases = 0
    problems: list[str] = []
    started = time.monotonic()
    try:
        queue: asyncio.Queue[tuple[str, bytes, dict[str, str], bool] | None] = asyncio.Queue(64)

        async def sender() -> None:
            nonlocal dead_lettered, accepted, signed_cases
            assert p.session is not None
            while (case := await queue.get()) is not None:
                path, raw, headers, signed = case
                async with p.session.post(f"{p.base}{path}", data=raw, headers=headers) as r:
                    text = await r.read()
                    statuses[r.status] += 1
                if r.status not in (200, 401, 413) and len(problems) < 10:
                    problems.append(f"{r.status} for {path} {raw[:120]!r}: {text[:200]!r}")
                if r.status == 200:
                    answer = orjson.loads(text)
                    accepted += answer["accepted"]
                    dead_lettered += answer.get("dead_lettered", 0)
                if signed:
                    signed_cases += 1
                    # over the body limit the contract's answer is 413, signed or not
                    want = 413 if len(raw) > settings.max_body_bytes else 200
                    if r.status != want and len(problems) < 10:
                        problems.append(f"signed case answered {r.status}: {raw[:200]!r}")

        senders = [asyncio.create_task(sender()) for _ in range(16)]
        for _ in range(CASES):
            await queue.put(make_case(rng))
        for _ in senders:
            await queue.put(None)
        await asyncio.gather(*senders)
        seconds = time.monotonic() - started
        # the pipeline goes on: a probe sent now reaches the replica
        t0 = time.monotonic()
        assert await p.message("6281399990000", "wamid.probe-after-fuzz") == 200
        await eventually(lambda: p.fetchrow(
            "SELECT 1 FROM messages WHERE message_id = 'wamid.probe-after-fuzz'"), timeout=120)
        probe_s = time.monotonic() - t0
        FUZZ.append({"what": "webhooks", "cases": CASES, "seconds": round(seconds, 1),
                     "statuses": dict(statuses),
                     "signed": signed_cases, "accepted": accepted,
                     "dead_lettered": dead_lettered,
                     "5xx": sum(n for s, n in statuses.items() if s >= 500),
                     "probe_visible_s": round(probe_s, 2)})
        assert not problems, problems
        assert sum(statuses.values()) == CASES
        assert signed_cases > CASES // 5 and dead_lettered > 0 and accepted > 0
    finally:
        await p.stop()
