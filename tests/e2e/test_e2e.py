"""Signed webhook -> broker -> Faust worker -> Postgres, on the real parts."""

from __future__ import annotations

import asyncio
import json

import pytest

from leadstream.domain.identity import lead_id_for
from tests.support.pipeline import Pipeline, eventually, table_checksums

pytestmark = pytest.mark.integration


@pytest.mark.tansu  # also in the Tansu smoke run (make test)
async def test_signed_message_becomes_lead_and_message_rows(pipeline: Pipeline) -> None:
    assert await pipeline.message("6281312345678", "wamid.A1", text="Halo kak") == 200
    lead = await eventually(lambda: pipeline.fetchrow(
        "SELECT * FROM leads WHERE phone_e164 = '+6281312345678'"), timeout=60)
    assert str(lead["lead_id"]) == lead_id_for("ws1:+6281312345678")
    assert lead["workspace_id"] == "ws1"
    assert lead["message_count"] == 1
    assert lead["kapso_name"] == "Budi" and lead["name"] == "Budi"
    assert lead["lead_status"] == "new"
    msg = await eventually(lambda: pipeline.fetchrow(
        "SELECT * FROM messages WHERE message_id = 'wamid.A1'"))
    assert msg["direction"] == "inbound" and msg["text"] == "Halo kak"
    assert msg["lead_id"] == lead["lead_id"]


async def test_same_webhook_twice_leaves_one_message(pipeline: Pipeline) -> None:
    for _ in range(2):
        assert await pipeline.message("6281312345679", "wamid.D1") == 200
    assert await pipeline.message("6281312345679", "wamid.D2", ts=1_760_000_100) == 200
    lead = await eventually(lambda: pipeline.fetchrow(
        "SELECT * FROM leads WHERE phone_e164 = '+6281312345679' AND message_count >= 2"),
        timeout=60)
    assert lead["message_count"] == 2
    rows = await pipeline.fetch("SELECT message_id FROM messages WHERE lead_id = $1",
                                lead["lead_id"])
    assert sorted(r["message_id"] for r in rows) == ["wamid.D1", "wamid.D2"]


async def _counts(p: Pipeline) -> dict[str, int]:
    rows = await p.fetch("SELECT phone_e164, message_count FROM leads")
    return {r["phone_e164"]: r["message_count"] for r in rows}


@pytest.mark.slow
async def test_worker_killed_mid_stream_loses_nothing_and_counts_nothing_twice(
    pipeline: Pipeline,
) -> None:
    """SIGKILL the worker twice while acknowledged traffic flows; restart; compare exactly."""
    leads, per_lead = 20, 12
    acked: dict[str, int] = {}
    sent = 0
    for round_ in range(per_lead):
        for i in range(leads):
            wa = f"62812{20000000 + i:08d}"
            wamid = f"wamid.k.{i}.{round_}"
            status = await pipeline.message(wa, wamid, ts=1_760_000_000 + round_ * 60 + i)
            assert status == 200
            acked["+" + wa] = acked.get("+" + wa, 0) + 1
            # redeliver some of them: must not count twice
            if (i + round_) % 7 == 0:
                assert await pipeline.message(wa, wamid, ts=1_760_000_000 + round_ * 60 + i) == 200
            sent += 1
        if round_ in (3, 8):
            # kill a worker that has built state (so the next one must recover it), while it
            # still has the last round in flight
            done = sent - leads
            await eventually(lambda n=done: _processed_at_least(pipeline, n),  # type: ignore[misc]
                             timeout=90)
            pipeline.worker.kill()
            pipeline.worker.start()
    assert sent == leads * per_lead
    try:
        await eventually(lambda: _counts_equal(pipeline, acked), timeout=120)
    except AssertionError:
        got = await _counts(pipeline)
        diff = {k: (v, got.get(k)) for k, v in acked.items() if got.get(k) != v}
        raise AssertionError(f"message_count differs (want, got): {diff}") from None
    row = await pipeline.fetchrow("SELECT count(*) AS n FROM messages")
    assert row is not None and row["n"] == sent


async def _processed_at_least(p: Pipeline, n: int) -> bool:
    row = await p.fetchrow("SELECT coalesce(sum(message_count), 0) AS n FROM leads")
    return row is not None and row["n"] >= n


async def _counts_equal(p: Pipeline, want: dict[str, int]) -> bool:
    return await _counts(p) == want


async def _api(p: Pipeline, method: str, path: str, token: str, json: dict) -> int:
    assert p.session is not None
    async with p.session.request(method, f"{p.base}{path}", json=json,
                                 headers={"Authorization": f"Bearer {token}"}) as r:
        await r.read()
        return r.status


