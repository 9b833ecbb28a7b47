"""Faults: Postgres stopped mid-run. Bounded in time; runs in CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadstream.config import Settings
from leadstream.embedded.postgres import EmbeddedPostgres
from tests.pipeline import Pipeline, eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_postgres_outage_webhook_keeps_answering_and_sink_catches_up(
    settings: Settings, tmp_path: Path
) -> None:
    # durable, as in production: the sink commits offsets after Postgres commits, so a
    # server that loses committed transactions on SIGKILL (fsync off) would lose rows
    pg = EmbeddedPostgres(tmp_path / "own-pg", fsync=True).start()
    s = settings.model_copy(update={"database_url": pg.url})
    p = await Pipeline(s, str(tmp_path)).start()
    try:
        for i in range(10):
            assert await p.message(f"62812{40000000 + i:08d}", f"wamid.pg.{i}") == 200
        await eventually(lambda: _total(p, 10), timeout=60)
        pg.kill()
        # Postgres is down: webhooks of known workspaces still go to the broker
        for i in range(10, 30):
            assert await p.message(f"62812{40000000 + i % 10:08d}", f"wamid.pg.{i}") == 200
        import asyncio
        await asyncio.sleep(3)  # the outage lasts: the sink retries and keeps its place
        pg.start()  # same data directory and port
        await eventually(lambda: _total(p, 30), timeout=90)
        # leads and messages come from different topics: their rows land in their own time
        try:
            await eventually(lambda: _messages(p, 30), timeout=30)
        except AssertionError:
            have = {r["message_id"] for r in await p.fetch("SELECT message_id FROM messages")}
            missing = sorted({f"wamid.pg.{i}" for i in range(30)} - have)
            raise AssertionError(f"message rows missing after the outage: {missing}") from None
    finally:
        await p.stop()
        pg.stop()


async def _messages(p: Pipeline, n: int) -> bool:
    row = await p.fetchrow("SELECT count(*) AS n FROM messages")
    return row is not None and row["n"] == n


async def _total(p: Pipeline, n: int) -> bool:
    try:
        row = await p.fetchrow("SELECT coalesce(sum(message_count), 0) AS n FROM leads")
    except Exception:  # the test's own pool sees the outage too
        return False
    return row is not None and row["n"] == n


async def test_poison_records_are_dead_lettered_listed_and_redriven(settings: Settings,
                                                                   tmp_path: Path) -> None:
    """A record the worker cannot read goes to the DLQ and `sync_failures`; the worker goes
    on; `dlq redrive` publishes the original bytes again to the source topic."""
    from leadstream.broker.clients import make_producer
    from leadstream.ops.dlq import read_dead_letters, redrive
    from tests.http.test_webhooks import read_topic

    p = await Pipeline(settings, str(tmp_path)).start()
    try:
        producer = make_producer(settings)
        await producer.start()
        poison = b'{"event_id": "x", "kind": "message"'  # truncated JSON
        await producer.send_and_wait(settings.topic("events"), poison, key=b"ws1:+6281300000000")
        await producer.stop()
        assert await p.message("6281355550009", "wamid.after-poison") == 200
        await eventually(lambda: p.fetchrow(
            "SELECT 1 FROM leads WHERE phone_e164 = '+6281355550009'"), timeout=60)
        failure = await eventually(lambda: p.fetchrow(
            "SELECT * FROM sync_failures WHERE stage = 'worker'"), timeout=30)
        assert "invalid record" in failure["reason"]
        assert failure["source_topic"] == settings.topic("events")
        letters = await read_dead_letters(settings)
        (key, dl), = [(k, d) for k, d in letters if d.stage == "worker"]
        assert dl.original == poison and key == b"ws1:+6281300000000"
        result = await redrive(settings, [dl.event_id])
        assert result == {"redriven": [dl.event_id], "skipped": []}
        events = await read_topic(settings, settings.topic("events"), 3)
        assert events.count(poison) == 2
    finally:
        await p.stop()
