"""Hostile and careless input at the webhook: each case here got a wrong answer (a 500, a
wrong workspace, a slow refusal, a half-applied event) before the hardening (issue #14)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from leadstream.db.registry import add_workspace
from leadstream.http.keys import DIRECTORY
from leadstream.ingest.signature import sign
from leadstream.simulate import kapso_message
from leadstream.streams.records import DeadLetter, InboundEvent
from tests.support.kafka import read_topic
from tests.support.pipeline import PNID, SECRET, Pipeline

pytestmark = pytest.mark.integration

OTHER_PNID, OTHER_SECRET = "pnid-2", "other-secret"


@pytest.fixture
async def web(web: Pipeline) -> Pipeline:
    """The shared `web` fixture, seeded for these tests."""
    p = web
    assert p.pool is not None
    async with p.pool.acquire() as conn:
        await add_workspace(conn, workspace_id="ws2", phone_number_id=OTHER_PNID,
                            webhook_secret=OTHER_SECRET, api_token=None)
    return p


async def _post(p: Pipeline, path: str, raw: bytes, headers: dict[str, str]
                ) -> tuple[int, Any]:
    assert p.session is not None
    async with p.session.post(f"{p.base}{path}", data=raw, headers=headers) as r:
        text = await r.text()
        return r.status, (orjson.loads(text) if text.startswith("{") else text)


def _kapso_headers(raw: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Webhook-Event": "whatsapp.message.received",
            "X-Webhook-Signature": sign(secret, raw)}


def _msg(pnid: str, wamid: str, ts: int = 1_760_000_000, **kw: Any) -> dict[str, Any]:
    return kapso_message(pnid, wa_id="6281312345678", wamid=wamid, text="hi", ts=ts, **kw)


async def test_a_batch_naming_two_workspaces_files_each_item_under_its_own_or_dead_letters_it(
    web: Pipeline,
) -> None:
    """Signed by ws1's secret: ws1's item is accepted; ws2's item is not filed under ws1 (it
    was, before) nor under ws2 (ws2's secret did not sign it): it is dead-lettered."""
    raw = orjson.dumps({"type": "whatsapp.message.received", "batch": True,
                        "data": [_msg(PNID, "w-own"), _msg(OTHER_PNID, "w-other")]})
    status, answer = await _post(web, "/webhooks/kapso", raw, _kapso_headers(raw))
    assert status == 200
    assert answer["accepted"] == 1 and answer["dead_lettered"] == 1
    assert "pnid-2" in answer["reasons"][0]
    (ev_raw,) = await read_topic(web.settings, web.settings.topic("events"), 1)
    ev = InboundEvent.model_validate_json(ev_raw)
    assert ev.workspace_id == "ws1" and ev.message and ev.message.wamid == "w-own"
    (dl_raw,) = await read_topic(web.settings, web.settings.topic("dlq"), 1)
    dl = DeadLetter.model_validate_json(dl_raw)
    assert orjson.loads(dl.original)["message"]["id"] == "w-other"


async def test_a_meta_delivery_files_each_entry_under_its_own_number(web: Pipeline) -> None:
    def entry(pnid: str, wamid: str) -> dict[str, Any]:
        return {"id": "waba", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp", "metadata": {"phone_number_id": pnid},
            "contacts": [{"wa_id": "6281312345678", "profile": {"name": "Budi"}}],
            "messages": [{"from": "6281312345678", "id": wamid, "timestamp": "1760000000",
                          "type": "text", "text": {"body": "halo"}}]}}]}

    raw = orjson.dumps({"object": "whatsapp_business_account",
                        "entry": [entry(OTHER_PNID, "m-other"), entry(PNID, "m-own")]})
    status, answer = await _post(web, "/webhooks/whatsapp", raw, {
        "X-Hub-Signature-256": "sha256=" + sign(SECRET, raw)})
    assert status == 200 and answer["accepted"] == 1 and answer["dead_lettered"] == 1
    (ev_raw,) = await read_topic(web.settings, web.settings.topic("events"), 1)
    assert InboundEvent.model_validate_json(ev_raw).workspace_id == "ws1"


