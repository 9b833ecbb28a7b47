"""Signed webhook -> broker -> Faust worker -> Postgres, on the real parts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from leadstream.config import Settings
from leadstream.domain.identity import lead_id_for
from tests.pipeline import Pipeline, eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def pipeline(settings: Settings, tmp_path: Path) -> AsyncIterator[Pipeline]:
    p = await Pipeline(settings, str(tmp_path)).start()
    try:
        yield p
    except BaseException:
        print(p.worker.log_tail())
        raise
    finally:
        await p.stop()


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
