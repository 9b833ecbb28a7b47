"""One row's bad value never stops the replica for anyone: a row Postgres refuses for its
data (here an index entry over Postgres' size limit, SQLSTATE 54000, which the sink used to
retry forever) is dead-lettered, and the rest of its batch is written."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from aiokafka.structs import ConsumerRecord

from leadstream.broker.clients import ensure_topics
from leadstream.config import Settings
from leadstream.db.migrate import migrate_url
from leadstream.domain.identity import lead_id_for
from leadstream.sink.service import PostgresSink

pytestmark = pytest.mark.integration

T = datetime(2026, 11, 1, tzinfo=UTC).isoformat()


def _lead(ws: str, phone: str, **kw: object) -> dict[str, object]:
    key = f"{ws}:{phone}"
    return {"lead_id": lead_id_for(key), "workspace_id": ws, "lead_key": key,
            "phone_e164": phone, "lead_status": "new", "message_count": 1, "created_at": T,
            "pain_points": [],
            "updated_at": T, "last_activity_at": T, "version": 1, **kw}


def _record(topic: str, offset: int, row: dict[str, object]) -> ConsumerRecord[bytes, bytes]:
    value = orjson.dumps(row)
    return ConsumerRecord(topic, 0, offset, 0, 0, str(row["lead_key"]).encode(), value, None,
                          0, len(value), ())


async def test_an_oversized_indexed_value_is_dead_lettered_and_the_batch_written(
    settings: Settings,
) -> None:
    await ensure_topics(settings)
    await migrate_url(settings.dsn)
    sink = PostgresSink(settings)
    await sink.on_start()
    try:
        topic = sink.names.leads
        rows = [_lead("ws1", f"+62813000000{i:02d}") for i in range(6)]
        # bypasses the edge's limits (an old record, another producer): 12 kB of random-ish
        # text in an indexed column (lower(domisili)) is over the btree row limit
        bad = _lead("ws2", "+6281399999999", domisili="".join(
            chr(0x4E00 + (i * 7919) % 20000) for i in range(4000)))
        records = [_record(topic, i, r) for i, r in enumerate([*rows[:3], bad, *rows[3:]])]
        await sink.flush(records)
        assert sink.replica is not None and sink.replica.pool is not None
        pool = sink.replica.pool
        reasons = [r["reason"] for r in await pool.fetch("SELECT reason FROM sync_failures")]
        got = {r["lead_key"] for r in await pool.fetch("SELECT lead_key FROM leads")}
        assert len(reasons) == 1, reasons
        assert got == {r["lead_key"] for r in rows}
        failure = await pool.fetchrow("SELECT * FROM sync_failures WHERE stage = 'sink'")
        assert failure is not None and failure["source_offset"] == 3
        assert failure["workspace_id"] == "ws2"  # its workspace's page lists it (#25)
        assert "rejected by Postgres" in failure["reason"] and "index row" in failure["reason"]
        assert sink.dead_letters == 1
    finally:
        await sink.on_stop()