@pytest.mark.parametrize("signature", ["ü" * 64, "sha256=\u00e9\u00e9"])
async def test_non_ascii_signature_is_401_not_500(web: Pipeline, signature: str) -> None:
    raw = orjson.dumps(_msg(PNID, "w1"))
    assert web.session is not None
    async with web.session.post(f"{web.base}/webhooks/kapso", data=raw, headers={
            "X-Webhook-Event": "whatsapp.message.received",
            "X-Webhook-Signature": signature.encode().decode("latin-1")}) as r:
        assert r.status == 401


async def test_non_ascii_verify_token_is_403_not_500(web: Pipeline) -> None:
    assert web.session is not None
    async with web.session.get(f"{web.base}/webhooks/whatsapp", params={
            "hub.mode": "subscribe", "hub.verify_token": "tökén", "hub.challenge": "1"}) as r:
        assert r.status == 403


@pytest.mark.parametrize("shape", [
    [1, 2, 3], "text", 42, {"phone_number_id": ["x"]}, {"conversation": "pnid-1"},
    {"batch": True, "data": "nope", "phone_number_id": {"a": 1}},
    {"object": "whatsapp_business_account", "entry": "x"},
    {"object": "whatsapp_business_account", "entry": [{"changes": [1, "a", None]}]},
])
async def test_unsigned_odd_shapes_are_401(web: Pipeline, shape: Any) -> None:
    raw = orjson.dumps(shape)
    for path in ("/webhooks/kapso", "/webhooks/whatsapp"):
        status, _ = await _post(web, path, raw, {"X-Webhook-Event": "x",
                                                 "X-Webhook-Signature": "00"})
        assert status == 401, (path, shape)


def _odd(name: str) -> dict[str, Any]:
    m = _msg(PNID, f"w-{name}")
    if name == "phone-as-number":
        m["conversation"]["phone_number"] = 6281312345678
        m["message"]["from"] = 6281312345678
    elif name == "huge-timestamp":
        m["message"]["timestamp"] = "9" * 400
    elif name == "kapso-as-string":
        m["message"]["kapso"] = "kapso"
    elif name == "far-future":
        m["message"]["timestamp"] = "253402214400"  # 9999-12-31
    elif name == "year-3000":
        m["message"]["timestamp"] = "32503680000"
    elif name == "long-id":
        m["message"]["id"] = "w" * 5000
    elif name == "long-name":
        m["message"]["kapso"]["contact_name"] = "n" * 5000
    elif name == "message-as-list":
        m["message"] = [1]
    return m


@pytest.mark.parametrize("name", ["phone-as-number", "huge-timestamp", "kapso-as-string",
                                  "far-future", "year-3000", "long-id", "long-name",
                                  "message-as-list"])
async def test_signed_garbage_is_200_and_dead_lettered_never_500(web: Pipeline,
                                                                 name: str) -> None:
    raw = orjson.dumps(_odd(name))
    status, answer = await _post(web, "/webhooks/kapso", raw, _kapso_headers(raw))
    if name == "phone-as-number":  # a wa_id sent as a number is still readable
        assert status == 200 and answer["accepted"] == 1
        return
    assert status == 200, answer
    assert answer["accepted"] == 0 and answer["dead_lettered"] == 1, answer
    (dl_raw,) = await read_topic(web.settings, web.settings.topic("dlq"), 1)
    assert DeadLetter.model_validate_json(dl_raw).original == raw


async def test_nul_in_a_contact_name_is_stripped_at_the_edge(web: Pipeline) -> None:
    m = _msg(PNID, "w-nul")
    m["message"]["kapso"]["contact_name"] = "Bu\x00di"
    raw = orjson.dumps(m)
    status, answer = await _post(web, "/webhooks/kapso", raw, _kapso_headers(raw))
    assert status == 200 and answer["accepted"] == 1
    (ev_raw,) = await read_topic(web.settings, web.settings.topic("events"), 1)
    assert InboundEvent.model_validate_json(ev_raw).contact_name == "Budi"


