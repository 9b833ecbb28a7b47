"""Webhook and API answers on the real broker and Postgres (no worker needed)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiokafka
import orjson
import pytest

from leadstream.config import Settings
from leadstream.db.registry import add_workspace
from leadstream.embedded.tansu import TansuBroker
from leadstream.simulate import kapso_message
from leadstream.streams.records import DeadLetter, InboundEvent
from tests.support.fixtures import StartPipeline
from tests.support.kafka import read_topic
from tests.support.pipeline import PNID, SECRET, TOKEN, Pipeline

pytestmark = pytest.mark.integration


def body(wamid: str = "w1") -> dict:
    return kapso_message(PNID, wa_id="6281312345678", wamid=wamid, text="hi", ts=1_760_000_000)


async def test_valid_webhook_is_on_the_broker_when_200(web: Pipeline) -> None:
    assert await web.kapso("whatsapp.message.received", body()) == 200
    (raw,) = await read_topic(web.settings, web.settings.topic("events"), 1)
    ev = InboundEvent.model_validate_json(raw)
    assert ev.lead_key == "ws1:+6281312345678" and ev.message and ev.message.wamid == "w1"


@pytest.mark.parametrize("case", ["bad", "missing", "other-secret"])
async def test_bad_signature_is_401_and_nothing_written(web: Pipeline, case: str) -> None:
    assert web.session is not None
    raw = orjson.dumps(body())
    headers = {"X-Webhook-Event": "whatsapp.message.received"}
    if case == "bad":
        headers["X-Webhook-Signature"] = "00" * 32
    elif case == "other-secret":
        from leadstream.ingest.signature import sign
        headers["X-Webhook-Signature"] = sign("not-the-secret", raw)
    async with web.session.post(f"{web.base}/webhooks/kapso", data=raw, headers=headers) as r:
        assert r.status == 401
    with pytest.raises(TimeoutError):
        await read_topic(web.settings, web.settings.topic("events"), 1, timeout=1.5)


async def test_unknown_phone_number_id_is_401(web: Pipeline) -> None:
    b = body()
    b["phone_number_id"] = b["conversation"]["phone_number_id"] = "unknown"
    assert await web.kapso("whatsapp.message.received", b) == 401


async def test_oversized_body_is_413(web: Pipeline) -> None:
    assert web.session is not None
    raw = b'{"x": "' + b"a" * (3 * 1024 * 1024 + 10) + b'"}'
    async with web.session.post(f"{web.base}/webhooks/kapso", data=raw,
                                headers={"X-Webhook-Event": "x"}) as r:
        assert r.status == 413


@pytest.mark.parametrize("event,payload,reason", [
    ("whatsapp.message.unheard_of", None, "unknown event type"),
    ("whatsapp.message.received", {"message": {"id": "w"}, "phone_number_id": PNID},
     "neither a phone"),
])
async def test_signed_but_unparseable_goes_to_dlq_with_200(web: Pipeline, event: str,
                                                           payload: dict | None,
                                                           reason: str) -> None:
    sent = payload or body()
    assert await web.kapso(event, sent) == 200
    (raw,) = await read_topic(web.settings, web.settings.topic("dlq"), 1)
    dl = DeadLetter.model_validate_json(raw)
    assert reason in dl.reason and dl.stage == "webhook" and dl.workspace_id == "ws1"
    assert orjson.loads(dl.original) == sent


async def test_signed_non_json_goes_to_dlq(web: Pipeline) -> None:
    assert web.session is not None
    from leadstream.ingest.signature import sign
    raw = b"this is not json"
    async with web.session.post(f"{web.base}/webhooks/kapso", data=raw, headers={
            "X-Webhook-Event": "whatsapp.message.received",
            "X-Webhook-Signature": sign(SECRET, raw)}) as r:
        assert r.status == 200
    (dl_raw,) = await read_topic(web.settings, web.settings.topic("dlq"), 1)
    assert DeadLetter.model_validate_json(dl_raw).original == raw


async def test_broker_down_is_503_never_200(
        pipelines: StartPipeline, settings: Settings, tmp_path: Path) -> None:
    own = TansuBroker(tmp_path).start()
    s = settings.model_copy(update={"kafka_bootstrap_servers": own.bootstrap,
                                    "kafka_flavor": "tansu", "publish_timeout_seconds": 2.0})
    p = await pipelines(s, worker=False)
    try:
        assert await p.kapso("whatsapp.message.received", body("w1")) == 200
        own.kill()
        answers = [await p.kapso("whatsapp.message.received", body(f"w{i}")) for i in range(3)]
        assert answers == [503, 503, 503]
        # the API answers the same way, Retry-After included (one publish-or-503, #26)
        assert p.pool is not None and p.session is not None
        async with p.pool.acquire() as conn:
            await add_workspace(conn, workspace_id="ws1", phone_number_id=None,
                                webhook_secret=None, api_token="tok-sarah-503", role="sarah-bot")
        async with p.session.post(f"{p.base}/api/sarah/state", json={
                "contact_phone": "081312345678"},
                headers={"Authorization": "Bearer tok-sarah-503"}) as r:
            assert r.status == 503 and r.headers["Retry-After"] == "5"
    finally:
        await p.stop()
        own.stop()


async def test_meta_verification_handshake(web: Pipeline) -> None:
    assert web.pool is not None and web.session is not None
    async with web.pool.acquire() as conn:
        await add_workspace(conn, workspace_id="ws1", phone_number_id=PNID, webhook_secret=SECRET,
                            api_token=None, verify_token="vt-123")
    q = {"hub.mode": "subscribe", "hub.verify_token": "vt-123", "hub.challenge": "42"}
    async with web.session.get(f"{web.base}/webhooks/whatsapp", params=q) as r:
        assert r.status == 200 and await r.text() == "42"
    q["hub.verify_token"] = "wrong"
    async with web.session.get(f"{web.base}/webhooks/whatsapp", params=q) as r:
        assert r.status == 403


async def test_meta_webhook_with_hub_signature(web: Pipeline) -> None:
    assert web.session is not None
    from leadstream.ingest.signature import sign
    payload = {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {
        "metadata": {"phone_number_id": PNID},
        "messages": [{"from": "6281312345678", "id": "wamid.M1", "timestamp": "1760000000",
                      "type": "text", "text": {"body": "Halo"}}]}}]}]}
    raw = orjson.dumps(payload)
    async with web.session.post(f"{web.base}/webhooks/whatsapp", data=raw,
                                headers={"X-Hub-Signature-256": "sha256=" + sign(SECRET, raw)}) as r:
        assert r.status == 200
    async with web.session.post(f"{web.base}/webhooks/whatsapp", data=raw,
                                headers={"X-Hub-Signature-256": "sha256=" + "0" * 64}) as r:
        assert r.status == 401


async def test_meta_values_and_bodies_are_bounded_in_events(web: Pipeline) -> None:
    """Issue #24: a Meta change value was bounded per value, not per message or status in
    it; now a value with more than 1,000 statuses is dead-lettered with its reason, and the
    other values of the same body are accepted."""
    assert web.session is not None
    from leadstream.ingest.signature import sign

    def value(statuses: int, first: int) -> dict[str, object]:
        return {"metadata": {"phone_number_id": PNID}, "statuses": [
            {"id": f"wamid.B{first + i}", "status": "delivered", "timestamp": "1760000000",
             "recipient_id": "6281312345678"} for i in range(statuses)]}

    payload = {"object": "whatsapp_business_account", "entry": [{"changes": [
        {"value": value(1001, 0)}, {"value": value(3, 5000)}]}]}
    raw = orjson.dumps(payload)
    async with web.session.post(f"{web.base}/webhooks/whatsapp", data=raw,
                                headers={"X-Hub-Signature-256": "sha256=" + sign(SECRET, raw)}) as r:
        assert r.status == 200
        answer = await r.json()
    assert answer["accepted"] == 3 and answer["dead_lettered"] == 1
    assert "more than 1000 messages, statuses and contacts" in answer["reasons"][0]


async def test_api_auth_validation_and_isolation(web: Pipeline) -> None:
    assert web.session is not None and web.pool is not None
    url = f"{web.base}/api/sarah/state"
    ok = {"contact_phone": "0813 1234 5678", "chat_phase": "B", "lead_score": 40,
          "extracted_data": {"name": "Budi"}}
    async with web.session.post(url, json=ok) as r:
        assert r.status == 401
    async with web.pool.acquire() as conn:
        await add_workspace(conn, workspace_id="ws1", phone_number_id=None, webhook_secret=None,
                            api_token="tok-sarah", role="sarah-bot")
    # roles per endpoint: a human token may not post Sarah's extraction, Sarah may not note
    async with web.session.post(url, json=ok, headers={"Authorization": f"Bearer {TOKEN}"}
                                ) as r:
        assert r.status == 403
    auth = {"Authorization": "Bearer tok-sarah"}
    async with web.session.post(url, json=ok, headers={"Authorization": "Bearer nope"}) as r:
        assert r.status == 401
    async with web.session.post(url, json={**ok, "lead_score": 101, "lead_temperature": "boiling"},
                                headers=auth) as r:
        assert r.status == 422
        fields = {tuple(f["loc"]) for f in (await r.json())["fields"]}
        assert fields == {("lead_score",), ("lead_temperature",)}
    async with web.session.post(url, json={**ok, "contact_phone": "12"}, headers=auth) as r:
        assert r.status == 422
    async with web.session.post(url, json=ok, headers=auth) as r:
        assert r.status == 202
        assert (await r.json())["lead_key"] == "ws1:+6281312345678"
    # a lead of another workspace is 404 for this token
    async with web.pool.acquire() as conn:
        await add_workspace(conn, workspace_id="ws2", phone_number_id=None, webhook_secret=None,
                            api_token="tok-other")
        await conn.execute(
            "INSERT INTO leads (lead_id, workspace_id, lead_key, created_at, updated_at,"
            " last_activity_at, version) VALUES"
            " ('00000000-0000-0000-0000-000000000001', 'ws1', 'ws1:x', now(), now(), now(), 1)")
    lead_url = f"{web.base}/api/leads/00000000-0000-0000-0000-000000000001"
    async with web.session.get(lead_url, headers={"Authorization": "Bearer tok-other"}) as r:
        assert r.status == 404
    async with web.session.post(lead_url + "/notes", json={"content": "x"},
                                headers={"Authorization": "Bearer tok-other"}) as r:
        assert r.status == 404
    async with web.session.get(lead_url, headers=auth) as r:
        assert r.status == 200  # any role reads
    # Sarah may add notes (issue #25), not move a status or edit a lead
    async with web.session.post(lead_url + "/notes", json={"content": "x"}, headers=auth) as r:
        assert r.status == 202
    async with web.session.post(lead_url + "/status", json={"status": "archived"},
                                headers=auth) as r:
        assert r.status == 403
    async with web.session.patch(lead_url, json={"name": "x"}, headers=auth) as r:
        assert r.status == 403
    human = {"Authorization": f"Bearer {TOKEN}"}
    async with web.session.post(lead_url + "/status", json={"status": "won"}, headers=human) as r:
        assert r.status == 422


async def test_a_kapso_batch_lands_where_each_lead_belongs_in_order(
    web: Pipeline,
) -> None:
    """Every record of a lead on the partition its key hashes to (Kafka's murmur2, as every
    client computes it), in the batch's order."""
    from aiokafka.partitioner import DefaultPartitioner

    phones = ["6281312340001"] * 12 + ["6281312340002"] * 6 + ["6281312340003"]
    items = [kapso_message(PNID, wa_id=p, wamid=f"wb{i}", text="hi", ts=1_760_000_000 + i)
             for i, p in enumerate(phones)]
    assert await web.kapso("whatsapp.message.received",
                           {"type": "whatsapp.message.received", "batch": True,
                            "data": items}) == 200
    consumer = aiokafka.AIOKafkaConsumer(web.settings.topic("events"),
                                         bootstrap_servers=web.settings.bootstrap,
                                         auto_offset_reset="earliest", fetch_max_wait_ms=20)
    await consumer.start()
    got: list[tuple[int, InboundEvent]] = []
    try:
        async with asyncio.timeout(10):
            while len(got) < len(items):
                for tp, rs in (await consumer.getmany(timeout_ms=100)).items():
                    got += [(tp.partition, InboundEvent.model_validate_json(r.value))
                            for r in rs]
    finally:
        await consumer.stop()
    parts = list(range(web.settings.topic_partitions))
    for partition, ev in got:
        assert partition == DefaultPartitioner()(ev.lead_key.encode(), parts, parts)
    for phone in set(phones):
        wamids = [ev.message.wamid for _, ev in got if ev.message and ev.wa_id == phone]
        assert wamids == [f"wb{i}" for i, p in enumerate(phones) if p == phone]