async def test_lead_model_through_the_pipeline(pipeline: Pipeline) -> None:
    """Sarah merges, status policy with history, notes and edits, as the rules say."""
    assert pipeline.pool is not None
    from leadstream.db.registry import add_workspace
    async with pipeline.pool.acquire() as conn:
        await add_workspace(conn, workspace_id="ws1", phone_number_id=None, webhook_secret=None,
                            api_token="tok-brain", role="brain-bot")
        await add_workspace(conn, workspace_id="ws1", phone_number_id=None, webhook_secret=None,
                            api_token="tok-sarah", role="sarah-bot")
    # a delivery receipt before its message, then the message, then an inbound reply
    receipt = {"message": {"id": "wamid.O1", "timestamp": "1760000010", "to": "6281399998888",
                           "type": "text", "kapso": {"direction": "outbound"}},
               "conversation": {"id": "conv-9", "phone_number": "6281399998888",
                                "phone_number_id": "pnid-1"}, "phone_number_id": "pnid-1"}
    assert await pipeline.kapso("whatsapp.message.read", receipt) == 200
    assert await pipeline.message("6281399998888", "wamid.O1", text="Halo dari toko",
                                  ts=1_760_000_000, direction="outbound", name=None) == 200
    assert await pipeline.message("6281399998888", "wamid.I1", text="Mau tanya harga",
                                  ts=1_760_000_100, name="Rina WA") == 200
    sarah = {"contact_phone": "0813 9999 8888", "chat_phase": "B",
             "extracted_data": {"name": "Rina", "domisili": "Bandung",
                                "pain_points": ["stok selisih"], "story": "Toko kue sejak 2019",
                                "language": "id", "objection_raised": "harga",
                                "budget": "2jt", "team": {"size": 3}}}
    assert await _api(pipeline, "POST", "/api/sarah/state", "tok-sarah", sarah) == 202
    sarah2 = {"contact_phone": "+62 813-9999-8888", "chat_phase": "qualifying", "lead_score": 72,
              "lead_temperature": "warm", "extracted_data": {"pain_points": ["Stok Selisih",
                                                                             "laporan manual"]}}
    assert await _api(pipeline, "POST", "/api/sarah/state", "tok-sarah", sarah2) == 202
    lead = await eventually(lambda: pipeline.fetchrow(
        "SELECT * FROM leads WHERE phone_e164 = '+6281399998888' AND lead_status = 'qualified'"
        " AND lead_score = 72 AND message_count = 2"), timeout=60)  # topics are not co-ordered
    lid = str(lead["lead_id"])
    assert lead["name"] == "Rina" and lead["kapso_name"] == "Rina WA"
    assert lead["domisili"] == "Bandung"
    # all of Sarah's fields: named ones in their columns, the rest in sarah_extra
    assert (lead["story"], lead["language"], lead["objection_raised"]) == (
        "Toko kue sejak 2019", "id", "harga")
    assert json.loads(lead["sarah_extra"]) == {"budget": "2jt", "team": {"size": 3}}
    assert lead["pain_points"] == ["stok selisih", "laporan manual"]
    assert lead["message_count"] == 2
    msg = await pipeline.fetchrow("SELECT * FROM messages WHERE message_id = 'wamid.O1'")
    assert msg is not None and msg["status"] == "read" and msg["text"] == "Halo dari toko"

    # Brain moves it; Sarah may no longer; a human can move it back; notes and an edit
    base = f"/api/leads/{lid}"
    assert await _api(pipeline, "POST", base + "/status", "tok-brain",
                      {"status": "contacted", "reason": "asked for demo"}) == 202
    await eventually(lambda: pipeline.fetchrow(
        "SELECT 1 FROM leads WHERE lead_id = $1 AND lead_status = 'contacted'", lead["lead_id"]))
    assert await _api(pipeline, "POST", "/api/sarah/state", "tok-sarah",
                      {"contact_phone": "081399998888", "chat_phase": "greeting"}) == 202
    assert await _api(pipeline, "POST", base + "/status", "tok-human",
                      {"status": "archived", "reason": "not a fit"}) == 202
    assert await _api(pipeline, "POST", base + "/notes", "tok-human",
                      {"content": "Called, will decide next week", "author": "Ani"}) == 202
    assert await _api(pipeline, "PATCH", base, "tok-human", {"name": "Bu Rina"}) == 202
    final = await eventually(lambda: pipeline.fetchrow(
        "SELECT * FROM leads WHERE lead_id = $1 AND name = 'Bu Rina'", lead["lead_id"]))
    assert final["lead_status"] == "archived" and final["chat_phase"] == "greeting"
    assert final["status_updated_by"] == "human"
    history = await eventually(lambda: pipeline.fetch(
        "SELECT from_status, to_status, changed_by FROM lead_status_history WHERE lead_id = $1"
        " ORDER BY changed_at", lead["lead_id"]))
    assert [tuple(h) for h in history] == [("new", "qualified", "sarah-bot"),
                                           ("qualified", "contacted", "brain-bot"),
                                           ("contacted", "archived", "human")]
    notes = await pipeline.fetch("SELECT author, author_type, content FROM lead_notes"
                                 " ORDER BY created_at")
    # the rename is on the timeline too, with who did it (issue #25)
    assert [tuple(n) for n in notes] == [("Ani", "human", "Called, will decide next week"),
                                         ("human", "human", "Nama diubah menjadi “Bu Rina”.")]