async def test_many_unknown_numbers_cost_one_directory_reload(web: Pipeline) -> None:
    """Ten unknown phone_number_ids in one unsigned Meta body: refused after one reload
    (was one reload per id, 0.5 s apart: 5 s), and a repeat within the negative TTL none."""
    assert web.server is not None
    directory = web.server.app[DIRECTORY]
    entries = [{"changes": [{"value": {"metadata": {"phone_number_id": f"unknown-{i}"}}}]}
               for i in range(10)]
    raw = orjson.dumps({"object": "whatsapp_business_account", "entry": entries})
    before = directory.reloads
    status, _ = await _post(web, "/webhooks/whatsapp", raw, {"X-Hub-Signature-256": "sha256=0"})
    assert status == 401
    assert directory.reloads - before <= 1
    status, _ = await _post(web, "/webhooks/whatsapp", raw, {"X-Hub-Signature-256": "sha256=0"})
    assert status == 401 and directory.reloads - before <= 1


async def test_every_answer_carries_the_security_headers(web: Pipeline) -> None:
    """The dashboard may not be framed, sniffed or made to run foreign script."""
    assert web.session is not None
    for path in ("/", "/api/leads", "/webhooks/kapso"):
        async with web.session.get(f"{web.base}{path}") as r:
            assert r.headers["X-Frame-Options"] == "DENY", path
            assert r.headers["X-Content-Type-Options"] == "nosniff", path
            csp = r.headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp, path


async def test_tampered_cursors_and_odd_queries_are_422_not_500(web: Pipeline) -> None:
    assert web.session is not None
    auth = {"Authorization": "Bearer tok-human"}
    bad = [orjson.dumps(x).hex() for x in ({"a": 1}, [1], ["x", "y"], [2**40, "0" * 36],
                                           ["2026-01-01T00:00:00", "0" * 36])]
    for cursor in [*bad, "zz"]:
        async with web.session.get(f"{web.base}/api/leads", params={
                "cursor": cursor, "sort": "lead_score"}, headers=auth) as r:
            assert r.status == 422, (cursor, await r.text())
    for q in ("\x00", "%", "_\\", "a" * 201):
        async with web.session.get(f"{web.base}/api/leads", params={"q": q},
                                   headers=auth) as r:
            assert r.status in (200, 422), (q, r.status)
    async with web.session.get(f"{web.base}/api/leads", params={"min_score": str(2**40)},
                               headers=auth) as r:
        assert r.status == 422


async def test_a_rotated_secret_and_its_predecessor_both_verify_during_the_overlap(
    web: Pipeline,
) -> None:
    from datetime import timedelta

    from leadstream.db.registry import rotate_secret

    assert web.pool is not None
    async with web.pool.acquire() as conn:
        assert await rotate_secret(conn, PNID, "new-secret", timedelta(hours=1))
        assert not await rotate_secret(conn, "no-such-number", "x", timedelta(hours=1))
    assert web.server is not None
    directory = web.server.app[DIRECTORY]
    directory.numbers.clear()  # as if the background reload ran
    for i, secret in enumerate((SECRET, "new-secret")):
        raw = orjson.dumps(_msg(PNID, f"w-rot-{i}"))
        status, _ = await _post(web, "/webhooks/kapso", raw, _kapso_headers(raw, secret))
        assert status == 200, secret
    raw = orjson.dumps(_msg(PNID, "w-rot-x"))
    status, _ = await _post(web, "/webhooks/kapso", raw, _kapso_headers(raw, "other"))
    assert status == 401
    async with web.pool.acquire() as conn:  # the overlap is over
        await conn.execute("UPDATE workspace_numbers SET previous_secret_until = now()")
    directory.numbers.clear()
    raw = orjson.dumps(_msg(PNID, "w-rot-old"))
    status, _ = await _post(web, "/webhooks/kapso", raw, _kapso_headers(raw, SECRET))
    assert status == 401