async def test_a_requests_log_lines_carry_its_id_and_workspace(web: Pipeline) -> None:
    """JSON logs (ops.logs): the id the sender gave (`X-Request-ID`) is answered back and is
    on every line of its request, with the workspace; a request without one gets a new id."""
    import logging

    from leadstream.ingest.signature import sign
    from leadstream.ops.logs import JsonFormatter

    assert web.session is not None
    lines: list[dict] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(orjson.loads(JsonFormatter().format(record)))

    handler = Keep(level=logging.WARNING)
    logger = logging.getLogger("leadstream.http.webhooks")
    logger.addHandler(handler)
    try:
        bad = {"message": {"id": "w"}, "phone_number_id": PNID}  # dead-lettered: logged
        raw = orjson.dumps(bad)
        headers = {"X-Webhook-Event": "whatsapp.message.received",
                   "X-Webhook-Signature": sign(SECRET, raw), "X-Request-ID": "kapso-req-42"}
        async with web.session.post(f"{web.base}/webhooks/kapso", data=raw,
                                    headers=headers) as r:
            assert r.status == 200 and r.headers["X-Request-ID"] == "kapso-req-42"
        headers["X-Request-ID"] = "not an id; with spaces"
        async with web.session.post(f"{web.base}/webhooks/kapso", data=raw,
                                    headers=headers) as r:
            made = r.headers["X-Request-ID"]
            assert r.status == 200 and len(made) == 32 and made.isalnum()
        async with web.session.get(f"{web.base}/healthz") as r:  # answered on every route
            assert len(r.headers["X-Request-ID"]) == 32 and r.headers["X-Request-ID"] != made
    finally:
        logger.removeHandler(handler)
    dead = [x for x in lines if "dead-lettered" in x["msg"]]
    assert [(x["request_id"], x["workspace"]) for x in dead] == [
        ("kapso-req-42", "ws1"), (made, "ws1")]