@pytest.mark.tansu  # also in the Tansu smoke run (make test)
async def test_replay_rebuilds_an_equal_replica(pipeline: Pipeline) -> None:
    from leadstream.sink.replay import replay
    for i in range(30):
        assert await pipeline.message(f"62812{30000000 + i % 6:08d}", f"wamid.r{i}",
                                      ts=1_760_000_000 + i) == 200
    await eventually(lambda: _total_messages(pipeline, 30), timeout=60)
    await asyncio.sleep(1.0)  # let the last snapshots land
    before = await table_checksums(pipeline)
    pipeline.worker.stop()
    from leadstream.sink.replay import replay_and_verify
    verified = await replay_and_verify(pipeline.settings)
    assert verified["equal"], verified["tables"]
    assert await table_checksums(pipeline) == before  # --verify leaves the live replica alone
    stats = await replay(pipeline.settings)
    assert stats["records"] >= 36
    assert await table_checksums(pipeline) == before
    # a damaged live replica is reported
    assert pipeline.pool is not None
    await pipeline.pool.execute("UPDATE leads SET name = 'tampered' WHERE lead_id ="
                                " (SELECT lead_id FROM leads LIMIT 1)")
    damaged = await replay_and_verify(pipeline.settings)
    assert not damaged["equal"] and not damaged["tables"]["leads"]["equal"]
    assert damaged["tables"]["messages"]["equal"]

    # interrupted after its first batch, a replay resumes where it stopped (nothing re-read
    # before that point) and still ends equal
    class Interrupted(Exception):
        pass

    seen: list[tuple[int, int]] = []

    def stop_after_first(done: int, goal: int) -> None:
        seen.append((done, goal))
        raise Interrupted

    with pytest.raises(Interrupted):
        await replay(pipeline.settings, progress=stop_after_first, batch_records=10)
    first_done, goal = seen[0]
    assert 0 < first_done < goal
    resumed_progress: list[tuple[int, int]] = []
    stats = await replay(pipeline.settings, batch_records=10,
                         progress=lambda d, g: resumed_progress.append((d, g)))
    assert stats["resumed"] and resumed_progress[-1] == (goal, goal)
    assert stats["records"] == goal
    assert await table_checksums(pipeline) == before
    again = await replay(pipeline.settings)  # the run finished: the next one starts over
    assert not again["resumed"] and again["records"] == goal

    # a record on a derived topic that is not a row (another producer, an old bug): the
    # batch Postgres refuses is decoded in Python instead, and the rest is rebuilt
    from leadstream.broker.clients import make_producer

    producer = make_producer(pipeline.settings)
    await producer.start()
    try:
        await producer.send_and_wait(pipeline.settings.topic("leads", derived=True),
                                     b'{"lead_id": "not-a-uuid", "version": 1}', key=b"junk")
    finally:
        await producer.stop()
    stats = await replay(pipeline.settings)
    assert stats["records"] == goal + 1
    assert await table_checksums(pipeline) == before


async def _total_messages(p: Pipeline, n: int) -> bool:
    row = await p.fetchrow("SELECT coalesce(sum(message_count), 0) AS n FROM leads")
    return row is not None and row["n"] == n


async def test_bsuid_is_the_identity_until_a_phone_is_seen(pipeline: Pipeline) -> None:
    from leadstream.simulate import kapso_message
    # first contact: phone and business-scoped id together
    first = kapso_message("pnid-1", wa_id="6281377776666", wamid="wamid.B1", text="halo", ts=1_760_000_001)
    first["conversation"]["business_scoped_user_id"] = "ID.777"
    assert await pipeline.kapso("whatsapp.message.received", first) == 200
    await eventually(lambda: pipeline.fetchrow(
        "SELECT 1 FROM leads WHERE bsuid = 'ID.777' AND phone_e164 = '+6281377776666'"))
    # later: Meta sends only the business-scoped id
    later = kapso_message("pnid-1", wa_id="", wamid="wamid.B2", text="lagi", ts=1_760_000_002)
    later["conversation"].pop("phone_number")
    later["message"].pop("from")
    later["conversation"]["business_scoped_user_id"] = "ID.777"
    assert await pipeline.kapso("whatsapp.message.received", later) == 200
    lead = await eventually(lambda: pipeline.fetchrow(
        "SELECT * FROM leads WHERE phone_e164 = '+6281377776666' AND message_count = 2"))
    assert lead["bsuid"] == "ID.777"
    # (the bsuid is an alias of the phone's lead: no lead of its own is shown)
    assert await pipeline.fetch("SELECT 1 FROM leads WHERE phone_e164 IS NULL"
                                " AND merged_into IS NULL") == []
    # a bsuid never seen with a phone stays its own lead
    other = kapso_message("pnid-1", wa_id="", wamid="wamid.B3", text="siapa", ts=1_760_000_003)
    other["conversation"].pop("phone_number")
    other["message"].pop("from")
    other["conversation"]["business_scoped_user_id"] = "ID.888"
    assert await pipeline.kapso("whatsapp.message.received", other) == 200
    await eventually(lambda: pipeline.fetchrow(
        "SELECT 1 FROM leads WHERE lead_key = 'ws1:ID.888' AND phone_e164 IS NULL"))
