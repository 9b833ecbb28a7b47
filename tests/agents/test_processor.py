"""LeadProcessor on plain dict tables: a record that fails part-way leaves nothing emitted
(issue #14: a far-future date once sent the lead's snapshot, then overflowed the daily
window; the next event reused that version, and the sink kept the wrong row for good)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from leadstream.agents import LeadProcessor
from leadstream.config import Settings
from leadstream.domain.identity import lead_key
from leadstream.domain.model import InboundEvent, MessageInfo
from leadstream.streams.records import encode
from leadstream.streams.topics import TopicNames
from tests.agents.test_daily import Sent, windows

NAMES = TopicNames.from_settings(Settings(LEADSTREAM_TOPIC_PREFIX="tp"))
PHONE = "+6281312345678"
KEY = lead_key("ws", PHONE)


def _event(wamid: str, at: datetime) -> bytes:
    return encode(InboundEvent(
        event_id=f"e:{wamid}", kind="message", event_type="whatsapp.message.received",
        workspace_id="ws", lead_key=KEY, identity=PHONE, phone_e164=PHONE,
        occurred_at=at, received_at=datetime.now(UTC),
        message=MessageInfo(wamid=wamid, direction="inbound", text="halo", status="received",
                            timestamp=at)))


async def test_a_record_that_fails_part_way_emits_nothing_and_versions_stay_unique() -> None:
    sent = Sent()
    proc = LeadProcessor({}, {}, sent, NAMES, daily=windows({}, sent))
    now = datetime.now(UTC) - timedelta(hours=1)
    # the edge refuses such a date; a record from before that limit, or another producer,
    # still reaches the worker: 9999-12-31 23:00 UTC is 10000-01-01 in Jakarta
    far = datetime(9999, 12, 31, 23, 0, tzinfo=UTC)
    for offset, (wamid, at) in enumerate([("w1", now), ("w-far", far),
                                          ("w2", now + timedelta(minutes=1))]):
        await proc.handle(NAMES.events, 0, offset, KEY.encode(), _event(wamid, at))
    assert proc.dead == 1 and proc.processed == 2
    snapshots = [orjson.loads(v) for t, _, v in sent if t == NAMES.leads]
    versions = [s["version"] for s in snapshots]
    assert versions == sorted(set(versions)), versions  # never one version twice
    assert snapshots[-1]["message_count"] == 2
    far_outputs = [t for t, _, v in sent if b"w-far" in v and t != NAMES.dlq]
    assert far_outputs == []  # nothing of the failed record went out
    (dl,) = [v for t, _, v in sent if t == NAMES.dlq]
    assert b"apply failed" in dl
