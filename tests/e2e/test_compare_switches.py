"""The switches kept to compare designs (README, the hot path) work, so a comparison run
measures a working pipeline: `LEADSTREAM_WORKER_BATCH=false` (each record through Faust's
agent, one flush each) and `LEADSTREAM_REPLICA_WRITER=sink` (the sink writes every row,
read back from the derived topics). Issue #26: no test set them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from leadstream.config import Settings
from tests.support.fixtures import StartPipeline
from tests.support.pipeline import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("switch", [{"worker_batch": False}, {"replica_writer": "sink"}],
                         ids=["per-record", "sink-writes"])
async def test_a_switched_pipeline_fills_the_replica(
        pipelines: StartPipeline, settings: Settings, tmp_path: Path,
        switch: dict[str, Any]) -> None:
    p = await pipelines(settings.model_copy(update=switch))
    try:
        for i in range(6):
            assert await p.message(f"62813880{i:05d}", f"wamid.sw.{i}", ts=1_760_000_000 + i,
                                   name=f"Lead {i}") == 200
        assert await p.message("6281388000000", "wamid.sw.again", ts=1_760_000_100) == 200
        row = await eventually(lambda: p.fetchrow(
            "SELECT count(*) AS leads, sum(message_count) AS messages FROM leads"
            " HAVING sum(message_count) = 7"), timeout=90)
        assert row["leads"] == 6
        msgs = await p.fetch("SELECT message_id FROM messages")
        assert len(msgs) == 7
    finally:
        await p.stop()