async def test_a_flood_of_bad_tokens_costs_one_directory_reload(web: Pipeline) -> None:
    """Before: every unknown token reloaded the directory, each reload at least 0.5 s after
    the last under one lock, so bad tokens queued every API request behind them."""
    assert web.server is not None and web.session is not None
    directory = web.server.app[DIRECTORY]
    before = directory.reloads
    for _ in range(20):
        async with web.session.get(f"{web.base}/api/leads",
                                   headers={"Authorization": "Bearer not-a-token"}) as r:
            assert r.status == 401
    assert directory.reloads - before <= 1


async def test_a_4kb_sarah_field_is_refused_at_the_edge(web: Pipeline) -> None:
    """Before: any token could post a 4 kB `domisili`; its btree index entry was over
    Postgres' limit and the sink retried that batch forever, for every workspace."""
    assert web.pool is not None and web.session is not None
    async with web.pool.acquire() as conn:
        await add_workspace(conn, workspace_id="ws1", phone_number_id=None, webhook_secret=None,
                            api_token="tok-sarah", role="sarah-bot")
    body = {"contact_phone": "081312345678", "extracted_data": {"domisili": "x" * 4000}}
    async with web.session.post(f"{web.base}/api/sarah/state", json=body,
                                headers={"Authorization": "Bearer tok-sarah"}) as r:
        assert r.status == 422
        fields = (await r.json())["fields"]
        assert any(f["loc"][-1] == "domisili" for f in fields), fields
    body["extracted_data"] = {"domisili": "Bandung\x00", "pain_points": ["a"] * 51}
    async with web.session.post(f"{web.base}/api/sarah/state", json=body,
                                headers={"Authorization": "Bearer tok-sarah"}) as r:
        assert r.status == 422  # 51 pain points: over the list limit
    body["extracted_data"] = {"domisili": "Band\x00ung"}
    async with web.session.post(f"{web.base}/api/sarah/state", json=body,
                                headers={"Authorization": "Bearer tok-sarah"}) as r:
        assert r.status == 202  # the NUL is stripped, the rest is kept
    (raw,) = await read_topic(web.settings, web.settings.topic("sarah"), 1)
    assert orjson.loads(raw)["extracted"]["domisili"] == "Bandung"


async def test_verifying_a_body_costs_bounded_hmac_work(web: Pipeline) -> None:
    """A body is hashed once per distinct secret of the numbers it names, within a budget:
    a 3 MiB body naming many registered numbers, or an unreadable one with many numbers
    registered, is refused instead of costing seconds of CPU."""
    from leadstream.http import webhooks

    assert web.pool is not None and web.server is not None
    async with web.pool.acquire() as conn:
        for i in range(30):
            await add_workspace(conn, workspace_id=f"wsx{i}", phone_number_id=f"pnx{i}",
                                webhook_secret=f"sx{i}", api_token=None)
    await web.server.app[DIRECTORY].refresh(force=True)
    filler = "x" * (webhooks.MATCH_BUDGET_BYTES // 30)
    items = [{**_msg(f"pnx{i}", f"wx{i}"), "pad": filler if i == 0 else ""}
             for i in range(30)]
    raw = orjson.dumps({"type": "whatsapp.message.received", "batch": True, "data": items})
    status, answer = await _post(web, "/webhooks/kapso", raw, _kapso_headers(raw, "sx0"))
    assert status == 401 and "too many numbers" in answer["error"]
    garbage = b"\x00" * (webhooks.MATCH_BUDGET_BYTES // 30)  # x 32 numbers: over budget
    status, _ = await _post(web, "/webhooks/kapso", garbage, _kapso_headers(garbage, "sx0"))
    assert status == 401  # unreadable, and too large to try against every secret
